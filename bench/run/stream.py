"""The scoring stream: images are decoded, perturbed and prepared in worker processes while the
model consumes ready batches, so a grid cell costs about max(preparation, model), not their sum.

A :class:`Unit` is a range of one cell's images and the detectors that still need it. Every
detector in it that returns a :class:`~bench.core.detector.Preparation` is fed from one
``torch.utils.data.DataLoader`` over all units: ``workers`` processes (0 = in this process) each
decode and perturb an image once and apply every distinct preparation to it (detectors with equal
preparation keys share the work), with at most ``PREFETCH`` batches per worker waiting for the
model. Batches never straddle units and start at multiples of the unit's batch size (the
``ctx.batch_size`` its detectors share) counted from the cell's first image, so a detector sees
exactly the batches that ``predict`` would give it, and the perturbation's generator is derived
per image and cell (:func:`bench.core.rng.cell_rng`): which worker prepares which image changes
nothing. On a GPU the batches come in pinned memory and are copied without blocking.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from bench.core.detector import FitContext, Preparation
from bench.data.imageset import ImageSet

PREFETCH = 2  # batches each worker prepares ahead of the model (the bound on the queue)


@dataclass
class Failure:
    """Why a detector produced nothing for a unit: a one-line reason and, for unexpected errors, the traceback."""

    reason: str
    traceback: str = ""

    @classmethod
    def of(cls, exc: BaseException) -> "Failure":
        return cls(f"{type(exc).__name__}: {exc}", traceback.format_exc())


class Streamed(Protocol):
    """What the stream uses of a detector; a feature stage (:class:`bench.run.clip_stream.FeatureStage`) has it too."""

    name: str

    def preparation(self) -> Preparation | None: ...

    def forward_batch(self, batch: Any, ctx: FitContext) -> Any: ...


@dataclass
class Unit:
    """Images ``start`` to ``stop`` of one cell (``images``) for ``detectors``; ``start`` is a multiple of the
    batch size, so the unit's batches are the cell's own. ``tag`` identifies the unit for the caller."""

    tag: Any
    images: ImageSet
    detectors: list[Streamed]
    start: int = 0
    stop: int | None = None
    preparations: list[Preparation] = field(default_factory=list, init=False)
    slot: list[int] = field(default_factory=list, init=False)  # detector i reads preparation slot[i]

    def __post_init__(self) -> None:
        self.stop = len(self.images) if self.stop is None else self.stop
        keys: dict = {}
        for detector in self.detectors:
            prep = detector.preparation()
            if prep is None:
                raise ValueError(f"{detector.name} is not streamed (no preparation)")
            if prep.key not in keys:
                keys[prep.key] = len(self.preparations)
                self.preparations.append(prep)
            self.slot.append(keys[prep.key])


def streamed(detector: Streamed) -> bool:
    return detector.preparation() is not None


class _PreparedImages(Dataset):
    """(unit, image index) -> (unit, the image's prepared samples, one per distinct preparation of the unit)."""

    def __init__(self, units: list[Unit]):
        self.units = units

    def __getitem__(self, ref: tuple[int, int]) -> tuple[int, list]:
        unit_index, i = ref
        unit = self.units[unit_index]
        try:
            image = unit.images[i]
        except Exception as exc:  # a bad image fails the unit's detectors, not the stream
            return unit_index, [Failure.of(exc)] * len(unit.preparations)
        out = []
        for prep in unit.preparations:
            try:
                out.append(prep.run(image, unit.images, i))
            except Exception as exc:
                out.append(Failure.of(exc))
        return unit_index, out


class _Collate:
    """Combine each preparation slot over the batch; a slot where any image failed carries the Failure."""

    def __init__(self, units: list[Unit]):
        self.units = units

    def __call__(self, samples: list[tuple[int, list]]) -> list:
        preparations = self.units[samples[0][0]].preparations  # a batch never straddles units
        slots = []
        for prep, column in zip(preparations, zip(*(out for _, out in samples))):
            failure = next((s for s in column if isinstance(s, Failure)), None)
            slots.append(failure if failure is not None else prep.combine(list(column)))
        return slots


def _share_decoded_budget(worker_id: int) -> None:
    """Each worker keeps its own decoded-image cache; together they stay within the run's budget."""
    info = get_worker_info()
    for cache in {id(u.images.cache): u.images.cache for u in info.dataset.units}.values():
        cache.budget = max(1, cache.budget // info.num_workers)


def _plan(units: list[Unit], contexts: list[list[FitContext]]) -> list[tuple[int, list[tuple[int, int]]]]:
    plan = []
    for u, unit in enumerate(units):
        sizes = {c.batch_size for c in contexts[u]}
        if len(sizes) != 1:
            raise ValueError(f"the detectors of one unit must share a batch size, got {sorted(sizes)}")
        batch_size = sizes.pop()
        if unit.start % batch_size:
            raise ValueError(f"unit starts at image {unit.start}, not a multiple of the batch size {batch_size}")
        for first in range(unit.start, unit.stop, batch_size):
            plan.append((u, [(u, i) for i in range(first, min(first + batch_size, unit.stop))]))
    return plan


def stream_rows(units: list[Unit], ctx: FitContext, workers: int,
                ctx_of: Callable[[Streamed], FitContext] | None = None,
                seconds: dict[int, float] | None = None) -> Iterator[tuple[Unit, dict[int, Any]]]:
    """Yield each unit, as soon as its last batch is through the model, with ``{detector position: rows}``
    (``forward_batch`` outputs concatenated in image order) or a :class:`Failure`. ``ctx_of``: the context
    each detector computes under (bench.run.work.detector_ctx; default ``ctx`` for all). A detector that
    fails in one unit is skipped in the later ones (its position maps to the first Failure). ``seconds``:
    where to add each detector's time in ``forward_batch`` (by ``id``), for the runner's timing records."""
    if not units:
        return
    contexts = [[ctx_of(d) if ctx_of else ctx for d in unit.detectors] for unit in units]
    plan = _plan(units, contexts)
    pin = torch.cuda.is_available() and str(ctx.device).startswith(("cuda", "auto"))
    loader = DataLoader(_PreparedImages(units), batch_sampler=[refs for _, refs in plan], num_workers=workers,
                        collate_fn=_Collate(units), pin_memory=pin, prefetch_factor=PREFETCH if workers else None,
                        worker_init_fn=_share_decoded_budget if workers else None)
    failed: dict[int, Failure] = {}  # id(detector) -> its first failure
    rows: dict[int, list] = {}
    last_batch = {u: i for i, (u, _) in enumerate(plan)}
    for i, ((u, _), batch) in enumerate(zip(plan, loader)):
        unit = units[u]
        for d, detector in enumerate(unit.detectors):
            if id(detector) in failed:
                continue
            x = batch[unit.slot[d]]
            if isinstance(x, Failure):
                failed[id(detector)] = x
                continue
            started = time.perf_counter()
            try:
                rows.setdefault(d, []).append(np.asarray(detector.forward_batch(x, contexts[u][d])))
            except Exception as exc:
                failed[id(detector)] = Failure.of(exc)
            if seconds is not None:
                seconds[id(detector)] = seconds.get(id(detector), 0.0) + time.perf_counter() - started
        if last_batch[u] == i:
            yield unit, {d: failed.get(id(det)) or np.concatenate(rows.get(d) or [np.zeros((0,))])
                         for d, det in enumerate(unit.detectors)}
            rows = {}

