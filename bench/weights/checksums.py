"""Hashing of weight files and folders (see :func:`sha256_path`), and what a usable path for a
component looks like: present, complete, and hashing to what the catalog or the store's pin expects.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlparse

from bench.core.atomic import write_text
from bench.core.hashing import sha256_file
from bench.weights.catalog import ComponentSpec, get_spec, tree_digest
from bench.weights.locations import HASH_CACHE_FILE, read_provenance, store_dir
from bench.weights.records import ChecksumMismatch


# --------------------------------------------------------------------------- hashing


def _matches(actual: str, expected: str) -> bool:
    """A full sha256, or a prefix of at least 8 hex digits (torch hub file-name convention)."""
    expected = expected.lower()
    return len(expected) >= 8 and actual.lower().startswith(expected)


def tree_files(root: Path) -> list[str]:
    """Regular files under root as sorted relative POSIX paths; hidden names (".*") are skipped."""
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for fn in filenames:
            if not fn.startswith(".") and os.path.isfile(os.path.join(dirpath, fn)):
                out.append(Path(os.path.relpath(os.path.join(dirpath, fn), root)).as_posix())
    return sorted(out)


def sha256_path(path: str | os.PathLike, files: Iterable[str] | None = None) -> str:
    """sha256 of a file, or the deterministic hash of a folder (see the module docstring).

    ``files`` restricts a folder hash to those relative paths.
    """
    p = Path(path)
    if p.is_file():
        return sha256_file(str(p))
    if not p.is_dir():
        raise FileNotFoundError(str(p))
    rels = sorted(files) if files is not None else tree_files(p)
    return tree_digest({rel: sha256_file(str(p / rel)) for rel in rels})


def _load_hash_cache() -> dict[str, Any]:
    try:
        data = json.loads((store_dir() / HASH_CACHE_FILE).read_text("utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def file_sha256(path: Path) -> str:
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


def is_safetensors(path: str | os.PathLike) -> bool:
    """True when the file's bytes are a safetensors file (8-byte little-endian header length, then a JSON
    object), whatever its name: a hub cache blob has no suffix."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return False
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < os.path.getsize(path)


def diffusers_variant(folder: str | os.PathLike) -> str | None:
    """``"fp16"`` when a diffusers model folder holds only the fp16 variant of its weights (pass it as
    ``from_pretrained(..., variant=...)``), else None."""
    folder = Path(folder)
    if any((folder / f"diffusion_pytorch_model.{ext}").is_file() for ext in ("safetensors", "bin")):
        return None
    return "fp16" if any((folder / f"diffusion_pytorch_model.fp16.{ext}").is_file()
                         for ext in ("safetensors", "bin")) else None


# --------------------------------------------------------------------------- what a usable path looks like


def as_spec(name: str | ComponentSpec) -> ComponentSpec:
    return name if isinstance(name, ComponentSpec) else get_spec(name)


def url_basename(url: str) -> str:
    return os.path.basename(urlparse(url).path)


def folder_files(spec: ComponentSpec, folder: Path) -> tuple[list[str] | None, str]:
    """The declared files of a folder component present in ``folder``, or None and what is missing."""
    if spec.kind == "files":
        missing = [f for f in spec.filenames if not (folder / f).is_file()]
        return (None, f"lacks {', '.join(missing)}") if missing else (list(spec.filenames), "")
    missing = [f for f in spec.hf_files if not (folder / f).is_file()]
    weight = next((f for f in spec.filenames if (folder / f).is_file()), None)
    if weight is None:
        missing.append(" or ".join(spec.filenames))
    if missing:
        return None, f"lacks {', '.join(missing)}"
    return [*spec.hf_files, weight], ""


def folder_contents(spec: ComponentSpec) -> str:
    """What a folder component holds, in words: its files, or its hub files and one of its weight files."""
    if spec.kind == "files":
        return ", ".join(spec.filenames)
    return ", ".join([*spec.hf_files, " or ".join(spec.filenames)])


def usable_path(spec: ComponentSpec, path: Path) -> tuple[Path | None, str]:
    """The path a loader should get (a file, or a folder for folder components), or None and why not."""
    if not path.exists():
        return None, f"{path} does not exist"
    if spec.is_folder:
        if path.is_file():
            return None, f"{path} is a file, but {spec.name} is a folder holding {folder_contents(spec)}"
        files, why = folder_files(spec, path)
        if files is None and spec.subfolder and (path / spec.subfolder).is_dir():
            if folder_files(spec, path / spec.subfolder)[0] is not None:  # the user pointed at the repo root
                return path / spec.subfolder, ""
        return (path, "") if files is not None else (None, f"{path} {why}")
    if path.is_file():
        return path, ""
    prov = read_provenance(path)
    if prov and prov.get("file") and (path / prov["file"]).is_file():
        return path / prov["file"], ""
    for fn in (*spec.filenames, url_basename(spec.url) if spec.url else ""):
        if fn and (path / fn).is_file():
            return path / fn, ""
    files = tree_files(path)
    if len(files) == 1:
        return path / files[0], ""
    return None, f"{path} is a folder with {len(files)} files; give the weight file itself"


def component_sha256(spec: ComponentSpec, path: Path) -> str:
    if path.is_file():
        return file_sha256(path)
    files = folder_files(spec, path)[0] if spec.is_folder else tree_files(path)
    return tree_digest({rel: file_sha256(path / rel) for rel in files or []})


def expected_hashes(spec: ComponentSpec) -> str:
    """The hashes the catalog knows for a component, in words (for messages)."""
    known = ([spec.sha256] if spec.sha256 else []) + list(spec.alt_sha256)
    return " or ".join(known) if known else "no published sha256"


def alt_file_name(spec: ComponentSpec) -> str | None:
    """The name of the file that ``alt_sha256`` is the published hash of (the release ``url``'s file)."""
    return url_basename(spec.url) if spec.url and spec.alt_sha256 else None


def check_checksum(spec: ComponentSpec, actual: str, where: str, fix: str, pinned: str | None = None) -> str:
    """How ``actual`` is vouched for; raises ChecksumMismatch when it contradicts a known hash.

    A known hash is always checked: the catalog's ``sha256`` for every copy, and an alternate
    (``alt_sha256``, published only for the release file, e.g. OpenAI's ``ViT-B-16.pt``) for every copy
    that bears that file's name (``where`` is a path or a URL).
    """
    known = ([spec.sha256] if spec.sha256 else []) + list(spec.alt_sha256)
    if any(_matches(actual, k) for k in known):
        return "catalog"
    alt_name = alt_file_name(spec)
    if spec.sha256 or (alt_name and url_basename(where) == alt_name):  # authoritative, whatever was pinned
        raise ChecksumMismatch(spec.name, where, expected_hashes(spec), actual, fix)
    if pinned:
        if actual == pinned:
            return "pinned"
        raise ChecksumMismatch(spec.name, where, pinned, actual, fix)
    return "unverified"


def fix_missing(spec: ComponentSpec) -> str:
    return (f"run `bench weights fetch {spec.name}` (offline: run it on a connected machine and copy "
            f"{store_dir()} here, or `bench weights import {spec.name} PATH`)")
