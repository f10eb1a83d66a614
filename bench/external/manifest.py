"""The files of an exported grid (``bench export-grid``): ``manifest.csv``, one row per exported image, and
``grid.json``, the run settings that chose the images, read back by ``scores:`` and ``bench import-scores``.

A row names the image by ``cell_key`` (:meth:`bench.data.imageset.ImageSet.cell_key`: original content hash,
perturbation table, severity, seed and the perturbation's fingerprint), which is how scores find their way back
to the harness's own images. No label, generator or dataset id is exported: a scorer cannot see the answer.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from bench.core.errors import BenchError

MANIFEST = "manifest.csv"
GRID_JSON = "grid.json"
IMAGES = "images"
COLUMNS = ["file", "split", "sha256", "perturbation", "severity", "param_label", "cell_key", "png_sha256"]


def read_manifest(folder: Path) -> dict[str, dict[str, str]]:
    """file -> manifest row of the export in ``folder``; a one-line error when it is not one."""
    path = folder / MANIFEST
    if not path.is_file():
        raise BenchError(f"{folder} has no {MANIFEST}: not a folder written by `bench export-grid` "
                         "(give it as grid=DIR)")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not set(COLUMNS) <= set(reader.fieldnames or ()):
            raise BenchError(f"{path}: expected the columns {', '.join(COLUMNS)}")
        return {row["file"]: row for row in reader}


def read_grid(folder: Path) -> dict:
    """``grid.json`` of the export in ``folder``."""
    path = folder / GRID_JSON
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BenchError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
