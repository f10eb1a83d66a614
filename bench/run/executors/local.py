"""The local executor: fits one after another in this process; scores every missing cell through one
stream (:mod:`bench.run.stream`, ``settings.workers`` preparation processes) - the streamed detectors and the
backbone features the CLIP heads lack (:mod:`bench.run.clip_stream`) - then the detectors that are not
streamed cell by cell; adversarial cells are crafted and scored here, one after another."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Iterator

from bench.core.detector import FitContext
from bench.data.imageset import ImageSet
from bench.run.clip_stream import head_groups, scored_whole
from bench.run.plan import Execution
from bench.run.stream import Failure, Unit, stream_rows, streamed
from bench.run.work import (AttackJob, CellJob, FitJob, attack_cell, detector_ctx, finish_rows, fit_detector,
                            predict_cell)


class LocalExecutor:
    name = "local"

    def __init__(self):
        #: Model seconds per detector name spent scoring (its forward passes, its share of a shared CLIP
        #: backbone's, a whole-cell predict, an attack), for the timing records (bench.run.timings).
        self.seconds: dict[str, float] = {}

    def _spent(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def fit(self, jobs: list[FitJob], settings: Execution, ctx: FitContext, decoded) -> Iterator[tuple]:
        for job in jobs:
            job_ctx = replace(ctx, checkpoint=job.checkpoint)
            yield job, fit_detector(job, settings, job_ctx, decoded)

    def score(self, jobs: list[CellJob], test: ImageSet, settings: Execution, ctx: FitContext) -> Iterator[tuple]:
        contexts = {id(d): detector_ctx(d, ctx, settings) for job in jobs for d in job.detectors}
        groups, failures = head_groups(jobs, test, settings.seed, contexts)
        yield from failures
        units = []  # per cell, one unit per batch size (detectors that prefer another batch size get their own)
        owners: dict[int, list[str]] = {}  # id of what the stream runs -> the detectors its time is theirs
        for job in jobs:
            by_size: dict[int, list] = {}
            for d in job.detectors:
                if streamed(d):
                    by_size.setdefault(contexts[id(d)].batch_size, []).append(d)
            images = job.cell.images(test, settings.seed) if by_size else None
            units += [Unit(job, images, group) for group in by_size.values()]
            owners.update({id(d): [d.name] for group in by_size.values() for d in group})
        for group in groups:  # each CLIP backbone's missing images of a cell: a unit of its feature stage
            contexts[id(group.stage)] = group.ctx
            owners[id(group.stage)] = [head.name for head in group.heads]
            units += [Unit((group, pixels), group.job.cell.images(test.subset(indices), settings.seed), [group.stage])
                      for pixels, indices in group.requests()]
            if group.ready:  # every row cached
                yield from group.predictions(contexts)
        spent: dict[int, float] = {}
        for unit, rows in stream_rows(units, ctx, settings.workers, lambda d: contexts[id(d)], spent):
            if isinstance(unit.tag, CellJob):
                for d, detector in enumerate(unit.detectors):
                    yield unit.tag, detector, finish_rows(detector, rows[d])
                continue
            group, pixels = unit.tag
            group.receive(pixels, rows[0])
            if group.ready:
                yield from group.predictions(contexts)
        for what, names in owners.items():
            for name in names:
                self._spent(name, spent.get(what, 0.0) / len(names))
        failed: set[int] = set()
        for job in jobs:
            images = None
            for detector in job.detectors:
                if not scored_whole(detector) or id(detector) in failed:
                    continue
                if images is None:
                    images = job.cell.images(test, settings.seed)
                started = time.perf_counter()
                outcome = predict_cell(detector, images, contexts[id(detector)], settings.workers)
                self._spent(detector.name, time.perf_counter() - started)
                if isinstance(outcome, Failure):
                    failed.add(id(detector))
                yield job, detector, outcome

    def attack(self, jobs: list[AttackJob], test: ImageSet, settings: Execution, ctx: FitContext) -> Iterator[tuple]:
        for job in jobs:
            started = time.perf_counter()
            for detector, outcome in attack_cell(job, test, settings, ctx):  # crafted and scored one by one
                self._spent(detector.name, time.perf_counter() - started)
                yield job, detector, outcome
                started = time.perf_counter()
