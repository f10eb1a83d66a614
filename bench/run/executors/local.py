"""The local executor: fits one after another in this process; scores every missing cell through one
stream (:mod:`bench.run.stream`, ``cfg.workers`` preparation processes), then the detectors that are
not streamed cell by cell."""

from __future__ import annotations

from dataclasses import replace
from typing import Iterator

from bench.core.detector import FitContext
from bench.data.imageset import ImageSet
from bench.run.config import RunConfig
from bench.run.stream import Failure, Unit, stream_rows, streamed
from bench.run.work import CellJob, FitJob, cell_images, finish_rows, fit_detector, predict_cell


class LocalExecutor:
    name = "local"

    def fit(self, jobs: list[FitJob], cfg: RunConfig, ctx: FitContext, decoded) -> Iterator[tuple]:
        for job in jobs:
            job_ctx = replace(ctx, extras={**ctx.extras, "checkpoint": job.checkpoint})
            yield job, fit_detector(job, cfg, job_ctx, decoded)

    def score(self, jobs: list[CellJob], test: ImageSet, cfg: RunConfig, ctx: FitContext) -> Iterator[tuple]:
        units = [Unit(job, cell_images(test, job.cell, cfg), [d for d in job.detectors if streamed(d)])
                 for job in jobs]
        for unit, rows in stream_rows([u for u in units if u.detectors], ctx, cfg.workers):
            for d, detector in enumerate(unit.detectors):
                yield unit.tag, detector, finish_rows(detector, rows[d])
        failed: set[int] = set()
        for job in jobs:
            images = None
            for detector in job.detectors:
                if streamed(detector) or id(detector) in failed:
                    continue
                if images is None:
                    images = cell_images(test, job.cell, cfg)
                outcome = predict_cell(detector, images, ctx, cfg.workers)
                if isinstance(outcome, Failure):
                    failed.add(id(detector))
                yield job, detector, outcome
