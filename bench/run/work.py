"""The work an executor places somewhere: fitting one detector, and the detectors one grid cell still needs.

These functions read images (from the paths in the items) and compute; they never touch the cache or
the result store, so the runner (the driver) stays their only writer whatever executor runs the work
(:mod:`bench.run.executors`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from bench.core.detector import Detector, FitContext, Prediction
from bench.core.errors import BenchError
from bench.core.registries import load_plugins
from bench.data.dataset import Item
from bench.data.imageset import DecodedCache, ImageSet, PerturbedImageSet
from bench.run.config import RunConfig
from bench.run.metrics import threshold_at_tnr
from bench.run.stream import Failure
from perturbations import get_perturbation


@dataclass
class FitJob:
    """Fit ``detector`` (constructed, not fitted) on the clean training items with training seed ``seed``;
    ``checkpoint``: where the training loop may keep its resumable state (local executor only)."""

    name: str
    detector: Detector
    train: list[Item]
    val: list[Item]
    seed: int
    checkpoint: Path | None = None


@dataclass
class CellJob:
    """Score one grid cell (perturbation, severity) with the fitted detectors that have no cached scores for it."""

    cell: tuple[str, int]
    detectors: list[Detector]


def fit_detector(job: FitJob, cfg: RunConfig, ctx: FitContext, decoded: DecodedCache) -> dict | Failure:
    """The fitted detector with its validation threshold (the fit cache's entry), or why it failed."""
    ctx = replace(ctx, seed=job.seed)
    try:
        started = time.perf_counter()
        train = ImageSet(job.train, decoded, cfg.max_pixels, cfg.min_side)
        val = ImageSet(job.val, decoded, cfg.max_pixels, cfg.min_side)
        job.detector.fit(train, val, ctx)
        val_pred = job.detector.predict(val, ctx)
        threshold = threshold_at_tnr(val_pred.score[val.labels == 0], cfg.val_tnr)
        return {"detector": job.detector, "val_threshold": threshold, "fit_seconds": time.perf_counter() - started}
    except BenchError as exc:
        return Failure(str(exc))
    except Exception as exc:  # a broken detector must not take the other detectors' results with it
        return Failure.of(exc)


def cell_images(test: ImageSet, cell: tuple[str, int], cfg: RunConfig) -> ImageSet:
    """The test images of one cell: perturbed at full resolution, with generators derived per image and cell."""
    perturbation, severity = cell
    if perturbation == "none":
        return test
    load_plugins()  # a fresh worker process has an empty registry
    return PerturbedImageSet(test, get_perturbation(perturbation), severity, cfg.seed, cfg.preset)


def finish_rows(detector: Detector, rows: np.ndarray | Failure) -> Prediction | Failure:
    """A streamed detector's Prediction from its rows of a whole cell."""
    if isinstance(rows, Failure):
        return rows
    try:
        return detector.finish(rows)
    except Exception as exc:
        return Failure.of(exc)


def predict_cell(detector: Detector, images: ImageSet, ctx: FitContext, workers: int) -> Prediction | Failure:
    """A detector that is not streamed, on a whole cell (its perturbed images computed once, in threads)."""
    try:
        images.materialize(workers)
        return detector.predict(images, ctx)
    except Exception as exc:
        return Failure.of(exc)
