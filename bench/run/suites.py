"""Named, fixed run configurations (``bench run --suite NAME``).

``ci`` is small enough for a CI job (at most a few minutes on 2 CPU cores) and
is the configuration whose reference is committed under results/reference/ci,
with a seed band over 8 training seeds (``make reference`` regenerates it). It runs the detectors'
``fast`` profile, the settings its reference was made with.
"""

from __future__ import annotations

from bench.core.errors import BenchError

SUITES: dict[str, dict] = {
    "ci": {
        "detectors": ["spectral", "npr"],
        "dataset": "demo",
        "perturb": "jpeg:2,5,8,blur:1,3,noise:1,3",
        "preset": "default",
        "profile": "fast",
        "seed": 0,
        "device": "cpu",
        "bootstrap": 100,
        "caption_groups": False,  # the split of the committed reference, made before captions were grouped
    },
}


def suite_config(name: str) -> dict:
    try:
        return dict(SUITES[name])
    except KeyError:
        raise BenchError(f"unknown suite {name!r} (known: {', '.join(SUITES)})") from None
