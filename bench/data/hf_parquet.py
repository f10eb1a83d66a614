"""``--dataset hf:ORG/NAME[:CONFIG][@SPLIT][[image=COL,label=COL,...]]``: a Hugging Face dataset read
from its local Parquet files, without the ``datasets`` library and without decoding anything up front.

The files are looked for in the folder given (``hf:ORG/NAME=PATH``), else in the data store
(``bench data fetch hf:ORG/NAME``), else in the Hugging Face hub cache. Only the small columns (label,
generator, caption) are read to build the manifest, batch by batch; each image stays in its Parquet
cell and is read, hashed and decoded on demand like a file (:mod:`bench.data.parquet_images`).

Columns: the image column is the one of the ``datasets`` Image type (a ``{bytes, path}`` struct);
the label column is the first of :data:`LABEL_COLUMNS`; both can be named in brackets, and every
guess is printed. A label is real/fake (bool, 0/1, or words such as real/fake/ai); a class label
with more names (``real``, ``sdxl``, ``dalle3`` ...) gives each non-real class as the generator.
Splits: the file layouts the hub uses (``data/train-00000-of-00002.parquet``,
``<config>/test/0000.parquet``) name the split, which becomes the official split.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from bench.core.environment import hf_hub_cache_dir
from bench.core.errors import BenchError
from bench.data.manifest import CAPTION_COLUMNS, Row, Skip, parse_label
from bench.data.parquet_images import member_path
from bench.data.split import SPLIT_ALIASES
from bench.data.store import dataset_dir

log = logging.getLogger(__name__)

SPEC = re.compile(r"hf:(?P<repo>[\w.-]+/[\w.-]+)(?::(?P<config>[\w.-]+))?(?:@(?P<split>[\w.-]+))?"
                  r"(?:\[(?P<options>[^\]]*)\])?")
OPTION_KEYS = ("image", "label", "generator", "caption")
LABEL_COLUMNS = ("label", "labels", "is_fake", "is_generated", "is_ai", "fake", "generated", "target", "class",
                 "label_a")
GENERATOR_COLUMNS = ("generator", "model", "source", "model_name")
IMAGE_NAMES = ("image", "img", "jpg", "png", "picture")
_SPLIT_IN_NAME = re.compile(r"^(?P<split>[a-z]+)(?:[-_.]|$)")


@dataclass(frozen=True)
class HfSpec:
    repo: str
    config: str | None = None
    split: str | None = None
    columns: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"hf:{self.repo}" + (f":{self.config}" if self.config else "") + (f"@{self.split}" if self.split else "")


def parse_hf_spec(text: str) -> HfSpec:
    match = SPEC.fullmatch(text.strip())
    if not match:
        raise BenchError(f"cannot read dataset {text!r}: expected hf:ORG/NAME[:CONFIG][@SPLIT]"
                         "[[image=COL,label=COL,generator=COL,caption=COL]]")
    columns: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in (match["options"] or "").split(","))):
        key, sep, value = part.partition("=")
        if not sep or key.strip() not in OPTION_KEYS or not value.strip():
            raise BenchError(f"{text}: bad column option {part!r}; expected KEY=COLUMN with KEY one of "
                             f"{', '.join(OPTION_KEYS)}")
        columns[key.strip()] = value.strip()
    return HfSpec(match["repo"], match["config"], match["split"], columns)


def find_local_copy(spec: HfSpec, folder: Path | None) -> Path:
    """The folder holding the repository's Parquet files: the one given, the data store's, or the newest
    snapshot in the hub cache."""
    if folder is not None:
        if not folder.is_dir():
            raise BenchError(f"{spec.name}: {folder} is not a folder")
        return folder
    stored = dataset_dir(f"hf:{spec.repo}")
    if any(stored.rglob("*.parquet")):
        return stored
    snapshots = hf_hub_cache_dir() / f"datasets--{spec.repo.replace('/', '--')}" / "snapshots"
    found = sorted((p for p in snapshots.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime) \
        if snapshots.is_dir() else []
    found = [p for p in found if any(p.rglob("*.parquet"))]
    if not found:
        raise BenchError(f"{spec.name}: no local Parquet files (looked in the data store {stored} and the Hugging "
                         f"Face cache {snapshots}); run `bench data fetch hf:{spec.repo}` or give a folder: "
                         f"--dataset {spec.name}=PATH")
    return found[-1]


def _split_of(rel: Path) -> str | None:
    for part in (*rel.parent.parts, rel.name):
        name = part.lower()
        match = _SPLIT_IN_NAME.match(name)
        for candidate in (name, match["split"] if match else None):
            if candidate in SPLIT_ALIASES:
                return candidate
    return None


def _config_of(rel: Path, split: str | None) -> str:
    first = rel.parts[0] if len(rel.parts) > 1 else "default"
    return "default" if first.lower() in ("data", split or "") else first


def select_files(spec: HfSpec, root: Path) -> list[tuple[Path, str | None]]:
    """The Parquet files of the chosen config and split, each with the split its path names."""
    files = sorted(root.rglob("*.parquet"))
    if not files:
        raise BenchError(f"{spec.name}: {root} has no '*.parquet' files")
    tagged = [(f, _split_of(f.relative_to(root))) for f in files]
    configs = sorted({_config_of(f.relative_to(root), s) for f, s in tagged})
    config = spec.config or (configs[0] if len(configs) == 1 else "default")
    if config not in configs:
        raise BenchError(f"{spec.name}: no config {config!r} in {root} (it has: {', '.join(configs)}); "
                         f"choose one with hf:{spec.repo}:CONFIG")
    tagged = [(f, s) for f, s in tagged if _config_of(f.relative_to(root), s) == config]
    if spec.split:
        wanted = SPLIT_ALIASES.get(spec.split.lower(), spec.split.lower())
        chosen = [(f, s) for f, s in tagged if s and SPLIT_ALIASES.get(s, s) == wanted]
        if not chosen:
            have = sorted({s or "?" for _, s in tagged})
            raise BenchError(f"{spec.name}: no split {spec.split!r} in config {config!r} (it has: {', '.join(have)})")
        return chosen
    return tagged


def _features(schema) -> dict:
    """The ``datasets`` feature descriptions stored in the Parquet schema metadata (ClassLabel names ...)."""
    raw = (schema.metadata or {}).get(b"huggingface")
    try:
        return json.loads(raw)["info"]["features"] if raw else {}
    except (ValueError, KeyError, TypeError):
        return {}


def _is_image(schema, features: dict, name: str) -> bool:
    import pyarrow as pa

    feature = features.get(name) or {}
    typ = schema.field(name).type
    if feature.get("_type") == "Image" or (pa.types.is_struct(typ) and typ.get_field_index("bytes") >= 0):
        return True
    return (pa.types.is_binary(typ) or pa.types.is_large_binary(typ)) and name.lower() in IMAGE_NAMES


def choose_columns(spec: HfSpec, schema) -> dict[str, str | None]:
    """image, label, generator and caption columns: given ones checked, missing ones guessed (and said)."""
    names = schema.names
    features = _features(schema)
    lower = {n.lower(): n for n in names}
    for key, column in spec.columns.items():
        if column not in names:
            raise BenchError(f"{spec.name}: no column {column!r} for {key} (columns: {', '.join(names)})")
    chosen = dict(spec.columns)
    guessed = []
    if "image" not in chosen:
        images = [n for n in names if _is_image(schema, features, n)]
        if not images:
            raise BenchError(f"{spec.name}: no image column (a datasets Image or binary column) among "
                             f"{', '.join(names)}; name it with [image=COL]")
        chosen["image"] = images[0]
        guessed.append(f"image={images[0]}")
    for key, candidates in (("label", LABEL_COLUMNS), ("generator", GENERATOR_COLUMNS), ("caption", CAPTION_COLUMNS)):
        if key not in chosen:
            found = next((lower[c] for c in candidates if c in lower), None)
            if found is not None:
                chosen[key] = found
                guessed.append(f"{key}={found}")
    if "label" not in chosen and "generator" not in chosen:
        raise BenchError(f"{spec.name}: no label column (one of {', '.join(LABEL_COLUMNS)}) among "
                         f"{', '.join(names)}; name it with [label=COL]")
    if guessed:
        log.warning("%s: guessed columns %s (choose others with %s[%s])", spec.name, ", ".join(guessed), spec.name,
                    ",".join(f"{k}=COL" for k in OPTION_KEYS))
    return {key: chosen.get(key) for key in OPTION_KEYS}


def interpret_label(value, names: list[str] | None) -> tuple[int, str] | None:
    """(label, generator) from a label cell: bool, 0/1, a class index with names, or a word."""
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value), "real" if not value else "fake"
    if isinstance(value, int) and names and 0 <= value < len(names):
        value = names[value]
    if isinstance(value, int):
        return (0, "real") if value == 0 else (1, "fake" if value == 1 else f"class{value}")
    text = str(value).strip()
    label = parse_label(text)
    if label is not None:
        return label, "real" if label == 0 else "fake"
    return (1, text) if text else None


def _file_rows(spec: HfSpec, parquet, file: Path, rel: str, columns: dict[str, str | None],
               split: str | None) -> tuple[list[Row], list[Skip]]:
    """The rows (and label skips) of one Parquet file; ``split``: its official split, if kept."""
    rows: list[Row] = []
    skips: list[Skip] = []
    absent = [c for c in columns.values() if c and c not in parquet.schema_arrow.names]
    if absent:
        raise BenchError(f"{spec.name}: {file} has no column(s) {', '.join(absent)}")
    label_col, gen_col, cap_col = columns["label"], columns["generator"], columns["caption"]
    names = (_features(parquet.schema_arrow).get(label_col or "") or {}).get("names")
    small = [c for c in (label_col, gen_col, cap_col) if c]
    index = 0
    for batch in parquet.iter_batches(columns=small, batch_size=4096):
        for rec in batch.to_pylist():
            if label_col:
                parsed = interpret_label(rec[label_col], names)
            else:
                gen = str(rec[gen_col] or "").strip()
                parsed = (0, "real") if gen.lower() in ("", "real") else (1, gen)
            if parsed is None:
                skips.append(Skip(member_path(rel, index, columns["image"]), f"no label in column {label_col!r}"))
            else:
                label, generator = parsed
                if label == 1 and gen_col and rec[gen_col]:
                    generator = str(rec[gen_col])
                rows.append(Row(member_path(rel, index, columns["image"]),
                                member_path(str(file.resolve()), index, columns["image"]), label,
                                "real" if label == 0 else generator,
                                (rec[cap_col] or None) if cap_col else None, split))
            index += 1
    return rows, skips


def hf_rows(spec: HfSpec, root: Path) -> tuple[list[Row], list[Skip]]:
    """Rows (and skips: rows without a usable label, files that are not readable Parquet) of the chosen
    files. Splits named by the files are kept as official splits when there are at least two; a single
    split (or one chosen with @SPLIT) is split like any other data (seeded), or used whole after --train-on."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows: list[Row] = []
    skips: list[Skip] = []
    columns: dict[str, str | None] | None = None
    files = select_files(spec, root)
    official = len({split for _, split in files}) > 1 and not spec.split
    for file, split in files:
        rel = file.relative_to(root).as_posix()
        try:
            parquet = pq.ParquetFile(file)
            columns = columns or choose_columns(spec, parquet.schema_arrow)
            file_rows, file_skips = _file_rows(spec, parquet, file, rel, columns, split if official else None)
        except (pa.ArrowException, OSError) as exc:  # not Parquet, truncated, unreadable: the file is skipped
            skips.append(Skip(rel, f"cannot read the Parquet file: {' '.join(str(exc).split())[:200]}"))
            continue
        rows += file_rows
        skips += file_skips
    if not rows:
        raise BenchError(f"{spec.name}: no labelled rows in {root}")
    return rows, skips
