"""``bench weights fetch``: download a component (URL, open_clip, timm or the Hugging Face hub),
verify it and install it into the store.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import socket
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator
from urllib.parse import urlparse

from bench.core.errors import BenchError
from bench.core.hashing import sha256_file
from bench.weights.catalog import ComponentSpec
from bench.weights.checksums import as_spec, fix_missing, url_basename
from bench.weights.locations import HEX64, is_offline, offline_reason, store_dir
from bench.weights.records import ChecksumMismatch, ResolvedWeights, WeightsUnavailable
from bench.weights.store import install_entry, resolve_store, tmp_workdir


# --------------------------------------------------------------------------- fetch


@dataclass
class _Download:
    origin: str
    hashes: dict[str, str]
    hub_verified: bool


@contextlib.contextmanager
def _hf_progress(enabled: bool) -> Iterator[None]:
    if enabled:
        yield
        return
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            enable_progress_bars()


_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def _download_host(spec: ComponentSpec) -> tuple[str, int] | None:
    """The host (and port) a fetch of this component talks to first."""
    if spec.kind == "hf" or (spec.kind in ("open_clip", "timm") and spec.repo_id):
        url = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    elif spec.url:
        url = spec.url
    else:
        return None
    parsed = urlparse(url)
    if not parsed.hostname:
        return None
    return parsed.hostname, parsed.port or (80 if parsed.scheme == "http" else 443)


@functools.lru_cache(maxsize=None)
def _host_reachable(host: str, port: int = 443, timeout: float = 5.0) -> bool:
    """One quick TCP connect per host and process, so that a machine without network fails in
    seconds instead of sitting through the hub client's retries. Skipped behind a proxy."""
    if any(os.environ.get(v) for v in _PROXY_VARS):
        return True
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except Exception:
        return False


def _download_url(url: str, dst: Path, progress: bool) -> None:
    """Download a URL to ``dst`` (torch.hub writes a temporary file and renames it)."""
    import torch.hub

    torch.hub.download_url_to_file(url, str(dst), hash_prefix=None, progress=progress)


def _hub_origin(path: Path) -> str:
    """``https://huggingface.co/ORG/NAME/blob/COMMIT/FILE`` for a file in a hub cache snapshot."""
    parts = path.parts
    if "snapshots" in parts:
        i = parts.index("snapshots")
        repo = parts[i - 1].removeprefix("models--").replace("--", "/")
        return f"https://huggingface.co/{repo}/blob/{parts[i + 1]}/{'/'.join(parts[i + 2:])}"
    return str(path)


def _move_hub_file(spec: ComponentSpec, src: Path, dst: Path) -> tuple[str, bool]:
    """Move a downloaded file (a hub cache symlink's blob, or a plain file) into the payload.

    Hub cache blobs of large (LFS) files are named by their sha256: that is checked here.
    Returns (sha256, whether it was checked against the hub's hash).
    """
    real = Path(os.path.realpath(src))
    digest = sha256_file(str(real))
    checked = False
    if HEX64.fullmatch(real.name):
        if digest != real.name:
            raise ChecksumMismatch(spec.name, _hub_origin(src), real.name, digest,
                                   f"retry `bench weights fetch {spec.name}` (the download was corrupted)")
        checked = True
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(real), str(dst))
    return digest, checked


def _remote_missing_error() -> type[BaseException]:
    from huggingface_hub import errors

    return getattr(errors, "RemoteEntryNotFoundError", errors.EntryNotFoundError)


def _hf_download_first(spec: ComponentSpec, repo_id: str, candidates: Iterable[str], cache: Path,
                       progress: bool) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    missing = _remote_missing_error()
    candidates = tuple(candidates)
    for fn in candidates:
        try:
            with _hf_progress(progress):
                return Path(hf_hub_download(repo_id, fn, revision=spec.revision, cache_dir=str(cache)))
        except missing as err:
            if isinstance(err, LocalEntryNotFoundError):
                raise
    raise WeightsUnavailable(spec.name, f"the hub repo {repo_id} has none of {', '.join(candidates)}",
                             f"`bench weights import {spec.name} PATH` a copy you obtained elsewhere")


def _dl_url(spec: ComponentSpec, work: Path, payload: Path, progress: bool) -> _Download:
    assert spec.url
    fn = url_basename(spec.url) or f"{spec.name}.bin"
    _download_url(spec.url, payload / fn, progress)
    return _Download(spec.url, {}, False)


def _dl_files(spec: ComponentSpec, work: Path, payload: Path, progress: bool) -> _Download:
    assert spec.url
    for fn in spec.filenames:
        _download_url(spec.url + fn, payload / fn, progress)
    return _Download(spec.origin, {}, False)


def _dl_open_clip(spec: ComponentSpec, work: Path, payload: Path, progress: bool) -> _Download:
    import open_clip
    from open_clip import pretrained as ocp

    cfg = ocp.get_pretrained_cfg(spec.arch, spec.pretrained)
    if not cfg:
        raise WeightsUnavailable(spec.name, f"open_clip {open_clip.__version__} has no pretrained tag "
                                 f"{spec.pretrained!r} for {spec.arch!r}",
                                 f"`bench weights import {spec.name} PATH` a checkpoint you obtained elsewhere")
    with _hf_progress(progress):
        got = ocp.download_pretrained(cfg, prefer_hf_hub=True, cache_dir=str(work))
    if not got:
        raise WeightsUnavailable(spec.name, "open_clip returned no file", fix_missing(spec))
    src = Path(got)
    digest, checked = _move_hub_file(spec, src, payload / src.name)
    return _Download(_hub_origin(src) if "snapshots" in src.parts else str(cfg.get("url", "")),
                     {src.name: digest}, checked)


def _dl_timm(spec: ComponentSpec, work: Path, payload: Path, progress: bool) -> _Download:
    repo_id, files = spec.repo_id, spec.filenames
    with contextlib.suppress(ImportError):
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(spec.timm_model)
        if cfg is not None and cfg.hf_hub_id:  # timm's own cfg wins: it knows where this timm version looks
            repo_id = cfg.hf_hub_id.rstrip("/")
            files = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else files
    if repo_id:
        src = _hf_download_first(spec, repo_id, files, work, progress)
        digest, checked = _move_hub_file(spec, src, payload / src.name)
        return _Download(_hub_origin(src), {src.name: digest}, checked)
    return _dl_url(spec, work, payload, progress)


def _dl_hf(spec: ComponentSpec, work: Path, payload: Path, progress: bool) -> _Download:
    from huggingface_hub import snapshot_download

    assert spec.repo_id
    prefix = f"{spec.subfolder.strip('/')}/" if spec.subfolder else ""
    snap, chosen = None, None
    for weight in spec.filenames:  # first weight file the repo has, plus config.json
        patterns = [prefix + f for f in spec.hf_files] + [prefix + weight]
        with _hf_progress(progress):
            snap = Path(snapshot_download(spec.repo_id, revision=spec.revision, cache_dir=str(work),
                                          allow_patterns=patterns))
        if (snap / prefix / weight).is_file():
            chosen = weight
            break
    if snap is None or chosen is None:
        raise WeightsUnavailable(spec.name, f"the hub repo {spec.repo_id}/{prefix} has none of "
                                 f"{', '.join(spec.filenames)}",
                                 f"`bench weights import {spec.name} PATH` a copy you obtained elsewhere")
    hashes, all_checked = {}, True
    for rel in (*spec.hf_files, chosen):
        src = snap / prefix / rel
        if not src.is_file():
            raise WeightsUnavailable(spec.name, f"the hub repo {spec.repo_id}/{prefix} has no {rel}",
                                     f"`bench weights import {spec.name} PATH` a copy you obtained elsewhere")
        digest, checked = _move_hub_file(spec, src, payload / rel)
        hashes[rel] = digest
        all_checked = all_checked and (checked or rel in spec.hf_files)  # small text files are not LFS
    origin = f"https://huggingface.co/{spec.repo_id}/tree/{snap.name}/{prefix.rstrip('/')}".rstrip("/")
    return _Download(origin, hashes, all_checked)


_DOWNLOADERS: dict[str, Callable[[ComponentSpec, Path, Path, bool], _Download]] = {
    "url": _dl_url,
    "torchvision": _dl_url,
    "open_clip": _dl_open_clip,
    "timm": _dl_timm,
    "hf": _dl_hf,
    "files": _dl_files,
}


def fetch(name: str | ComponentSpec, progress: bool = True, force: bool = False) -> ResolvedWeights:
    """Download a component into the store, verify it, and install it atomically.

    Already in the store and intact: returned as is unless ``force``. In offline mode this
    raises a :class:`WeightsUnavailable` (a BenchError) before anything touches the network.
    """
    spec = as_spec(name)
    if is_offline():
        raise WeightsUnavailable(spec.name, f"offline mode is on ({offline_reason()}); fetching needs the network",
                                 f"run `bench weights fetch {spec.name}` on a connected machine and copy "
                                 f"{store_dir()} here, or `bench weights import {spec.name} PATH`")
    if not force:
        with contextlib.suppress(WeightsUnavailable):
            existing = resolve_store(spec)
            if existing is not None:
                return existing
    host = _download_host(spec)
    if host is not None and not _host_reachable(*host):
        raise WeightsUnavailable(spec.name, f"cannot reach {host[0]} (no network?) to download {spec.origin}",
                                 f"run `bench weights fetch {spec.name}` on a connected machine and copy "
                                 f"{store_dir()} here, or `bench weights import {spec.name} PATH`; set "
                                 f"BENCH_OFFLINE=1 to skip download attempts")
    with tmp_workdir(spec.name) as work:
        payload, download_dir = work / "entry", work / "download"
        payload.mkdir()
        download_dir.mkdir()
        try:
            got = _DOWNLOADERS[spec.kind](spec, download_dir, payload, progress)
        except BenchError:
            raise
        except Exception as err:  # network, HTTP, gated repo, disk: one line, with the fix
            hint = (" (a gated repo: accept its licence on huggingface.co and set HF_TOKEN)"
                    if "gated" in type(err).__name__.lower() or "401" in str(err) else "")
            raise WeightsUnavailable(
                spec.name, f"download from {spec.origin} failed: {type(err).__name__}: {err}{hint}",
                f"check the connection and retry `bench weights fetch {spec.name}`, or "
                f"`bench weights import {spec.name} PATH` a copy obtained elsewhere") from err
        resolved = install_entry(spec, payload, origin=got.origin, method="fetch", where=got.origin or spec.origin,
                            known=got.hashes, hub_verified=got.hub_verified)
    return replace(resolved, source="download")
