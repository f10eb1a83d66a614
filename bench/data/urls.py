"""Manifest paths that are fsspec URLs (``s3://``, ``gs://``, ``https://``, ``memory://``, ``file://``):
images every node of a cluster reads from one store (README, "Running at scale"). Read through
fsspec, an optional dependency (``pip install 'aigi-bench[fsspec]'`` plus the filesystem's own
package, e.g. s3fs or gcsfs), imported only when a manifest names a URL. Local paths never come here.
"""

from __future__ import annotations

import re

from bench.core.errors import ImageSkip

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def is_url(path: str) -> bool:
    """Whether ``path`` has a URL scheme (``scheme://``); a Windows drive (``C:\\``) has none."""
    return bool(_SCHEME.match(str(path)))


def _fsspec():
    try:
        import fsspec
    except ImportError:
        raise ImageSkip("an fsspec URL, but fsspec is not installed (pip install 'aigi-bench[fsspec]')") from None
    return fsspec


def local_path(url: str) -> str | None:
    """The local path a ``file://`` (or ``local://``) URL names, None for any other store: a local file is
    read by the local reader, with its checks (regular files only, opened without blocking)."""
    try:
        fs, path = _fsspec().core.url_to_fs(url)
    except ImageSkip:
        raise
    except Exception:  # a malformed URL or an unknown protocol: read_url says why
        return None
    from fsspec.implementations.local import LocalFileSystem

    return path if isinstance(fs, LocalFileSystem) else None


def read_url(url: str, max_bytes: int) -> bytes:
    """The bytes at ``url``, never read past ``max_bytes`` (+1 to tell a larger object); failures are ImageSkips."""
    fsspec = _fsspec()
    try:
        with fsspec.open(url, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise ImageSkip("file not found") from None
    except IsADirectoryError:
        raise ImageSkip("path is a directory") from None
    except Exception as exc:  # each filesystem raises its own errors (network, credentials, protocol)
        raise ImageSkip(f"cannot read URL: {type(exc).__name__}: {exc}") from None
    if len(data) > max_bytes:
        raise ImageSkip(f"file larger than {max_bytes} bytes: not read past the limit")
    return data


def url_stamp(url: str) -> tuple | None:
    """What changes when the object at ``url`` changes (size and the store's modification time or
    ETag), for the probe cache's key; None when the store cannot say."""
    try:
        fs, path = _fsspec().core.url_to_fs(url)
        info = fs.info(path)
    except Exception:  # unreadable now: the probe itself records why
        return None
    changed = next((info[k] for k in ("mtime", "LastModified", "ETag", "etag", "created", "md5") if info.get(k)),
                   None)
    return info.get("size"), str(changed) if changed is not None else None
