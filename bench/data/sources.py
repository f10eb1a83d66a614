"""What ``--dataset`` (and ``--train-on``) can name, and how each becomes manifest rows:

- a registered dataset: ``demo``, or an adapter for a published dataset, at ``NAME=PATH`` or, without a
  path, in the data store (:mod:`bench.data.store`);
- ``hf:ORG/NAME[:CONFIG][@SPLIT][[image=COL,...]]``, optionally ``=PATH``: a Hugging Face dataset's local
  Parquet files (:mod:`bench.data.hf_parquet`);
- a folder in one of the generic layouts, or a CSV manifest (:mod:`bench.data.manifest`).

An existing path always wins, so a folder whose name contains ``=`` still works.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bench.core.errors import BenchError
from bench.data.manifest import Row, Skip, finish_rows, read_manifest
from bench.data.store import dataset_dir

_NAME_EQ_PATH = re.compile(r"(?P<name>[A-Za-z0-9][\w.-]*)=(?P<path>.+)")
_HF_EQ_PATH = re.compile(r"(?P<name>hf:[^=\[\]]+(?:\[[^\]]*\])?)(?:=(?P<path>.+))?")


@dataclass
class Source:
    name: str  # what results call the dataset
    location: str  # where its files are
    synthetic: bool
    read: Callable[[bool], tuple[list[Row], list[Skip]]]  # allow_outside_paths -> rows, skips


def split_spec(spec: str) -> tuple[str, Path | None]:
    """``NAME=PATH`` / ``hf:...=PATH`` -> (name, path); anything else -> (spec, None)."""
    text = spec.strip()
    if text.startswith("hf:"):
        match = _HF_EQ_PATH.fullmatch(text)
        if not match:
            raise BenchError(f"cannot read dataset {spec!r}: expected hf:ORG/NAME[:CONFIG][@SPLIT][=PATH]")
        return match["name"], Path(match["path"]).expanduser() if match["path"] else None
    match = _NAME_EQ_PATH.fullmatch(text)
    if match and not Path(text).expanduser().exists():
        return match["name"], Path(match["path"]).expanduser()
    return text, None


def _registered(name: str, path: Path | None, cache_root: Path) -> Source:
    from bench.core.registries import DATASETS

    entry = DATASETS.entry(name)
    synthetic = bool(entry.meta.get("synthetic", False))
    if not entry.meta.get("adapter"):
        if path is not None:
            raise BenchError(f"dataset {name!r} is built in; it takes no path ({name}={path})")
        folder = Path(entry.load()(cache_root))
        return Source(name, str(folder), synthetic, lambda allow: read_manifest(folder, allow))
    root = path if path is not None else dataset_dir(name)
    if not root.is_dir():
        where = f"{root} is not a folder" if path is not None else f"no copy in the data store ({root})"
        raise BenchError(f"{name}: {where}; point at your copy with --dataset {name}=PATH, or see "
                         f"`bench data fetch {name}` for how to get it")

    def read(allow: bool) -> tuple[list[Row], list[Skip]]:
        return finish_rows(entry.load()(root), [], root, f"{name}={root}", allow)

    return Source(name, str(root), synthetic, read)


def _hugging_face(name: str, path: Path | None) -> Source:
    from bench.data.hf_parquet import find_local_copy, hf_rows, parse_hf_spec

    spec = parse_hf_spec(name)
    root = find_local_copy(spec, path)

    def read(allow: bool) -> tuple[list[Row], list[Skip]]:
        rows, skips = hf_rows(spec, root)
        return finish_rows(rows, skips, root, spec.name, allow)

    return Source(spec.name, str(root), False, read)


def resolve_source(spec: str, cache_root: Path) -> Source:
    from bench.core.registries import DATASETS, load_plugins

    load_plugins()
    name, path = split_spec(spec)
    if name.startswith("hf:"):
        return _hugging_face(name, path)
    if name in DATASETS:
        return _registered(name, path, cache_root)
    if path is not None:
        raise BenchError(f"dataset {name!r} in {spec!r} is not registered (known: {', '.join(DATASETS.names())})")
    folder = Path(name).expanduser()
    if not folder.exists():
        raise BenchError(f"dataset {spec!r} is neither a registered dataset ({', '.join(DATASETS.names())}), "
                         "hf:ORG/NAME, nor an existing path")
    label = folder.stem if folder.is_file() and folder.name != "manifest.csv" else \
        (folder.parent.name if folder.is_file() else folder.name)
    return Source(label, str(folder), False, lambda allow: read_manifest(folder, allow))
