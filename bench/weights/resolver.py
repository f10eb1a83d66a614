"""Resolve a component to a local path: an override, the store, the libraries' caches, then a
download (unless offline). The resolution order is described in :mod:`bench.weights`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping

from bench.weights.catalog import ComponentSpec
from bench.weights.checksums import (
    as_spec,
    check_checksum,
    component_sha256,
    expected_hashes,
    file_sha256,
    fix_missing,
    folder_files,
    url_basename,
    usable_path,
)
from bench.weights.download import fetch
from bench.weights.locations import (
    HEX64,
    clip_cache_dir,
    hf_hub_cache_dir,
    is_offline,
    offline_reason,
    store_dir,
    torch_hub_checkpoints_dir,
)
from bench.weights.records import ChecksumMismatch, ResolvedWeights, WeightsUnavailable
from bench.weights.store import resolve_store


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
        p = torch_hub_checkpoints_dir() / url_basename(spec.url)
        if p.is_file():
            out.append(("torch-cache", p))
    if spec.kind == "open_clip" and spec.url:
        p = clip_cache_dir() / url_basename(spec.url)
        if p.is_file():
            out.append(("clip-cache", p))
    return out


def _hub_blobs_match(spec: ComponentSpec, usable: Path) -> bool:
    """True when every file of a hub cache copy links to a blob named by its sha256 and the bytes match it
    (the hub names large files' blobs by their sha256: the hub vouches for them)."""
    files = [usable] if usable.is_file() else [usable / rel for rel in folder_files(spec, usable)[0] or []]
    for f in files:
        real = Path(os.path.realpath(f))
        if not HEX64.fullmatch(real.name) or file_sha256(real) != real.name:
            return False
    return bool(files)


def locate(spec: ComponentSpec, overrides: Mapping[str, str] | None = None) -> tuple[str, Path] | None:
    """Where resolve() would look first with success, without hashing anything."""
    if overrides and spec.name in overrides:
        usable, _ = usable_path(spec, Path(overrides[spec.name]).expanduser())
        return ("override", usable) if usable else None
    entry = store_dir() / spec.name
    if entry.is_dir():
        usable, _ = usable_path(spec, entry)
        if usable:
            return "store", usable
    for source, path in _cache_candidates(spec):
        usable, _ = usable_path(spec, path)
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
    spec = as_spec(name)
    offline = is_offline() if offline is None else offline
    if overrides and spec.name in overrides:
        raw = overrides[spec.name]
        usable, why = usable_path(spec, Path(raw).expanduser())
        fix = f"give an existing {'folder' if spec.is_folder else 'file'} in --weights {spec.name}=PATH"
        if usable is None:
            raise WeightsUnavailable(spec.name, f"--weights {spec.name}={raw}: {why}", fix)
        usable = Path(os.path.abspath(usable))  # keep a link's own name (a hub blob has no suffix)
        actual = component_sha256(spec, usable)
        verification = check_checksum(spec, actual, str(usable), f"point --weights {spec.name}=PATH at the weights the "
                              f"catalog describes (`bench weights list`)")
        return ResolvedWeights(spec.name, usable, "override", actual, verification, str(usable))

    found = resolve_store(spec, rehash=rehash)
    if found is not None:
        return found

    passed_over: list[str] = []
    for source, path in _cache_candidates(spec):
        usable, why = usable_path(spec, path)
        if usable is None:
            passed_over.append(f"{source}: {why}")
            continue
        actual = component_sha256(spec, usable)
        try:
            verification = check_checksum(spec, actual, str(usable), "")
        except ChecksumMismatch:
            passed_over.append(f"{source} copy {usable} has sha256 {actual}, expected {expected_hashes(spec)}")
            continue
        if verification == "unverified" and source == "hf-cache" and _hub_blobs_match(spec, usable):
            verification = "hub"
        return ResolvedWeights(spec.name, usable, source, actual, verification, str(usable))

    reason = f"not found in the store ({store_dir() / spec.name}) or the library caches"
    if passed_over:
        reason += " (passed over: " + "; ".join(passed_over) + ")"
    if offline:
        raise WeightsUnavailable(spec.name, f"{reason}, and offline mode is on ({offline_reason()})",
                                 fix_missing(spec))
    if not download:
        raise WeightsUnavailable(spec.name, reason, fix_missing(spec))
    return fetch(spec, progress=progress, force=True)
