"""How long each detector took on this machine, kept in the cache so that ``bench plan`` (and ``bench run
--dry-run``) can say how long a run will take before it starts.

One JSON entry per (detector settings, device): seconds per image of fitting (training and the validation
pass, over the training and validation images) and of scoring (the model's time on a test image, with its
share of a shared CLIP backbone; decoding and perturbing run beside it in the preparation workers). Each
measurement replaces the earlier one. The records only estimate: no result reads them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from bench.core.cache import Cache
from bench.core.hashing import stable_hash

NAMESPACE = "timings"
FIT, SCORE = "fit_s_per_image", "score_s_per_image"


def timing_key(detector_config: dict[str, Any], device: str) -> str:
    """A detector's settings (``Detector.config()``) on a device as this machine describes it."""
    from bench.run.provenance import device_description

    return stable_hash([detector_config, device_description(device)])


def load_timing(cache: Cache, detector_config: dict[str, Any], device: str) -> dict[str, float]:
    """The recorded seconds per image (``fit_s_per_image``, ``score_s_per_image``); {} when never measured."""
    record = cache.load_json(NAMESPACE, timing_key(detector_config, device))
    if not isinstance(record, dict):
        return {}
    return {k: float(v) for k, v in record.items() if k in (FIT, SCORE) and isinstance(v, (int, float))
            and not isinstance(v, bool) and v >= 0}


def record_timing(cache: Cache, detector_config: dict[str, Any], device: str, what: str, seconds: float,
                  images: int) -> None:
    """Record ``seconds`` over ``images`` as the detector's ``what`` (FIT or SCORE) time per image."""
    if images <= 0:
        return
    key = timing_key(detector_config, device)
    record = {**load_timing(cache, detector_config, device), what: seconds / images,
              "measured": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    cache.save_json(NAMESPACE, key, record)
