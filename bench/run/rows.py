"""A detector's scored cells as rows of the result store: metrics with intervals (results.parquet) and
per-image scores (scores.parquet)."""

from __future__ import annotations

from bench.data.imageset import ImageSet
from bench.run.metrics import evaluate_cell
from bench.run.outcomes import DetectorRun
from bench.run.resample import cell_seed


def metric_rows(run: DetectorRun, test: ImageSet, dataset: str, seed: int, n_boot: int, groups=None) -> list[dict]:
    """Every metric of every cell ``run`` scored. Every detector of a cell is resampled with the same draws
    (from the run ``seed`` and the cell), whole ``groups`` at a time (:mod:`bench.run.resample`)."""
    rows = []
    if not run.predictions:  # skipped, or failed before its first cell
        return rows
    detector = run.detector
    probability = detector.info.outputs_probability
    classes = set(getattr(detector, "classes", []) or [])
    for cell, pred in run.predictions.items():
        source = pred.source if pred.source is not None and set(test.generators) <= classes else None
        for row in evaluate_cell(test.labels, test.generators, pred.score, source, probability=probability,
                                 val_threshold=run.val_threshold, n_boot=n_boot,
                                 seed=cell_seed(seed, cell.perturbation, cell.level), groups=groups):
            rows.append({"detector": run.name, "weights": run.weights, "profile": run.profile, "dataset": dataset,
                         "perturbation": cell.perturbation, "severity": cell.level, "param": cell.param_value,
                         "param_label": cell.label, **row})
    return rows


def score_rows(run: DetectorRun, test: ImageSet, dataset: str, groups=None) -> list[dict]:
    """One row per (cell, test image): its score and predicted source."""
    rows = []
    for cell, pred in run.predictions.items():
        for i in range(len(test)):
            rows.append({"detector": run.name, "dataset": dataset, "image_id": test.ids[i],
                         "sha256": test.hashes[i], "label": int(test.labels[i]),
                         "generator": test.generators[i], "perturbation": cell.perturbation,
                         "severity": cell.level, "score": float(pred.score[i]),
                         "pred_source": None if pred.source is None else str(pred.source[i]),
                         "group": None if groups is None else int(groups[i])})
    return rows
