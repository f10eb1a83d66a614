"""Named, fixed run configurations (``bench run --suite NAME``): the YAML run configs in ``configs/suites/``.

A suite is a run config like any other (``bench run --config``); naming it keeps the configuration that a
committed reference was made with in one reviewed file. ``ci`` is the suite that CI gates on (README,
"Gating your CI").
"""

from __future__ import annotations

from pathlib import Path

from bench.core.errors import BenchError

SUITES_DIR = Path(__file__).resolve().parents[2] / "configs" / "suites"


def suite_names() -> list[str]:
    return sorted(path.stem for path in SUITES_DIR.glob("*.yaml"))


def suite_config(name: str) -> dict:
    """The suite's config keys (checked like any run config when the run reads them)."""
    from bench.run.config import load_config_file  # pandas-heavy: not at import time of the CLI

    if name not in suite_names():
        raise BenchError(f"unknown suite {name!r} (known: {', '.join(suite_names()) or 'none'} in {SUITES_DIR})")
    return load_config_file(SUITES_DIR / f"{name}.yaml")
