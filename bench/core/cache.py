"""On-disk cache for fitted detectors, cell scores and image probes.

Every entry lives at ``<root>/<namespace>/<key>.<ext>`` and is written
atomically, so an interrupted run leaves either a complete entry or none, and
the next run recomputes only what is missing. An entry that cannot be read back
(truncated, foreign, written by an incompatible version) is removed with a
warning and recomputed.

What the cache trusts: arrays (``.npz``, read with ``allow_pickle=False``) and
JSON cannot execute code. Pickled objects (fitted detectors) can, so each one
carries an HMAC-SHA256 of its name and bytes under a per-cache secret key kept
*outside* the cache directory (``$BENCH_CACHE_KEY_DIR``, default the user config
dir), and the tag is checked before a byte is unpickled: a pickle planted or
altered by anyone who can write to the cache but not read the key is never
loaded, only removed and recomputed.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import os
import pickle
import secrets
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
from platformdirs import user_cache_dir, user_config_dir

from bench.core import atomic
from bench.core.errors import BenchError

log = logging.getLogger(__name__)

MAGIC = b"aigi-bench hmac-sha256 v1\n"
_TAG_BYTES = hashlib.sha256().digest_size


def default_cache_dir() -> Path:
    return Path(os.environ.get("BENCH_CACHE_DIR") or user_cache_dir("aigi-bench"))


def key_dir() -> Path:
    """Where the caches' secret keys live: never inside a cache directory."""
    return Path(os.environ.get("BENCH_CACHE_KEY_DIR") or Path(user_config_dir("aigi-bench")) / "cache-keys")


def cache_key(root: Path) -> bytes:
    """The secret key of the cache at ``root`` (created on first use, readable by its owner only)."""
    folder = key_dir()
    path = folder / f"{hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:32]}.key"
    try:
        if not path.is_file():
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(prefix=".key.", dir=folder)  # created 0600
            try:
                os.write(fd, secrets.token_hex(32).encode())
                os.close(fd)
                try:
                    os.link(tmp, path)  # never replaces a key another process created meanwhile
                except FileExistsError:
                    pass
            finally:
                os.unlink(tmp)
        key = path.read_bytes()
    except OSError as exc:
        raise BenchError(f"cannot read or create the cache key {path}: {exc.strerror or exc} "
                         "(set BENCH_CACHE_KEY_DIR to a private writable folder)") from None
    if len(key) < 32:
        raise BenchError(f"cache key {path} is damaged (too short); delete it (the cached fits will be recomputed)")
    return key


class Cache:
    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root else default_cache_dir()
        self._key: bytes | None = None

    def path(self, namespace: str, key: str, ext: str) -> Path:
        return self.root / namespace / f"{key}.{ext}"

    def has(self, namespace: str, key: str, ext: str) -> bool:
        return self.path(namespace, key, ext).exists()

    def _load(self, p: Path, loader: Callable[[Path], Any]) -> Any | None:
        """``loader(p)``, or None (entry removed, to be recomputed) when there is none or it cannot be read."""
        if not p.exists():
            return None
        try:
            return loader(p)
        except Exception as exc:  # any failure to read a cache entry means: recompute it
            log.warning("cache entry %s cannot be loaded (%s: %s); removing and recomputing it",
                        p, type(exc).__name__, exc)
            p.unlink(missing_ok=True)
            return None

    # -- arrays -----------------------------------------------------------
    def save_arrays(self, namespace: str, key: str, **arrays: np.ndarray) -> None:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic.write_bytes(self.path(namespace, key, "npz"), buf.getvalue())

    def load_arrays(self, namespace: str, key: str) -> dict[str, np.ndarray] | None:
        def read(p: Path) -> dict[str, np.ndarray]:
            with np.load(p, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}

        return self._load(self.path(namespace, key, "npz"), read)

    # -- python objects (fitted detectors), authenticated -------------------------
    def _tag(self, namespace: str, key: str, payload: bytes) -> bytes:
        if self._key is None:
            self._key = cache_key(self.root)
        return hmac.new(self._key, f"{namespace}/{key}\n".encode() + payload, hashlib.sha256).digest()

    def save_object(self, namespace: str, key: str, obj: Any) -> None:
        payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        atomic.write_bytes(self.path(namespace, key, "pkl"), MAGIC + self._tag(namespace, key, payload) + payload)

    def load_object(self, namespace: str, key: str) -> Any | None:
        """The stored object, or None when there is none or it cannot be trusted or loaded.

        The HMAC tag is checked before unpickling; an entry without a valid tag (planted, altered,
        truncated, or written under another key) or one that fails to unpickle (naming a class that
        has moved since) is removed, so that the caller recomputes and stores it again.
        """

        def read(p: Path) -> Any:
            data = p.read_bytes()
            head, payload = data[:len(MAGIC) + _TAG_BYTES], data[len(MAGIC) + _TAG_BYTES:]
            if not head.startswith(MAGIC):
                raise ValueError("not an authenticated cache entry")
            if not hmac.compare_digest(head[len(MAGIC):], self._tag(namespace, key, payload)):
                raise ValueError("authentication tag does not match: entry altered, truncated or foreign; "
                                 "not unpickled")
            return pickle.loads(payload)

        return self._load(self.path(namespace, key, "pkl"), read)

    # -- json -------------------------------------------------------------------
    def save_json(self, namespace: str, key: str, obj: Any) -> None:
        atomic.write_text(self.path(namespace, key, "json"), json.dumps(obj, sort_keys=True))

    def load_json(self, namespace: str, key: str) -> Any | None:
        return self._load(self.path(namespace, key, "json"), lambda p: json.loads(p.read_text(encoding="utf-8")))
