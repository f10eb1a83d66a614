"""Datasets published as Parquet with one row per prompt and one image column per source: Defactify 4
(the MS COCOAI image task) and ELSA D3.

Every image stays in its Parquet file (a member path, :mod:`bench.data.parquet_images`); only the
small columns (prompt, generator names, ids) are read here, batch by batch. The prompt becomes every
sibling's caption, and the siblings of one prompt (the real image and each generator's) share a
group, so they land in the same split and are resampled together.

Splits come from the files: a path naming ``valid`` is the official validation set, which these
datasets use as their labelled evaluation set (their test sets carry no labels), so it becomes our
test split; ``train`` stays train, and the validation split is a seeded fifth of it. With the training
files alone (Defactify 4's Hugging Face validation and test copies hold a caption and one unlabelled
image per row, not the per-source columns), the seeded split is used, prompt groups kept whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from bench.core.errors import BenchError
from bench.data.adapters.layout import child
from bench.data.manifest import Row, images_under
from bench.data.parquet_images import member_path

DEFACTIFY_COLUMNS = {"coco_image": "real", "sd21_image": "sd21", "sdxl_image": "sdxl", "sd3_image": "sd3",
                     "dalle_image": "dalle3", "midjourney_image": "midjourney6"}
# ELSA D3's image_gen0..3 columns, in order (as CoDE-era reference code reads them)
D3_GENERATORS = ("deepfloyd-if", "sd14", "sd21", "sdxl")


def _split_of(path: Path) -> str | None:
    text = path.as_posix().lower()
    return "test" if "valid" in text else ("train" if "train" in text else None)


def _files(dataset: str, root: Path) -> list[tuple[Path, str | None]]:
    files = sorted(root.rglob("*.parquet")) if root.is_dir() else []
    if not files:
        raise BenchError(f"{dataset}: {root} has no '*.parquet' files; expected the dataset's Parquet files "
                         "(e.g. from `bench data fetch " + dataset + "`)")
    out = [(f, _split_of(f.relative_to(root))) for f in files]
    unknown = [f for f, split in out if split is None]
    if unknown:
        raise BenchError(f"{dataset}: cannot tell the split of {unknown[0]} (expected 'train' or 'valid' in its path)")
    if len({split for _, split in out}) < 2:  # training files only: no official evaluation split
        return [(f, None) for f, _ in out]
    return out  # type: ignore[return-value]


def _check_columns(file: Path, columns: list[str], dataset: str) -> None:
    import pyarrow.parquet as pq

    names = pq.ParquetFile(file).schema_arrow.names
    absent = [c for c in columns if c not in names]
    if absent:
        raise BenchError(f"{dataset}: {file} has no column(s) {', '.join(absent)} (it has: {', '.join(names)})")


def _records(file: Path, columns: list[str]) -> Iterator[dict]:
    """The small columns of ``file``, batch by batch (the image columns are never read here)."""
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(file).iter_batches(columns=columns, batch_size=4096):
        yield from batch.to_pylist()


def _member_row(root: Path, file: Path, index: int, column: str, label: int, generator: str, caption,
                split: str | None, group: str) -> Row:
    return Row(member_path(file.relative_to(root).as_posix(), index, column), member_path(str(file.resolve()), index, column),
               label, "real" if label == 0 else generator, caption or None, split, group)


def defactify_rows(root: Path) -> list[Row]:
    rows: list[Row] = []
    for file, split in _files("defactify4", root):
        _check_columns(file, ["caption", *DEFACTIFY_COLUMNS], "defactify4")
        for i, rec in enumerate(_records(file, ["caption"])):
            group = f"{split}:{file.name}:{i}"
            rows += [_member_row(root, file, i, column, int(gen != "real"), gen, rec["caption"], split, group)
                     for column, gen in DEFACTIFY_COLUMNS.items()]
    return rows


def d3_rows(root: Path) -> list[Row]:
    """ELSA D3 holds the generated images and the URL of each real (LAION) image, not the image: the
    reals are read from ``real/<id>.<ext>`` next to the Parquet files, downloaded from the ``url``
    column beforehand."""
    real_dir = child(root, "real")
    if real_dir is None:
        raise BenchError(f"elsa-d3: {root} has no 'real' folder; ELSA D3 ships only the URLs of its real LAION "
                         "images: download each row's 'url' to real/<id>.<ext> (see README, Datasets)")
    reals = {p.stem: p for p in images_under(real_dir)}
    images = [f"image_gen{g}" for g in range(len(D3_GENERATORS))]
    rows: list[Row] = []
    for file, split in _files("elsa-d3", root):
        small = ["id", "original_prompt"]
        _check_columns(file, [*small, *images], "elsa-d3")
        for i, rec in enumerate(_records(file, small)):
            group = f"d3:{rec['id']}"
            real = reals.get(str(rec["id"]))
            if real is not None:
                rows.append(Row(real.relative_to(root).as_posix(), str(real.resolve()), 0, "real",
                                rec["original_prompt"] or None, split, group))
            rows += [_member_row(root, file, i, column, 1, gen, rec["original_prompt"], split, group)
                     for column, gen in zip(images, D3_GENERATORS)]
    return rows
