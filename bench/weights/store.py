"""The local weights store: one folder per component with a ``.provenance.json``; entries are
installed atomically and re-verified when their files change.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping

from bench.core.atomic import write_text
from bench.core.errors import BenchError
from bench.core.hashing import sha256_file
from bench.weights.catalog import ComponentSpec
from bench.weights.checksums import (
    check_checksum,
    component_sha256,
    fix_missing,
    folder_files,
    tree_digest,
    tree_files,
    usable_path,
)
from bench.weights.locations import PROVENANCE_FILE, TMP_DIR, read_provenance, store_dir
from bench.weights.records import ResolvedWeights, WeightsUnavailable


def _stats_match(entry: Path, files: Mapping[str, Any]) -> bool:
    try:
        for rel, rec in files.items():
            st = (entry / rel).stat()
            if st.st_size != rec["size"] or st.st_mtime_ns != rec["mtime_ns"]:
                return False
    except (OSError, KeyError, TypeError):
        return False
    return bool(files)


def resolve_store(spec: ComponentSpec, rehash: bool = False) -> ResolvedWeights | None:
    entry = store_dir() / spec.name
    if not entry.is_dir():
        return None
    fix = f"run `bench weights fetch {spec.name} --force` or `bench weights import {spec.name} PATH`"
    usable, why = usable_path(spec, entry)
    if usable is None and not tree_files(entry):
        return None  # an empty folder (or only leftovers such as .provenance.json) is no entry
    if usable is None:
        raise WeightsUnavailable(spec.name, f"the store entry is incomplete: {why}", fix)
    prov = read_provenance(entry) or {}
    pinned = prov.get("sha256") if isinstance(prov.get("sha256"), str) else None
    if pinned and not rehash and _stats_match(entry, prov.get("files") or {}):
        actual = pinned  # unchanged since it was verified and recorded
    else:
        actual = component_sha256(spec, usable)
    verification = check_checksum(spec, actual, str(usable), fix, pinned=pinned)
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
def tmp_workdir(name: str) -> Iterator[Path]:
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


def install_entry(spec: ComponentSpec, payload: Path, *, origin: str, method: str, where: str,
             known: Mapping[str, str] | None = None, hub_verified: bool = False,
             extra: Mapping[str, Any] | None = None) -> ResolvedWeights:
    """Verify a finished payload folder, write its provenance, and rename it into the store."""
    known = dict(known or {})
    if spec.is_folder:
        files, why = folder_files(spec, payload)
        if files is None:
            raise WeightsUnavailable(spec.name, f"{where} {why}", fix_missing(spec))
        main_file = None
    else:
        files = tree_files(payload)
        if len(files) != 1:
            raise BenchError(f"internal: expected one weight file for {spec.name}, got {files}")
        main_file = files[0]
    hashes = {rel: known.get(rel) or sha256_file(str(payload / rel)) for rel in files}
    digest = hashes[main_file] if main_file else tree_digest(hashes)
    fix = (f"check the source of {where}; the catalog expects the weights described by "
           f"`bench weights list`" if method == "import" else
           f"retry `bench weights fetch {spec.name}`; if it persists the upstream file changed: "
           f"report it, or `bench weights import {spec.name} PATH` a file you trust")
    verification = check_checksum(spec, digest, where, fix)
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
