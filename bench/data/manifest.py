"""Read a dataset manifest from a CSV file or infer it from a folder layout.

A manifest row is (path, label, generator, caption, split, group). Rows that
cannot be used (unknown label, path outside any image) are not dropped
silently: they come back as :class:`Skip` entries with a one-line reason.

Folder layouts understood (checked in this order):

- ``manifest.csv`` at the root: read as a CSV manifest;
- ``0_real/`` + ``1_fake/`` (CNNDet / UnivFD style), possibly nested under
  ``<generator>/`` folders: ``<generator>/0_real``, ``<generator>/1_fake``;
- ``real/`` + ``fake/<generator>/`` (or images directly in ``fake/``);
- ``real/`` + ``<generator>/`` siblings (every other top-level folder is a generator).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from bench.core.errors import BenchError
from bench.data.parquet_images import member_file
from bench.data.urls import is_url

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".jfif"}
REAL_LABELS = {"real", "0", "false", "natural"}
FAKE_LABELS = {"fake", "1", "true", "generated", "synthetic", "ai"}
CAPTION_COLUMNS = ("caption", "prompt", "text")
# Generator names that the result store uses for aggregates (bench.run.metrics): a generator called so
# would collide with them after all the fitting and scoring, so the manifest is refused up front.
RESERVED_GENERATORS = ("all", "mean")


@dataclass(frozen=True)
class Row:
    id: str  # path relative to the dataset root, '/'-separated
    path: str  # absolute path on disk
    label: int  # 0 real, 1 generated
    generator: str  # 'real' for real images
    caption: str | None = None
    split: str | None = None
    group: str | None = None
    # The generator whose folder a real image was published in, where a dataset gives each generator its
    # own reals (GenImage, ForenSynths' test set): --train/--test-generators then keep only those reals.
    # None when reals are shared by every generator.
    subset: str | None = None


@dataclass(frozen=True)
class Skip:
    id: str
    reason: str


def parse_label(value: str) -> int | None:
    v = value.strip().lower()
    if v in REAL_LABELS:
        return 0
    if v in FAKE_LABELS:
        return 1
    return None


def read_csv_manifest(csv_path: str | os.PathLike) -> tuple[list[Row], list[Skip]]:
    csv_path = Path(csv_path)
    root = csv_path.parent
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = [c.strip().lower() for c in (reader.fieldnames or [])]
            raw = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BenchError(f"cannot read manifest {csv_path}: {exc}") from None
    if "path" not in columns or not ({"label", "generator"} & set(columns)):
        raise BenchError(
            f"manifest {csv_path} needs a 'path' column and a 'label' (real/fake) or 'generator' column; "
            f"found columns: {', '.join(columns) or 'none'}"
        )
    rows: list[Row] = []
    skips: list[Skip] = []
    for line_no, rec in enumerate(raw, start=2):
        if None in rec:  # csv.DictReader files the fields beyond the header under the key None
            skips.append(Skip(f"{csv_path.name}:{line_no}", f"{len(columns) + len(rec[None])} fields, but the header "
                                                             f"has {len(columns)}"))
            continue
        rec = {(k or "").strip().lower(): (v or "").strip() for k, v in rec.items()}
        rel = rec.get("path", "")
        if not rel:
            skips.append(Skip(f"{csv_path.name}:{line_no}", "empty path"))
            continue
        generator = rec.get("generator") or ""
        if "label" in rec and rec["label"] != "":
            label = parse_label(rec["label"])
            if label is None:
                skips.append(Skip(rel, f"unknown label {rec['label']!r} (expected real/fake or 0/1)"))
                continue
        elif generator:
            label = 0 if generator.lower() == "real" else 1
        else:
            skips.append(Skip(rel, "no label and no generator"))
            continue
        if label == 0:
            generator = "real"
        elif not generator or generator.lower() == "real":
            generator = "fake"
        caption = next((rec[c] for c in CAPTION_COLUMNS if rec.get(c)), None)
        group = rec.get("group") or (Path(rec["source_path"]).stem if rec.get("source_path") else None)
        abs_path = rel if os.path.isabs(rel) or is_url(rel) else resolved(root / rel)
        if abs_path is None:
            skips.append(Skip(rel, "a symlink loop"))
            continue
        rows.append(Row(rel.replace(os.sep, "/"), abs_path, label, generator, caption, rec.get("split") or None, group))
    return rows, skips


def resolved(path: Path) -> str | None:
    """``path`` with its symlinks followed, or None for a symlink loop (RuntimeError before Python 3.13,
    OSError from then on)."""
    try:
        return str(path.resolve())
    except (RuntimeError, OSError):
        return None


def images_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _row(root: Path, path: Path, label: int, generator: str) -> Row:
    return Row(path.relative_to(root).as_posix(), str(path.resolve()), label, generator)


def infer_folder_manifest(root: str | os.PathLike) -> tuple[list[Row], list[Skip]]:
    root = Path(root)
    if (root / "manifest.csv").exists():
        return read_csv_manifest(root / "manifest.csv")
    subdirs = {p.name.lower(): p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    rows: list[Row] = []

    def add_real_fake_pair(folder: Path, generator: str) -> bool:
        names = {p.name.lower(): p for p in folder.iterdir() if p.is_dir()}
        if "0_real" in names and "1_fake" in names:
            rows.extend(_row(root, p, 0, "real") for p in images_under(names["0_real"]))
            rows.extend(_row(root, p, 1, generator) for p in images_under(names["1_fake"]))
            return True
        return False

    if add_real_fake_pair(root, "fake"):
        pass
    elif subdirs and all(add_real_fake_pair(d, name) for name, d in sorted(subdirs.items())):
        pass
    elif "real" in subdirs:
        rows = [_row(root, p, 0, "real") for p in images_under(subdirs["real"])]
        if "fake" in subdirs:
            fake = subdirs["fake"]
            for p in images_under(fake):
                rel = p.relative_to(fake).parts
                rows.append(_row(root, p, 1, rel[0] if len(rel) > 1 else "fake"))
        else:
            for name, d in sorted(subdirs.items()):
                if name != "real":
                    rows.extend(_row(root, p, 1, d.name) for p in images_under(d))
    else:
        raise BenchError(
            f"cannot infer labels from the layout of {root}: expected manifest.csv, 0_real/ + 1_fake/, "
            "<generator>/0_real|1_fake, real/ + fake/<generator>/, or real/ + <generator>/ folders"
        )
    if not rows:
        raise BenchError(f"no images found under {root}")
    return rows, []


def check_generator_names(rows: list[Row], source: str | os.PathLike) -> None:
    """Refuse generators named like the result store's aggregates, naming the first rows that use them."""
    reserved = [row for row in rows if row.generator.lower() in RESERVED_GENERATORS]
    if reserved:
        examples = ", ".join(row.id for row in reserved[:3])
        raise BenchError(f"{source}: generator name {reserved[0].generator!r} is reserved (results use "
                         f"{' and '.join(RESERVED_GENERATORS)} for aggregates over generators); rename it "
                         f"({len(reserved)} row(s), e.g. {examples})")


def keep_inside(rows: list[Row], root: Path, allow_outside: bool) -> tuple[list[Row], list[Skip]]:
    """Rows whose file resolves (symlinks followed) inside ``root``; the others become skips. An fsspec
    URL is outside any folder (``file://`` can name any local file), so it too needs ``allow_outside``."""
    if allow_outside:
        return rows, []
    root = root.resolve()
    inside, skips = [], []
    for row in rows:
        if is_url(row.path):
            skips.append(Skip(row.id, "an fsspec URL, outside the dataset folder (--allow-outside-paths to read it)"))
        elif (target := resolved(Path(member_file(row.path)))) is None:
            skips.append(Skip(row.id, "a symlink loop"))
        elif Path(target).is_relative_to(root):
            inside.append(row)
        else:
            skips.append(Skip(row.id, f"path resolves outside the dataset folder {root} "
                                      "(--allow-outside-paths to read it)"))
    return inside, skips


def read_manifest(source: str | os.PathLike, allow_outside_paths: bool = False) -> tuple[list[Row], list[Skip]]:
    """Rows and skips from a CSV file or a folder.

    Paths that resolve outside the dataset folder (the CSV file's folder; ``..``, absolute paths,
    symlinks) are skipped unless ``allow_outside_paths``.
    """
    p = Path(source)
    if not p.exists():
        raise BenchError(f"dataset path does not exist: {p}")
    if p.is_file():
        if p.suffix.lower() != ".csv":
            raise BenchError(f"a dataset file must be a CSV manifest, got {p}")
        rows, skips = read_csv_manifest(p)
        root = p.parent
    elif p.is_dir():
        rows, skips = infer_folder_manifest(p)
        root = p
    else:
        raise BenchError(f"dataset path {p} is neither a folder nor a CSV file")
    return finish_rows(rows, skips, root, p, allow_outside_paths)


def finish_rows(rows: list[Row], skips: list[Skip], root: Path, source: str | os.PathLike,
                allow_outside_paths: bool) -> tuple[list[Row], list[Skip]]:
    """The checks every manifest passes, whoever built it (CSV, folder layout, a dataset adapter):
    reserved generator names refused, paths outside ``root`` skipped unless allowed."""
    check_generator_names(rows, source)
    rows, outside = keep_inside(rows, root, allow_outside_paths)
    return rows, skips + outside
