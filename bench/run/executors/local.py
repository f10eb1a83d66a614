"""The local executor: fits one after another in this process; scores every missing cell through one
stream (:mod:`bench.run.stream`, ``cfg.workers`` preparation processes) - the streamed detectors and the
backbone features the CLIP heads lack (:mod:`bench.run.clip_stream`) - then the detectors that are not
streamed cell by cell; adversarial cells are crafted and scored here, one after another."""

from __future__ import annotations

from dataclasses import replace
from typing import Iterator

from bench.core.detector import FitContext
from bench.data.imageset import ImageSet
from bench.run.clip_stream import head_groups, scored_whole
from bench.run.config import RunConfig
from bench.run.stream import Failure, Unit, stream_rows, streamed
from bench.run.work import (AttackJob, CellJob, FitJob, attack_cell, cell_images, detector_ctx, finish_rows,
                            fit_detector, predict_cell)


class LocalExecutor:
    name = "local"

    def fit(self, jobs: list[FitJob], cfg: RunConfig, ctx: FitContext, decoded) -> Iterator[tuple]:
        for job in jobs:
            job_ctx = replace(ctx, extras={**ctx.extras, "checkpoint": job.checkpoint})
            yield job, fit_detector(job, cfg, job_ctx, decoded)

    def score(self, jobs: list[CellJob], test: ImageSet, cfg: RunConfig, ctx: FitContext) -> Iterator[tuple]:
        contexts = {id(d): detector_ctx(d, ctx, cfg) for job in jobs for d in job.detectors}
        groups, failures = head_groups(jobs, test, cfg, contexts)
        yield from failures
        units = []  # per cell, one unit per batch size (detectors that prefer another batch size get their own)
        for job in jobs:
            by_size: dict[int, list] = {}
            for d in job.detectors:
                if streamed(d):
                    by_size.setdefault(contexts[id(d)].batch_size, []).append(d)
            images = cell_images(test, job.cell, cfg) if by_size else None
            units += [Unit(job, images, group) for group in by_size.values()]
        for group in groups:  # each CLIP backbone's missing images of a cell: a unit of its feature stage
            contexts[id(group.stage)] = group.ctx
            units += [Unit((group, pixels), cell_images(test.subset(indices), group.job.cell, cfg), [group.stage])
                      for pixels, indices in group.requests()]
            if group.ready:  # every row cached
                yield from group.predictions(contexts)
        for unit, rows in stream_rows(units, ctx, cfg.workers, lambda d: contexts[id(d)]):
            if isinstance(unit.tag, CellJob):
                for d, detector in enumerate(unit.detectors):
                    yield unit.tag, detector, finish_rows(detector, rows[d])
                continue
            group, pixels = unit.tag
            group.receive(pixels, rows[0])
            if group.ready:
                yield from group.predictions(contexts)
        failed: set[int] = set()
        for job in jobs:
            images = None
            for detector in job.detectors:
                if not scored_whole(detector) or id(detector) in failed:
                    continue
                if images is None:
                    images = cell_images(test, job.cell, cfg)
                outcome = predict_cell(detector, images, contexts[id(detector)], cfg.workers)
                if isinstance(outcome, Failure):
                    failed.add(id(detector))
                yield job, detector, outcome

    def attack(self, jobs: list[AttackJob], test: ImageSet, cfg: RunConfig, ctx: FitContext) -> Iterator[tuple]:
        for job in jobs:
            for detector, outcome in attack_cell(job, test, cfg, ctx):
                yield job, detector, outcome
