"""The heads on frozen CLIP features in the scoring stream: one backbone forward pass per image and cell,
shared by every head on that backbone and preprocessing.

A :class:`~bench.nn.frozen_head.FrozenClipHead` is the backbone's embeddings plus a cheap head. The
executors group the heads of a cell by their extractor's identity (backbone, weights, precision, crop:
:attr:`~bench.nn.clip_features.ClipFeatures.identity`) into a :class:`HeadGroup`, which asks the feature
cache what it holds. Only the missing images go through the stream (:mod:`bench.run.stream`), as a
unit of the group's :class:`FeatureStage`: the cell's subset of missing images in index order (one per
content hash), so its batches are the ones :meth:`ClipFeatures.images <bench.nn.clip_features.ClipFeatures.images>`
would form. The driver stores the rows that come back (it stays the cache's only writer; without a
cache they are used and dropped), then calls each head's ``predict_features`` on the cell's whole feature
matrix: the scores are ``predict``'s, value for value (tests/test_clip_stream.py).
"""

from __future__ import annotations

import copy
from typing import Iterator

import numpy as np

from bench.core.detector import FitContext, Preparation
from bench.data.imageset import ImageSet
from bench.nn.clip_features import ClipFeatures
from bench.nn.frozen_head import FrozenClipHead
from bench.run.stream import Failure, streamed
from bench.run.work import CellJob


def is_clip_head(detector) -> bool:
    return isinstance(detector, FrozenClipHead)


def scored_whole(detector) -> bool:
    """Neither streamed nor a CLIP head: scored by ``predict`` on a whole cell (bench.run.work.predict_cell)."""
    return not streamed(detector) and not is_clip_head(detector)


class FeatureStage:
    """One extractor as the stream sees a detector: its pixel preparation (picklable, loads no model) in
    the preparation workers, ``encode_image`` under the extractor's precision on the model side. It holds
    no cache: the rows go back to the driver."""

    mixed_precision = False  # the extractor sets its own precision (part of its identity)

    def __init__(self, extractor: ClipFeatures):
        self.extractor = copy.copy(extractor)
        self.extractor.cache = None
        self.name = f"features {extractor.identity}"

    def preparation(self) -> Preparation:
        prepare = self.extractor.preparation()
        return Preparation(prepare, prepare)

    def forward_batch(self, batch, ctx: FitContext) -> np.ndarray:
        return self.extractor.encode(batch)


class HeadGroup:
    """The heads of one cell on one extractor: what the cache lacks, the stream's requests for it, and
    the heads' predictions once every missing row is in."""

    def __init__(self, job: CellJob, images: ImageSet, heads: list[FrozenClipHead], extractor: ClipFeatures,
                 ctx: FitContext):
        self.job, self.images, self.heads, self.extractor, self.ctx = job, images, heads, extractor, ctx
        self.lookup = extractor.lookup(images)
        self.stage = FeatureStage(extractor)
        self.waiting = set(self.lookup.missing)
        self.failure: Failure | None = None

    def requests(self) -> list[tuple[str, list[int]]]:
        """(pixel group, the cell indices of its missing images in order): each one unit of the stage."""
        return [(group, list(missing.values())) for group, missing in self.lookup.missing.items()]

    def receive(self, group: str, rows: np.ndarray | Failure) -> None:
        """The stage's rows for one request (in its order), or why they are missing."""
        if isinstance(rows, Failure):
            self.failure = self.failure or rows
        else:
            keys = list(self.lookup.missing[group])
            self.extractor.add(group, keys, rows)
            self.lookup.found[group].update(zip(keys, rows))
        self.waiting.discard(group)

    @property
    def ready(self) -> bool:
        return not self.waiting

    def predictions(self, contexts: dict[int, FitContext]) -> Iterator[tuple]:
        """``(CellJob, head, Prediction | Failure)`` for every head; ``contexts``: each head's, by id."""
        feats = None if self.failure else self.lookup.matrix()
        for head in self.heads:
            if self.failure is not None:
                yield self.job, head, self.failure
                continue
            try:
                yield self.job, head, head.predict_features(self.images, feats, contexts[id(head)])
            except Exception as exc:
                yield self.job, head, Failure.of(exc)


def head_groups(jobs: list[CellJob], test: ImageSet, seed: int, contexts: dict[int, FitContext]
                ) -> tuple[list[HeadGroup], list[tuple]]:
    """The CLIP heads of ``jobs`` grouped per cell and extractor identity, and ``(job, head, Failure)`` for
    heads whose extractor or cache lookup failed. ``seed``: the run seed the cells' perturbations draw from;
    ``contexts``: the context each head computes under (by id); a group's stage streams under its first
    head's (the batch size its features are computed with)."""
    groups, failures = [], []
    for job in jobs:
        heads = [d for d in job.detectors if is_clip_head(d)]
        if not heads:
            continue
        images = job.cell.images(test, seed)
        by_identity: dict[str, tuple[ClipFeatures, list[FrozenClipHead]]] = {}
        for head in heads:
            try:
                extractor = head.extractor(contexts[id(head)])
            except Exception as exc:
                failures.append((job, head, Failure.of(exc)))
                continue
            by_identity.setdefault(extractor.identity, (extractor, []))[1].append(head)
        for extractor, members in by_identity.values():
            try:
                groups.append(HeadGroup(job, images, members, extractor, contexts[id(members[0])]))
            except Exception as exc:
                failures += [(job, head, Failure.of(exc)) for head in members]
    return groups, failures
