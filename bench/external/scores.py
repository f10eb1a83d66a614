"""``scores:FILE``: scores computed elsewhere for the images of an exported grid (``bench export-grid``).

FILE is a CSV with the columns ``file`` (as in the export's manifest.csv), ``score`` and optionally ``source``;
other columns are ignored, so the manifest itself with a score column added will do. Each image the runner
asks about is found by its cell key through the manifest; an image of a cell that the file does not score is a
one-line error naming the cell and how many images lack a score. The file's and the manifest's sha256 are in
``config()``: new scores are new cells, never stale cached ones.
"""

from __future__ import annotations

import csv
from pathlib import Path

from bench.core.detector import FitContext, Prediction
from bench.core.errors import BenchError
from bench.core.hashing import sha256_file
from bench.external.base import ExternalDetector, parse_score, some
from bench.external.manifest import MANIFEST, read_manifest


class ScoresDetector(ExternalDetector):
    """``scores:FILE``; ``grid``: the export's folder (default: FILE's folder)."""

    kind = "scores"

    def __init__(self, target: str, grid: str | None = None, probability: bool = False,
                 classes: list[str] | None = None):
        super().__init__(target, probability=probability, classes=classes, grid=grid)
        self.path = Path(target)
        self.folder = Path(grid) if grid else self.path.parent
        if not self.path.is_file():
            raise BenchError(f"scores file {self.path} not found")
        read_manifest(self.folder)  # the folder is an export
        self.hashes = {"scores_sha256": sha256_file(self.path),
                       "manifest_sha256": sha256_file(self.folder / MANIFEST)}
        self._table: dict | None = None

    def identity(self) -> dict:
        return self.hashes

    def __getstate__(self) -> dict:  # the cached fit keeps no copy of the scores
        return {**self.__dict__, "_table": None}

    def table(self) -> dict[str, tuple[float, str | None]]:
        """cell key -> (score, source) of every scored image; a one-line error for a file that is not a scores
        file of this export (unknown files, repeated rows, bad scores)."""
        if self._table is None:
            manifest = read_manifest(self.folder)
            table, unknown = {}, []
            with open(self.path, newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                if not {"file", "score"} <= set(reader.fieldnames or ()):
                    raise BenchError(f"{self.path}: expected the columns file,score[,source], got "
                                     f"{','.join(reader.fieldnames or ()) or 'nothing'}")
                for line, row in enumerate(reader, start=2):
                    entry = manifest.get(row["file"])
                    if entry is None:
                        unknown.append(row["file"])
                        continue
                    if entry["cell_key"] in table:
                        raise BenchError(f"{self.path}, line {line}: {row['file']} is scored twice")
                    table[entry["cell_key"]] = (parse_score(row["score"], f"{self.path}, line {line}"),
                                                (row.get("source") or "").strip() or None)
            if unknown:
                raise BenchError(f"{self.path}: {len(unknown)} rows name files that are not in "
                                 f"{self.folder / MANIFEST} ({some(unknown)}): scores for other images")
            self._table = table
        return self._table

    def predict(self, images, ctx: FitContext) -> Prediction:
        table = self.table()
        keys = [images.cell_key(i) for i in range(len(images))]
        missing = [images.ids[i] for i, key in enumerate(keys) if key not in table]
        if missing:
            raise BenchError(f"{self.path} has no score for {len(missing)} of {len(keys)} images of cell "
                             f"{images.perturbation}:{images.severity} ({some(missing)}); export this run's grid "
                             "(`bench export-grid` with the same data and grid flags) and score all of it")
        sources = [table[key][1] for key in keys]
        return self.prediction([table[key][0] for key in keys], None if all(s is None for s in sources) else sources)
