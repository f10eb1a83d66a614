"""The work an executor places somewhere: fitting one detector, and the detectors one grid cell still needs.

These functions read images (from the paths in the items) and compute; they never touch the cache or
the result store, so the runner (the driver) stays their only writer whatever executor runs the work
(:mod:`bench.run.executors`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import numpy as np

from bench.core.detector import DEFAULT_BATCH_SIZE, Detector, FitContext, Prediction
from bench.core.errors import BenchError
from bench.data.dataset import Item
from bench.data.imageset import DecodedCache, ImageSet
from bench.nn.training import resolve_device
from bench.run.attacks import CellImages
from bench.run.metrics import threshold_at_tnr
from bench.run.plan import Cell, Execution
from bench.run.stream import Failure


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

    cell: Cell
    detectors: list[Detector]


@dataclass
class AttackJob:
    """Score the fitted ``detectors`` (their fit keys in ``fit_keys``) on one adversarial cell. A white-box
    cell (``pgd``, ``fgsm``) is crafted against each detector itself; a transfer cell once, against the
    surrogate in ``surrogates`` (name -> (fitted detector, fit key)), and shared by the job's detectors."""

    cell: Cell
    detectors: list[Detector]
    fit_keys: list[str]
    surrogates: dict

    @property
    def shared(self) -> bool:
        return bool(self.surrogates)


def batch_size_for(detector: Detector, requested: int | None, on_gpu: bool) -> int:
    """The user's batch size when given; otherwise the detector's GPU preference on a GPU, and
    DEFAULT_BATCH_SIZE everywhere else (so CPU scores never depend on a detector's preference)."""
    if requested is not None:
        return requested
    return (detector.gpu_batch_size or DEFAULT_BATCH_SIZE) if on_gpu else DEFAULT_BATCH_SIZE


def detector_ctx(detector: Detector, ctx: FitContext, settings: Execution, on_gpu: bool | None = None) -> FitContext:
    """``ctx`` as ``detector`` computes under it: its batch size and whether it may use mixed precision.
    ``on_gpu``: whether the work runs on a GPU (default: whether ``ctx.device`` resolves to one here)."""
    if on_gpu is None:
        on_gpu = resolve_device(ctx.device).type == "cuda"
    return replace(ctx, batch_size=batch_size_for(detector, settings.batch_size, on_gpu),
                   mixed_precision=detector.mixed_precision)


def fit_detector(job: FitJob, settings: Execution, ctx: FitContext, decoded: DecodedCache) -> dict | Failure:
    """The fitted detector with its validation threshold (the fit cache's entry), or why it failed."""
    try:
        started = time.perf_counter()
        ctx = replace(detector_ctx(job.detector, ctx, settings), seed=job.seed)
        train = settings.limits.image_set(job.train, decoded)
        val = settings.limits.image_set(job.val, decoded)
        job.detector.fit(train, val, ctx)
        val_pred = job.detector.predict(val, ctx)
        threshold = threshold_at_tnr(val_pred.score[val.labels == 0], settings.val_tnr)
        return {"detector": job.detector, "val_threshold": threshold, "fit_seconds": time.perf_counter() - started}
    except BenchError as exc:
        return Failure(str(exc))
    except Exception as exc:  # a broken detector must not take the other detectors' results with it
        return Failure.of(exc)


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


def attack_cell(job: AttackJob, test: ImageSet, settings: Execution, ctx: FitContext) -> Iterator[tuple]:
    """(detector, Prediction | Failure) for each detector of an adversarial cell: the attack is crafted where
    this runs (it needs the target's gradient), one image after another, then scored by ``predict``."""
    cells = CellImages(test, job.cell, settings.seed, job.surrogates)
    for detector, fit_key in zip(job.detectors, job.fit_keys):
        images = cells.for_detector(detector, fit_key)
        if isinstance(images, str):  # the runner records these as skips before making jobs
            yield detector, Failure(images)
            continue
        yield detector, predict_cell(detector, images, detector_ctx(detector, ctx, settings), settings.workers)
