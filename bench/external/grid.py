"""The images of a run's grid outside a run: ``bench export-grid`` writes them, ``bench import-scores`` checks
that a scores file covers exactly them.

Which images a run evaluates is decided by the run's own code (``build_splits``, ``compile_grid``,
``Cell.images``), called here, not copied: the clean validation images (the runner scores them to fix the
decision threshold) and the test images of every cell. Adversarial cells are crafted against a detector,
so they cannot be exported.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Callable

import pandas as pd

from bench.core import atomic
from bench.core.cache import Cache
from bench.core.csv_files import write_csv
from bench.core.errors import BenchError
from bench.core.hashing import sha256_bytes, stable_hash
from bench.data.imageset import DecodedCache, ImageSet
from bench.external.base import some
from bench.external.images import save_png
from bench.external.manifest import COLUMNS, GRID_JSON, IMAGES, MANIFEST, read_grid, read_manifest
from bench.external.scores import ScoresDetector
from bench.run.config import RunConfig
from bench.run.plan import CLEAN, Cell, compile_execution, compile_grid
from bench.run.splits import build_splits
from perturbations.adversarial import AdversarialPerturbation

#: The run settings that decide which pixels are exported (grid.json), compared on import.
GRID_FIELDS = ("dataset", "train_on", "generators", "train_generators", "test_generators", "perturb", "preset",
               "seed", "limit", "normalize", "caption_groups", "max_pixels", "min_side", "allow_outside_paths")


def grid_sets(cfg: RunConfig, cache: Cache, progress: bool) -> tuple[dict, list[tuple[str, Cell, ImageSet]]]:
    """grid.json's record and (split, cell, images) for the validation images and every test cell."""
    grid = compile_grid(cfg.perturb, cfg.preset)
    attacks = [c.perturbation for c in grid if isinstance(c.perturbation_obj(), AdversarialPerturbation)]
    if attacks:
        raise BenchError(f"{', '.join(sorted(set(attacks)))}: adversarial cells are crafted against a detector "
                         "and cannot be exported; leave them out of --perturb")
    if cfg.seeds and cfg.vary_split:
        raise BenchError("--vary-split draws a split per training seed; export one split (drop --vary-split)")
    splits = build_splits(cfg, cache, progress)
    decoded, limits = DecodedCache(), compile_execution(cfg).limits
    val, test = limits.image_set(splits.val, decoded), limits.image_set(splits.test, decoded)
    record = {"config": {key: getattr(cfg, key) for key in GRID_FIELDS}, "dataset_hash": splits.test_dataset.hash,
              "test_hash": splits.test_hash, "val_hash": stable_hash(sorted(it.sha256 for it in splits.val)),
              "grid": [[cell.perturbation, cell.level] for cell in grid]}
    return record, [("val", CLEAN, val)] + [("test", cell, cell.images(test, cfg.seed)) for cell in grid]


def cell_folder(cell: Cell) -> str:
    """A folder name for a cell: ``jpeg-2``; a perturbation name with other characters gets a short hash too."""
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in cell.perturbation)
    return f"{safe}-{cell.level}" if safe == cell.perturbation else \
        f"{safe}-{stable_hash(cell.perturbation, 6)}-{cell.level}"


def export_grid(cfg: RunConfig, cache: Cache, out: Path, progress: bool = True,
                log: Callable[[str], None] = print) -> int:
    """Write every image of the grid to ``out/images/CELL/SHA256.png`` with manifest.csv and grid.json (last,
    so a folder without them is an unfinished export); return the number of images."""
    atomic.ensure_writable_dir(out, "export directory (--out)")
    record, sets = grid_sets(cfg, cache, progress)
    rows, seen = [], set()
    for split, cell, images in sets:
        images.materialize(cfg.workers)
        for i in range(len(images)):
            key = images.cell_key(i)
            if key in seen:  # the same pixels in two splits: exported once
                continue
            seen.add(key)
            file = f"{IMAGES}/{cell_folder(cell)}/{images.hashes[i]}.png"
            data = save_png(images[i], out / file)
            rows.append({"file": file, "split": split, "sha256": images.hashes[i], "perturbation": cell.perturbation,
                         "severity": cell.level, "param_label": cell.label, "cell_key": key,
                         "png_sha256": sha256_bytes(data)})
        log(f"  {split} {cell.key}: {len(images)} images")
    write_csv(out / MANIFEST, pd.DataFrame(rows, columns=COLUMNS))
    atomic.write_text(out / GRID_JSON, json.dumps({**record, "images": len(rows)}, indent=2, default=str) + "\n")
    return len(rows)


def check_coverage(detector: ScoresDetector, cfg: RunConfig, cache: Cache, progress: bool = True) -> None:
    """A one-line error unless ``detector``'s scores cover exactly the images this run evaluates: which cells
    lack how many scores, which scored cells the run does not have, and the grid settings that differ."""
    record, sets = grid_sets(cfg, cache, progress)
    table = detector.table()
    expected, missing = set(), Counter()
    for split, cell, images in sets:
        for i in range(len(images)):
            key = images.cell_key(i)
            expected.add(key)
            if key not in table:
                missing[cell.key + (" (validation images)" if split == "val" else "")] += 1
    cells = {row["cell_key"]: f"{row['perturbation']}:{row['severity']}"
             for row in read_manifest(detector.folder).values()}
    extra = Counter(cells[key] for key in table if key not in expected)
    problems = []
    if missing:
        problems.append(f"no score for {sum(missing.values())} images this run evaluates ("
                        + some(f"{cell}: {n}" for cell, n in missing.items()) + ")")
    if extra:
        problems.append(f"scores for {sum(extra.values())} images this run does not evaluate ("
                        + some(f"{cell}: {n}" for cell, n in extra.items()) + ")")
    if problems:
        exported = read_grid(detector.folder)
        differ = [f"{key} (export {exported.get('config', {}).get(key)!r}, this run {value!r})"
                  for key, value in record["config"].items() if exported.get("config", {}).get(key) != value]
        hint = f"; the export's grid.json differs in {', '.join(differ)}" if differ else ""
        raise BenchError(f"{detector.path}: " + "; ".join(problems) + hint)
