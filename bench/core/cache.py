"""On-disk cache for fitted detectors, cell scores and image probes.

Every entry lives at ``<root>/<namespace>/<key>.<ext>`` and is written
atomically, so an interrupted run leaves either a complete entry or none, and
the next run recomputes only what is missing. An entry that cannot be read back
(truncated, foreign, written by an incompatible version) is removed with a
warning and recomputed.

What the cache trusts: nothing it cannot authenticate. Every entry (pickled
fits, arrays such as cell scores and feature caches, JSON such as probes and
audits) carries an HMAC-SHA256 of its name and bytes under a per-cache secret
key kept *outside* the cache directory (``$BENCH_CACHE_KEY_DIR``, default the
user config dir), and the tag is checked before the bytes are parsed: a pickle
planted by anyone who can write to the cache but not read the key is never
unpickled, and flipped scores in a cell entry never reach a number. An entry
with a wrong tag is removed with a warning and recomputed; an entry without one
(written before entries were authenticated) is a miss, recomputed, with one
warning per namespace. Arrays are still read with ``allow_pickle=False``.
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
    """The secret key of the cache at ``root`` (created on first use, readable by its owner only).

    A key folder inside the cache it protects is refused: whoever can write the cache could then read or
    replace the key, and forge any entry."""
    folder = key_dir()
    if folder.resolve().is_relative_to(root.resolve()):
        raise BenchError(f"BENCH_CACHE_KEY_DIR {folder} lies inside the cache directory {root} whose entries its "
                         "keys authenticate; choose a folder outside it")
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
        raise BenchError(f"cache key {path} is damaged (too short); delete it (every cached entry will be recomputed)")
    return key


class UntaggedEntry(ValueError):
    """An entry without the authentication header: written before entries were tagged, or not by this bench."""


class Cache:
    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root else default_cache_dir()
        self._key: bytes | None = None
        self._untagged_seen: set[str] = set()  # namespaces whose untagged entries were already reported

    def path(self, namespace: str, key: str, ext: str) -> Path:
        return self.root / namespace / f"{key}.{ext}"

    def has(self, namespace: str, key: str, ext: str) -> bool:
        return self.path(namespace, key, ext).exists()

    # -- authentication, shared by every kind of entry --------------------------------
    def _tag(self, namespace: str, key: str, payload: bytes) -> bytes:
        """HMAC-SHA256 of the entry's name and bytes. The name leaves out the kind (extension) so that the fits
        tagged before every entry was keep loading; kinds never share a namespace (``fits`` holds the only
        pickles), so no tagged array or JSON entry can be renamed into a pickle that is read."""
        if self._key is None:
            self._key = cache_key(self.root)
        return hmac.new(self._key, f"{namespace}/{key}\n".encode() + payload, hashlib.sha256).digest()

    def _save(self, namespace: str, key: str, ext: str, payload: bytes) -> None:
        atomic.write_bytes(self.path(namespace, key, ext), MAGIC + self._tag(namespace, key, payload) + payload)

    def _load(self, namespace: str, key: str, ext: str, parse: Callable[[bytes], Any]) -> Any | None:
        """``parse(payload)`` of an entry whose tag checks out, or None (entry removed, to be recomputed) when
        there is none, its tag is missing or wrong (planted, altered, truncated, moved from another key, or
        written under another cache's key), or it cannot be parsed. The tag is checked before ``parse`` sees
        a byte."""
        p = self.path(namespace, key, ext)
        if not p.exists():
            return None
        try:
            data = p.read_bytes()
            head, payload = data[:len(MAGIC) + _TAG_BYTES], data[len(MAGIC) + _TAG_BYTES:]
            if not head.startswith(MAGIC):
                raise UntaggedEntry("not an authenticated cache entry")
            if not hmac.compare_digest(head[len(MAGIC):], self._tag(namespace, key, payload)):
                raise ValueError("authentication tag does not match: entry altered, truncated or foreign; "
                                 "not used")
            return parse(payload)
        except BenchError:
            raise  # the key itself cannot be read: a one-line error, not a silent recomputation of everything
        except Exception as exc:  # any failure to read a cache entry means: recompute it
            if not isinstance(exc, UntaggedEntry) or namespace not in self._untagged_seen:
                more = " (further untagged entries of this namespace are recomputed silently)" \
                    if isinstance(exc, UntaggedEntry) else ""
                log.warning("cache entry %s cannot be loaded (%s: %s); removing and recomputing it%s",
                            p, type(exc).__name__, exc, more)
            if isinstance(exc, UntaggedEntry):
                self._untagged_seen.add(namespace)
            p.unlink(missing_ok=True)
            return None

    # -- arrays (cell scores, feature caches) ----------------------------------------------
    def save_arrays(self, namespace: str, key: str, **arrays: np.ndarray) -> None:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        self._save(namespace, key, "npz", buf.getvalue())

    def load_arrays(self, namespace: str, key: str) -> dict[str, np.ndarray] | None:
        def parse(payload: bytes) -> dict[str, np.ndarray]:
            with np.load(io.BytesIO(payload), allow_pickle=False) as data:
                return {k: data[k] for k in data.files}

        return self._load(namespace, key, "npz", parse)

    # -- python objects (fitted detectors) ------------------------------------------------
    def save_object(self, namespace: str, key: str, obj: Any) -> None:
        self._save(namespace, key, "pkl", pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))

    def load_object(self, namespace: str, key: str) -> Any | None:
        """The stored object, or None when there is none or it cannot be trusted or loaded (one that fails to
        unpickle names a class that has moved since): the caller recomputes and stores it again."""
        return self._load(namespace, key, "pkl", pickle.loads)

    # -- json (probes, audits, normalisation records, timings) -----------------------------
    def save_json(self, namespace: str, key: str, obj: Any) -> None:
        self._save(namespace, key, "json", json.dumps(obj, sort_keys=True).encode())

    def load_json(self, namespace: str, key: str) -> Any | None:
        return self._load(namespace, key, "json", lambda payload: json.loads(payload.decode("utf-8")))
