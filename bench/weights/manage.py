"""``bench weights import`` and ``list``, ``--weights NAME=PATH`` parsing, and the rule for when a
detector may run with randomly initialised weights.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Iterable, Mapping

from bench.core.errors import BenchError
from bench.weights.catalog import ComponentSpec, component_names, get_spec
from bench.weights.checksums import (
    as_spec,
    check_checksum,
    file_sha256,
    folder_files,
    tree_digest,
    usable_path,
)
from bench.weights.contents import check_weights_file
from bench.weights.records import ResolvedWeights, WeightsUnavailable
from bench.weights.resolver import locate, resolve
from bench.weights.store import install_entry, tmp_workdir


# --------------------------------------------------------------------------- import


def import_weights(name: str | ComponentSpec, path: str | os.PathLike) -> ResolvedWeights:
    """Verify a file (or diffusers folder) obtained elsewhere and copy it into the store atomically.

    Each file must hold what the loaders use (:mod:`bench.weights.contents`: a torch file loads with
    ``weights_only=True`` into a dict), or it is a one-line BenchError before anything is copied.

    A known checksum that does not match raises :class:`ChecksumMismatch` (a BenchError naming
    both hashes) and leaves the store untouched. Without a known checksum the file's sha256 is
    recorded (trust on first use).
    """
    spec = as_spec(name)
    usable, why = usable_path(spec, Path(path).expanduser())
    if usable is None:
        raise BenchError(f"cannot import {spec.name}: {why}")
    usable = Path(os.path.abspath(usable))  # a hub snapshot link keeps its own name, not its blob's
    rels = [usable.name] if usable.is_file() else (folder_files(spec, usable)[0] or [])
    for rel in rels:
        check_weights_file(spec, usable if usable.is_file() else usable / rel)
    hashes = {rel: file_sha256(usable if usable.is_file() else usable / rel) for rel in rels}
    digest = hashes[rels[0]] if usable.is_file() else tree_digest(hashes)
    check_checksum(spec, digest, str(usable), f"check where {usable} came from; `bench weights list` shows what "
           f"{spec.name} should be, and `bench weights fetch {spec.name}` gets the right file")  # fail before copying
    with tmp_workdir(spec.name) as work:
        payload = work / "entry"
        payload.mkdir()
        for rel in rels:
            src = usable if usable.is_file() else usable / rel
            (payload / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, payload / rel)
        return install_entry(spec, payload, origin=f"import: {usable}", method="import", where=str(usable),
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
        from bench.core.registries import DETECTORS, load_plugins

        load_plugins()
        out: dict[str, list[str]] = {}
        for det in DETECTORS.names():
            for comp in DETECTORS.entry(det).meta.get("weights", ()) or ():
                out.setdefault(comp, []).append(det)
        return out
    except Exception:  # listing weights must work even if a plugin package is broken
        return {}


def _status(spec: ComponentSpec, overrides: Mapping[str, str] | None) -> tuple[str, Any, str]:
    """What ``bench run`` would make of a component now, offline: ("present", ResolvedWeights, ""),
    ("invalid", None, reason naming the expected and the found hash) or ("missing", None, reason)."""
    try:
        return "present", resolve(spec, overrides=overrides, offline=True, download=False, progress=False), ""
    except WeightsUnavailable as err:
        return ("invalid" if locate(spec, overrides) else "missing"), None, err.reason


def describe_status(overrides: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """One dict per declared component for ``bench weights list``: the status ``bench run`` would see
    (files found are hashed and checked, once per size and mtime; nothing touches the network)."""
    users = _detectors_using()
    rows = []
    for name in component_names():
        spec = get_spec(name)
        status, found, reason = _status(spec, overrides)
        rows.append({
            "name": name,
            "status": status,
            "found_in": found.source if found else None,
            "path": str(found.path) if found else None,
            "verification": found.verification if found else None,
            "found_sha256": found.sha256 if found else None,
            "reason": reason,
            "kind": spec.kind,
            "source": spec.origin,
            "size_mb": spec.size_mb,
            "licence": spec.licence,
            "paper": spec.paper,
            "sha256": spec.sha256,
            "alt_sha256": list(spec.alt_sha256),  # published for another form of the weights (e.g. OpenAI's .pt)
            "file_sha256": {f: h for f, h in zip(spec.filenames, spec.file_sha256) if h},
            "urls": list(spec.public_urls),
            "description": spec.description,
            "used_by": list(spec.used_by),
            "detectors": users.get(name, []),
        })
    return rows
