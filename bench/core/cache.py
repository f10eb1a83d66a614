"""On-disk cache for fitted detectors, cell scores and image probes.

Every entry lives at ``<root>/<namespace>/<key>.<ext>`` and is written
atomically, so an interrupted run leaves either a complete entry or none, and
the next run recomputes only what is missing.
"""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from platformdirs import user_cache_dir

from bench.core import atomic

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    return Path(os.environ.get("BENCH_CACHE_DIR") or user_cache_dir("aigi-bench"))


class Cache:
    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root else default_cache_dir()

    def path(self, namespace: str, key: str, ext: str) -> Path:
        return self.root / namespace / f"{key}.{ext}"

    def has(self, namespace: str, key: str, ext: str) -> bool:
        return self.path(namespace, key, ext).exists()

    # -- arrays -----------------------------------------------------------
    def save_arrays(self, namespace: str, key: str, **arrays: np.ndarray) -> None:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic.write_bytes(self.path(namespace, key, "npz"), buf.getvalue())

    def load_arrays(self, namespace: str, key: str) -> dict[str, np.ndarray] | None:
        p = self.path(namespace, key, "npz")
        if not p.exists():
            return None
        with np.load(p, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}

    # -- python objects (fitted detectors) ----------------------------------
    def save_object(self, namespace: str, key: str, obj: Any) -> None:
        atomic.write_bytes(self.path(namespace, key, "pkl"), pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))

    def load_object(self, namespace: str, key: str) -> Any | None:
        """The stored object, or None when there is none or it cannot be loaded any more.

        An entry that fails to unpickle (truncated, or naming a class that has moved since
        it was written) is removed, so that the caller recomputes and stores it again.
        """
        p = self.path(namespace, key, "pkl")
        if not p.exists():
            return None
        try:
            with open(p, "rb") as fh:
                return pickle.load(fh)
        except Exception as exc:  # any failure to load a cache entry means: recompute it
            log.warning("cache entry %s cannot be loaded (%s: %s); recomputing it", p, type(exc).__name__, exc)
            p.unlink(missing_ok=True)
            return None

    # -- json -------------------------------------------------------------------
    def save_json(self, namespace: str, key: str, obj: Any) -> None:
        atomic.write_text(self.path(namespace, key, "json"), json.dumps(obj, sort_keys=True))

    def load_json(self, namespace: str, key: str) -> Any | None:
        p = self.path(namespace, key, "json")
        if not p.exists():
            return None
        return json.loads(p.read_text())
