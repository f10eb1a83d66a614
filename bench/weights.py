"""Pretrained weights: one resolver, a local store, offline mode, provenance.

Every detector gets its pretrained components (declared in
:mod:`bench.weights_catalog`) through :func:`resolve`, which looks, in order:

1. an explicit path given by the user (``--weights NAME=PATH`` or a config file);
2. the local store, ``$BENCH_WEIGHTS_DIR`` (default: the user cache dir,
   ``aigi-bench/weights``), one folder per component;
3. the libraries' own caches: the Hugging Face hub cache, the torch hub cache
   (``$TORCH_HOME/hub/checkpoints``) and, for OpenAI CLIP, ``~/.cache/clip``;
4. a download into the store, unless offline (``BENCH_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``).

Whatever is found is hashed and checked against the catalog's sha256 (or the
hash pinned when the store entry was made), and comes back as a
:class:`ResolvedWeights` whose :meth:`~ResolvedWeights.to_record` goes into
run.json. When nothing usable is found, :class:`WeightsUnavailable` says why in
one line and gives the exact command that fixes it.

Store layout::

    $BENCH_WEIGHTS_DIR/
        clip_vit_b16/open_clip_model.safetensors
        clip_vit_b16/.provenance.json          where it came from, sha256, size and mtime
        sd_vae_sd1/config.json                 a folder component is the folder itself
        sd_vae_sd1/diffusion_pytorch_model.safetensors
        sd_vae_sd1/.provenance.json
        .hash-cache.json                       sha256 of files already hashed (path, size, mtime)
        .tmp/                                  downloads in progress (renamed into place when verified)

Folder checksum (:func:`sha256_path`): the sha256 of the lines
``"<relative/posix/path>\\0<sha256 of the file>\\n"`` sorted by path, over the
folder's regular files; names starting with "." are ignored. For a diffusers
folder component only its declared files count (config.json and the weight file
diffusers would load), so the same model hashes the same in the store, the hub
cache or a user's folder.

Trust on first use: where the catalog has no checksum, a hub download is
checked against the hub's own LFS sha256, and the store records the sha256 of
what it fetched or imported; a later change of the stored bytes is an error.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import shutil
import socket
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping
from urllib.parse import urlparse

from bench.atomic import write_text
from bench.errors import BenchError
from bench.hashing import sha256_file
from bench.weights_catalog import ComponentSpec, component_names, get_spec

__all__ = [
    "ChecksumMismatch",
    "ComponentSpec",
    "ResolvedWeights",
    "SOURCES",
    "WeightsUnavailable",
    "describe_status",
    "fetch",
    "import_weights",
    "is_offline",
    "parse_weight_overrides",
    "random_weights_allowed",
    "resolve",
    "sha256_path",
    "store_dir",
]

#: Where a resolved component came from, in resolution order.
SOURCES = ("override", "store", "hf-cache", "torch-cache", "clip-cache", "download")
PROVENANCE_FILE = ".provenance.json"
HASH_CACHE_FILE = ".hash-cache.json"
TMP_DIR = ".tmp"
_TRUE = {"1", "true", "yes", "on"}
_HEX64 = re.compile(r"[0-9a-f]{64}")


# --------------------------------------------------------------------------- errors and results


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


class WeightsUnavailable(BenchError):
    """A component cannot be resolved. ``str(err)`` is one line: the reason and the exact fix."""

    def __init__(self, name: str, reason: str, fix: str):
        self.name = name
        self.reason = _one_line(reason)
        self.fix = _one_line(fix)
        super().__init__(f"weights {name!r} unavailable: {self.reason}; fix: {self.fix}")


class ChecksumMismatch(WeightsUnavailable):
    """The bytes found do not hash to what the catalog (or the store's pin) expects."""

    def __init__(self, name: str, where: str, expected: str, actual: str, fix: str):
        self.where = where
        self.expected = expected
        self.actual = actual
        super().__init__(name, f"checksum mismatch for {where}: expected sha256 {expected}, got {actual}", fix)


@dataclass(frozen=True)
class ResolvedWeights:
    """A component found on disk: where, how it got there, and what it hashes to."""

    name: str
    path: Path  # a file, or a folder for folder components (diffusers models)
    source: str  # one of SOURCES
    sha256: str  # of the file, or the folder hash of sha256_path
    verification: str = "unverified"  # "catalog" (matches the catalog's hash), "hub" (the hub's LFS sha256),
    # "pinned" (matches the hash recorded when the store entry was made), "unverified" (no known hash)
    origin: str = ""  # URL / hub file / imported path it originally came from, when known

    def to_record(self) -> dict[str, Any]:
        """The run.json entry for this component."""
        return {"component": self.name, "source": self.source, "path": str(self.path), "sha256": self.sha256,
                "verification": self.verification, "origin": self.origin}


# --------------------------------------------------------------------------- environment


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in _TRUE


def is_offline() -> bool:
    """True when ``BENCH_OFFLINE`` or ``HF_HUB_OFFLINE`` is set to 1/true/yes/on: nothing touches the network."""
    return _truthy(os.environ.get("BENCH_OFFLINE")) or _truthy(os.environ.get("HF_HUB_OFFLINE"))


def _offline_reason() -> str:
    names = [n for n in ("BENCH_OFFLINE", "HF_HUB_OFFLINE") if _truthy(os.environ.get(n))]
    return "=1, ".join(names) + "=1" if names else "offline=True"


def store_dir() -> Path:
    """The local weights store: ``$BENCH_WEIGHTS_DIR``, else ``<user cache dir>/aigi-bench/weights``."""
    env = os.environ.get("BENCH_WEIGHTS_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("aigi-bench")) / "weights"


def _xdg_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser()


def hf_hub_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment now (as huggingface_hub does at import)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    home = os.environ.get("HF_HOME")
    return (Path(home).expanduser() if home else _xdg_cache() / "huggingface") / "hub"


def torch_hub_checkpoints_dir() -> Path:
    """Where torch.hub / torchvision / old timm keep downloaded checkpoints."""
    home = os.environ.get("TORCH_HOME")
    return (Path(home).expanduser() if home else _xdg_cache() / "torch") / "hub" / "checkpoints"


def clip_cache_dir() -> Path:
    """Where OpenAI's clip package and open_clip's URL downloads keep the original CLIP .pt files."""
    return Path("~/.cache/clip").expanduser()


# --------------------------------------------------------------------------- hashing


def _matches(actual: str, expected: str) -> bool:
    """A full sha256, or a prefix of at least 8 hex digits (torch hub file-name convention)."""
    expected = expected.lower()
    return len(expected) >= 8 and actual.lower().startswith(expected)


def _tree_files(root: Path) -> list[str]:
    """Regular files under root as sorted relative POSIX paths; hidden names (".*") are skipped."""
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for fn in filenames:
            if not fn.startswith(".") and os.path.isfile(os.path.join(dirpath, fn)):
                out.append(Path(os.path.relpath(os.path.join(dirpath, fn), root)).as_posix())
    return sorted(out)


def _tree_digest(file_hashes: Mapping[str, str]) -> str:
    h = hashlib.sha256()
    for rel in sorted(file_hashes):
        h.update(f"{rel}\0{file_hashes[rel]}\n".encode("utf-8"))
    return h.hexdigest()


def sha256_path(path: str | os.PathLike, files: Iterable[str] | None = None) -> str:
    """sha256 of a file, or the deterministic hash of a folder (see the module docstring).

    ``files`` restricts a folder hash to those relative paths.
    """
    p = Path(path)
    if p.is_file():
        return sha256_file(str(p))
    if not p.is_dir():
        raise FileNotFoundError(str(p))
    rels = sorted(files) if files is not None else _tree_files(p)
    return _tree_digest({rel: sha256_file(str(p / rel)) for rel in rels})


def _load_hash_cache() -> dict[str, Any]:
    try:
        data = json.loads((store_dir() / HASH_CACHE_FILE).read_text("utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _file_sha256(path: Path) -> str:
    """sha256 of a file, remembered in the store by (real path, size, mtime) so a 1.7 GB file is hashed once."""
    real = os.path.realpath(path)
    st = os.stat(real)
    cache = _load_hash_cache()
    hit = cache.get(real)
    if isinstance(hit, dict) and hit.get("size") == st.st_size and hit.get("mtime_ns") == st.st_mtime_ns:
        return str(hit["sha256"])
    digest = sha256_file(real)
    cache[real] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
    with contextlib.suppress(OSError):  # a read-only store just means no caching
        write_text(store_dir() / HASH_CACHE_FILE, json.dumps(cache, indent=1, sort_keys=True))
    return digest


# --------------------------------------------------------------------------- what a usable path looks like


def _spec(name: str | ComponentSpec) -> ComponentSpec:
    return name if isinstance(name, ComponentSpec) else get_spec(name)


def _url_basename(url: str) -> str:
    return os.path.basename(urlparse(url).path)


def _folder_files(spec: ComponentSpec, folder: Path) -> tuple[list[str] | None, str]:
    """The declared files of a folder component present in ``folder``, or None and what is missing."""
    missing = [f for f in spec.hf_files if not (folder / f).is_file()]
    weight = next((f for f in spec.filenames if (folder / f).is_file()), None)
    if weight is None:
        missing.append(" or ".join(spec.filenames))
    if missing:
        return None, f"lacks {', '.join(missing)}"
    return [*spec.hf_files, weight], ""


def _usable(spec: ComponentSpec, path: Path) -> tuple[Path | None, str]:
    """The path a loader should get (a file, or a folder for folder components), or None and why not."""
    if not path.exists():
        return None, f"{path} does not exist"
    if spec.is_folder:
        if path.is_file():
            return None, f"{path} is a file, but {spec.name} is a folder ({', '.join(spec.hf_files)} + weights)"
        files, why = _folder_files(spec, path)
        if files is None and spec.subfolder and (path / spec.subfolder).is_dir():
            if _folder_files(spec, path / spec.subfolder)[0] is not None:  # the user pointed at the repo root
                return path / spec.subfolder, ""
        return (path, "") if files is not None else (None, f"{path} {why}")
    if path.is_file():
        return path, ""
    prov = _read_provenance(path)
    if prov and prov.get("file") and (path / prov["file"]).is_file():
        return path / prov["file"], ""
    for fn in (*spec.filenames, _url_basename(spec.url) if spec.url else ""):
        if fn and (path / fn).is_file():
            return path / fn, ""
    files = _tree_files(path)
    if len(files) == 1:
        return path / files[0], ""
    return None, f"{path} is a folder with {len(files)} files; give the weight file itself"


def _component_sha256(spec: ComponentSpec, path: Path) -> str:
    if path.is_file():
        return _file_sha256(path)
    files = _folder_files(spec, path)[0] if spec.is_folder else _tree_files(path)
    return _tree_digest({rel: _file_sha256(path / rel) for rel in files or []})


def _check(spec: ComponentSpec, actual: str, where: str, fix: str, pinned: str | None = None) -> str:
    """How ``actual`` is vouched for; raises ChecksumMismatch when it contradicts a known hash."""
    known = ([spec.sha256] if spec.sha256 else []) + list(spec.alt_sha256)
    if any(_matches(actual, k) for k in known):
        return "catalog"
    if spec.sha256:  # the catalog is authoritative, whatever was pinned earlier
        expected = spec.sha256 + (f" (or {', '.join(spec.alt_sha256)})" if spec.alt_sha256 else "")
        raise ChecksumMismatch(spec.name, where, expected, actual, fix)
    if pinned:
        if actual == pinned:
            return "pinned"
        raise ChecksumMismatch(spec.name, where, pinned, actual, fix)
    return "unverified"


def _fix_missing(spec: ComponentSpec) -> str:
    return (f"run `bench weights fetch {spec.name}` (offline: run it on a connected machine and copy "
            f"{store_dir()} here, or `bench weights import {spec.name} PATH`)")


# --------------------------------------------------------------------------- the store


def _read_provenance(entry: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((entry / PROVENANCE_FILE).read_text("utf-8"))
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def _stats_match(entry: Path, files: Mapping[str, Any]) -> bool:
    try:
        for rel, rec in files.items():
            st = (entry / rel).stat()
            if st.st_size != rec["size"] or st.st_mtime_ns != rec["mtime_ns"]:
                return False
    except (OSError, KeyError, TypeError):
        return False
    return bool(files)


def _resolve_store(spec: ComponentSpec, rehash: bool = False) -> ResolvedWeights | None:
    entry = store_dir() / spec.name
    if not entry.is_dir():
        return None
    fix = f"run `bench weights fetch {spec.name} --force` or `bench weights import {spec.name} PATH`"
    usable, why = _usable(spec, entry)
    if usable is None and not _tree_files(entry):
        return None  # an empty folder (or only leftovers such as .provenance.json) is no entry
    if usable is None:
        raise WeightsUnavailable(spec.name, f"the store entry is incomplete: {why}", fix)
    prov = _read_provenance(entry) or {}
    pinned = prov.get("sha256") if isinstance(prov.get("sha256"), str) else None
    if pinned and not rehash and _stats_match(entry, prov.get("files") or {}):
        actual = pinned  # unchanged since it was verified and recorded
    else:
        actual = _component_sha256(spec, usable)
    verification = _check(spec, actual, str(usable), fix, pinned=pinned)
    if verification == "pinned" and prov.get("verification") in ("catalog", "hub"):
        verification = prov["verification"]
    return ResolvedWeights(spec.name, usable, "store", actual, verification, str(prov.get("origin", "")))


def _replace_dir(src: Path, dst: Path) -> None:
    """Move a finished folder into place; an old entry is swapped out, never half-overwritten."""
    if dst.exists() or dst.is_symlink():
        old = dst.with_name(f".{dst.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(dst, old)
        try:
            os.replace(src, dst)
        except BaseException:
            os.replace(old, dst)
            raise
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
    else:
        os.replace(src, dst)


@contextlib.contextmanager
def _tmp_workdir(name: str) -> Iterator[Path]:
    """A scratch folder inside the store (same file system, so the final rename is atomic)."""
    base = store_dir() / TMP_DIR
    base.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for stale in base.iterdir():  # left behind by a killed fetch more than a day ago
        with contextlib.suppress(OSError):
            if now - stale.stat().st_mtime > 86400:
                shutil.rmtree(stale, ignore_errors=True)
    work = base / f"{name}-{uuid.uuid4().hex[:12]}"
    work.mkdir()
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)
        with contextlib.suppress(OSError):
            base.rmdir()  # only when empty: no other fetch is running


def _install(spec: ComponentSpec, payload: Path, *, origin: str, method: str, where: str,
             known: Mapping[str, str] | None = None, hub_verified: bool = False,
             extra: Mapping[str, Any] | None = None) -> ResolvedWeights:
    """Verify a finished payload folder, write its provenance, and rename it into the store."""
    known = dict(known or {})
    if spec.is_folder:
        files, why = _folder_files(spec, payload)
        if files is None:
            raise WeightsUnavailable(spec.name, f"{where} {why}", _fix_missing(spec))
        main_file = None
    else:
        files = _tree_files(payload)
        if len(files) != 1:
            raise BenchError(f"internal: expected one weight file for {spec.name}, got {files}")
        main_file = files[0]
    hashes = {rel: known.get(rel) or sha256_file(str(payload / rel)) for rel in files}
    digest = hashes[main_file] if main_file else _tree_digest(hashes)
    fix = (f"check the source of {where}; the catalog expects the weights described by "
           f"`bench weights list`" if method == "import" else
           f"retry `bench weights fetch {spec.name}`; if it persists the upstream file changed: "
           f"report it, or `bench weights import {spec.name} PATH` a file you trust")
    verification = _check(spec, digest, where, fix)
    if verification == "unverified" and hub_verified:
        verification = "hub"
    stats = {}
    for rel in files:
        st = (payload / rel).stat()
        stats[rel] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": hashes[rel]}
    record = {
        "name": spec.name, "kind": spec.kind, "file": main_file, "sha256": digest, "verification": verification,
        "origin": origin, "method": method, "catalog_sha256": spec.sha256,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "files": stats, **dict(extra or {}),
    }
    write_text(payload / PROVENANCE_FILE, json.dumps(record, indent=2, sort_keys=True) + "\n")
    entry = store_dir() / spec.name
    _replace_dir(payload, entry)
    path = entry / main_file if main_file else entry
    return ResolvedWeights(spec.name, path, "store", digest, verification, origin)


# --------------------------------------------------------------------------- library caches


def _hf_snapshot(repo_id: str, revision: str | None) -> Path | None:
    """The snapshot folder of a model repo in the hub cache for that revision, if present."""
    repo_dir = hf_hub_cache_dir() / ("models--" + repo_id.strip("/").replace("/", "--"))
    if not repo_dir.is_dir():
        return None
    rev = revision or "main"
    ref = repo_dir / "refs" / rev
    if ref.is_file():
        commit = ref.read_text("utf-8").strip()
    elif re.fullmatch(r"[0-9a-f]{40}", rev):
        commit = rev
    else:
        return None
    snap = repo_dir / "snapshots" / commit
    return snap if snap.is_dir() else None


def _cache_candidates(spec: ComponentSpec) -> list[tuple[str, Path]]:
    out: list[tuple[str, Path]] = []
    if spec.repo_id:
        snap = _hf_snapshot(spec.repo_id, spec.revision)
        if snap is not None:
            base = snap / spec.subfolder if spec.subfolder else snap
            if spec.is_folder:
                out.append(("hf-cache", base))
            else:
                out.extend(("hf-cache", base / f) for f in spec.filenames if (base / f).is_file())
    # torch hub file names carry a hash prefix; a plain URL's name ("vgg.pth") is only trusted with a known hash
    if spec.url and (spec.kind in ("torchvision", "timm") or (spec.kind == "url" and spec.sha256)):
        p = torch_hub_checkpoints_dir() / _url_basename(spec.url)
        if p.is_file():
            out.append(("torch-cache", p))
    if spec.kind == "open_clip" and spec.url:
        p = clip_cache_dir() / _url_basename(spec.url)
        if p.is_file():
            out.append(("clip-cache", p))
    return out


def _locate(spec: ComponentSpec, overrides: Mapping[str, str] | None = None) -> tuple[str, Path] | None:
    """Where resolve() would look first with success, without hashing anything."""
    if overrides and spec.name in overrides:
        usable, _ = _usable(spec, Path(overrides[spec.name]).expanduser())
        return ("override", usable) if usable else None
    entry = store_dir() / spec.name
    if entry.is_dir():
        usable, _ = _usable(spec, entry)
        if usable:
            return "store", usable
    for source, path in _cache_candidates(spec):
        usable, _ = _usable(spec, path)
        if usable:
            return source, usable
    return None


# --------------------------------------------------------------------------- resolve


def resolve(name: str | ComponentSpec, overrides: Mapping[str, str] | None = None, offline: bool | None = None,
            *, download: bool = True, progress: bool = True, rehash: bool = False) -> ResolvedWeights:
    """Find a component on disk (override, store, library caches) or download it into the store.

    ``offline=None`` reads :func:`is_offline`. ``download=False`` never downloads even when online.
    ``rehash=True`` re-hashes store files even when their size and mtime are unchanged.
    Raises :class:`WeightsUnavailable` (a one-line reason and the fix command); a
    :class:`ChecksumMismatch` for an override or a store entry whose bytes contradict the known hash.
    """
    spec = _spec(name)
    offline = is_offline() if offline is None else offline
    if overrides and spec.name in overrides:
        raw = overrides[spec.name]
        usable, why = _usable(spec, Path(raw).expanduser())
        fix = f"give an existing {'folder' if spec.is_folder else 'file'} in --weights {spec.name}=PATH"
        if usable is None:
            raise WeightsUnavailable(spec.name, f"--weights {spec.name}={raw}: {why}", fix)
        usable = usable.resolve()
        actual = _component_sha256(spec, usable)
        verification = _check(spec, actual, str(usable), f"point --weights {spec.name}=PATH at the weights the "
                              f"catalog describes (`bench weights list`)")
        return ResolvedWeights(spec.name, usable, "override", actual, verification, str(usable))

    found = _resolve_store(spec, rehash=rehash)
    if found is not None:
        return found

    passed_over: list[str] = []
    for source, path in _cache_candidates(spec):
        usable, why = _usable(spec, path)
        if usable is None:
            passed_over.append(f"{source}: {why}")
            continue
        actual = _component_sha256(spec, usable)
        try:
            verification = _check(spec, actual, str(usable), "")
        except ChecksumMismatch:
            passed_over.append(f"{source} copy {usable} has sha256 {actual}")
            continue
        return ResolvedWeights(spec.name, usable, source, actual, verification, str(usable))

    reason = f"not found in the store ({store_dir() / spec.name}) or the library caches"
    if passed_over:
        reason += " (passed over: " + "; ".join(passed_over) + ")"
    if offline:
        raise WeightsUnavailable(spec.name, f"{reason}, and offline mode is on ({_offline_reason()})",
                                 _fix_missing(spec))
    if not download:
        raise WeightsUnavailable(spec.name, reason, _fix_missing(spec))
    return fetch(spec, progress=progress, force=True)


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
    if _HEX64.fullmatch(real.name):
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
    fn = _url_basename(spec.url) or f"{spec.name}.bin"
    _download_url(spec.url, payload / fn, progress)
    return _Download(spec.url, {}, False)


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
        raise WeightsUnavailable(spec.name, "open_clip returned no file", _fix_missing(spec))
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
}


def fetch(name: str | ComponentSpec, progress: bool = True, force: bool = False) -> ResolvedWeights:
    """Download a component into the store, verify it, and install it atomically.

    Already in the store and intact: returned as is unless ``force``. In offline mode this
    raises a :class:`WeightsUnavailable` (a BenchError) before anything touches the network.
    """
    spec = _spec(name)
    if is_offline():
        raise WeightsUnavailable(spec.name, f"offline mode is on ({_offline_reason()}); fetching needs the network",
                                 f"run `bench weights fetch {spec.name}` on a connected machine and copy "
                                 f"{store_dir()} here, or `bench weights import {spec.name} PATH`")
    if not force:
        with contextlib.suppress(WeightsUnavailable):
            existing = _resolve_store(spec)
            if existing is not None:
                return existing
    host = _download_host(spec)
    if host is not None and not _host_reachable(*host):
        raise WeightsUnavailable(spec.name, f"cannot reach {host[0]} (no network?) to download {spec.origin}",
                                 f"run `bench weights fetch {spec.name}` on a connected machine and copy "
                                 f"{store_dir()} here, or `bench weights import {spec.name} PATH`; set "
                                 f"BENCH_OFFLINE=1 to skip download attempts")
    with _tmp_workdir(spec.name) as work:
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
        resolved = _install(spec, payload, origin=got.origin, method="fetch", where=got.origin or spec.origin,
                            known=got.hashes, hub_verified=got.hub_verified)
    return replace(resolved, source="download")


# --------------------------------------------------------------------------- import


def import_weights(name: str | ComponentSpec, path: str | os.PathLike) -> ResolvedWeights:
    """Verify a file (or diffusers folder) obtained elsewhere and copy it into the store atomically.

    A known checksum that does not match raises :class:`ChecksumMismatch` (a BenchError naming
    both hashes) and leaves the store untouched. Without a known checksum the file's sha256 is
    recorded (trust on first use).
    """
    spec = _spec(name)
    usable, why = _usable(spec, Path(path).expanduser())
    if usable is None:
        raise BenchError(f"cannot import {spec.name}: {why}")
    usable = usable.resolve()
    rels = [usable.name] if usable.is_file() else (_folder_files(spec, usable)[0] or [])
    hashes = {rel: _file_sha256(usable if usable.is_file() else usable / rel) for rel in rels}
    digest = hashes[rels[0]] if usable.is_file() else _tree_digest(hashes)
    _check(spec, digest, str(usable), f"check where {usable} came from; `bench weights list` shows what "
           f"{spec.name} should be, and `bench weights fetch {spec.name}` gets the right file")  # fail before copying
    with _tmp_workdir(spec.name) as work:
        payload = work / "entry"
        payload.mkdir()
        for rel in rels:
            src = usable if usable.is_file() else usable / rel
            (payload / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, payload / rel)
        return _install(spec, payload, origin=f"import: {usable}", method="import", where=str(usable),
                        known=hashes)


# --------------------------------------------------------------------------- user input and listing


def parse_weight_overrides(items: Iterable[str] | Mapping[str, str] | None, *,
                           check_exists: bool = True) -> dict[str, str]:
    """``["NAME=PATH", ...]`` (``--weights``) or a ``{NAME: PATH}`` mapping (a config file) -> ``{NAME: PATH}``.

    Names must be declared components (unknown ones raise with close matches); paths are
    expanded and made absolute, and must exist unless ``check_exists=False``.
    """
    if not items:
        return {}
    pairs: list[tuple[str, str]] = []
    if isinstance(items, Mapping):
        pairs = [(str(k), str(v)) for k, v in items.items()]
    else:
        for item in items:
            name, sep, raw = str(item).partition("=")
            if not sep or not name.strip() or not raw.strip():
                raise BenchError(f"--weights expects NAME=PATH (e.g. clip_vit_b16=/data/ViT-B-16.pt), got {item!r}")
            pairs.append((name, raw))
    out: dict[str, str] = {}
    for name, raw in pairs:
        name, raw = name.strip(), raw.strip()
        get_spec(name)  # unknown -> "unknown weights component 'x'; did you mean ...?"
        path = str(Path(raw).expanduser().absolute())
        if name in out and out[name] != path:
            raise BenchError(f"--weights gives two paths for {name}: {out[name]} and {path}")
        if check_exists and not Path(path).exists():
            raise BenchError(f"--weights {name}={raw}: no such file or folder")
        out[name] = path
    return out


def random_weights_allowed(detector_name: str, flag: bool) -> bool:
    """Random initialisation is allowed for ``test_*`` detectors/variants, or with ``--random-weights``."""
    return bool(flag) or any(part.startswith("test_") for part in detector_name.split("."))


def _detectors_using() -> dict[str, list[str]]:
    """Component name -> registered detectors that declare it (from registry metadata; no model imports)."""
    try:
        from bench.registries import DETECTORS, load_plugins

        load_plugins()
        out: dict[str, list[str]] = {}
        for det in DETECTORS.names():
            for comp in DETECTORS.entry(det).meta.get("weights", ()) or ():
                out.setdefault(comp, []).append(det)
        return out
    except Exception:  # listing weights must work even if a plugin package is broken
        return {}


def describe_status(overrides: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """One dict per declared component for ``bench weights list`` (hashes nothing, touches no network)."""
    users = _detectors_using()
    rows = []
    for name in component_names():
        spec = get_spec(name)
        found = _locate(spec, overrides)
        rows.append({
            "name": name,
            "status": "present" if found else "missing",
            "found_in": found[0] if found else None,
            "path": str(found[1]) if found else None,
            "kind": spec.kind,
            "source": spec.origin,
            "size_mb": spec.size_mb,
            "licence": spec.licence,
            "paper": spec.paper,
            "sha256": spec.sha256,
            "description": spec.description,
            "used_by": list(spec.used_by),
            "detectors": users.get(name, []),
        })
    return rows
