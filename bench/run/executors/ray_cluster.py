"""The Ray executor (``bench run --executor ray``): the same grid as Ray tasks on a cluster.

* A fit is one task, with a GPU when the detector can use one (``DetectorInfo.gpu`` is not "no"), the
  run's device is not ``cpu`` and the cluster has GPUs.
* Scoring is one task per (detector group, cell, shard): the group is every streamed detector that
  still needs the cell, sharing one preparation of each image (:mod:`bench.run.stream`); a shard is
  ``SHARD_BATCHES`` batches, so every detector sees the batches a local run gives it and the driver
  concatenates the shards' rows in order and finishes them (the same numbers as a local run, value
  for value). The CLIP heads' missing backbone features go the same way, one shard series per cell and
  backbone identity over the images the driver's feature cache lacks (:mod:`bench.run.clip_stream`);
  the driver stores the rows and runs the heads. A detector that is not streamed is scored on a whole
  cell in one task.
* An adversarial cell is crafted where it is scored, in a task: one per (detector, ``pgd``/``fgsm`` cell),
  each against its own detector, and one per ``transfer:`` cell, crafted once on the surrogate (shipped
  with the task) and scored by every detector that needs the cell.
* Tasks only compute. The driver (this process) stays the only writer of the cache and the result
  store, writing each fit and cell as its task returns, so nodes need no shared cache and a re-run
  after the driver dies resumes from the cache like a local run.
* A task whose worker process dies (killed, out of memory, node lost) is retried by Ray up to
  ``MAX_RETRIES`` times; tasks are pure functions of their arguments, so a retry gives the same rows.

Workers read images and weights from the paths in the manifest and the weights records: those must
be the same paths on every node (a shared or replicated file system; README, "Running at scale"), and
every node needs this package installed (the version the driver runs).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Iterator

import numpy as np

from bench.core.detector import Detector, FitContext
from bench.core.errors import BenchError
from bench.data.imageset import DecodedCache, ImageSet
from bench.run.clip_stream import head_groups, is_clip_head, scored_whole
from bench.run.plan import Cell, Execution
from bench.run.stream import Failure, Unit, stream_rows, streamed
from bench.run.work import (AttackJob, CellJob, FitJob, attack_cell, detector_ctx, finish_rows, fit_detector,
                            predict_cell)

try:
    import ray
except ImportError:  # pragma: no cover - depends on the environment
    ray = None

SHARD_BATCHES = 8  # batches per scoring task
MAX_RETRIES = 3  # Ray re-runs a task whose worker died this many times

CONNECT_TIMEOUT_S = 10  # how long joining waits for the cluster's address to answer (Ray itself retries forever)

_DECODED: DecodedCache | None = None  # per worker process, reused by the tasks it runs


def check_reachable(address: str | None, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """A one-line BenchError unless a ``HOST:PORT`` (or ``ray://HOST:PORT``) address accepts a TCP connection
    within ``timeout`` seconds; Ray's own join retries an address where nothing listens without end.
    Other addresses (None, ``auto``, ``local``) are Ray's to find."""
    import socket

    host, colon, port = (address or "").removeprefix("ray://").rpartition(":")
    if not colon or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise BenchError(f"cannot join the Ray cluster {address}: nothing answers there within {timeout:g} s "
                         f"({exc.strerror or exc})") from None


def _decoded() -> DecodedCache:
    global _DECODED
    if _DECODED is None:
        _DECODED = DecodedCache()
    return _DECODED


def _use_threads(threads: int) -> None:
    """The driver's torch thread count: a trained network's numbers depend on it (the order of float
    sums), and a Ray worker would otherwise use one thread per CPU the task reserved."""
    import torch

    torch.set_num_threads(threads)


def _fit(job: FitJob, settings: Execution, ctx: FitContext, threads: int):
    _use_threads(threads)
    return fit_detector(job, settings, ctx, _decoded())


def _score_shard(items: list, detectors: list[Detector], cell: Cell, start: int, stop: int,
                 settings: Execution, contexts: list[FitContext], threads: int) -> dict:
    _use_threads(threads)
    images = cell.images(settings.limits.image_set(items, _decoded()), settings.seed)
    by_id = {id(d): c for d, c in zip(detectors, contexts)}
    for _, rows in stream_rows([Unit(cell, images, detectors, start, stop)], contexts[0], 0, lambda d: by_id[id(d)]):
        return rows
    return {}


def _predict(items: list, detector: Detector, cell: Cell, settings: Execution, ctx: FitContext, threads: int):
    _use_threads(threads)
    images = cell.images(settings.limits.image_set(items, _decoded()), settings.seed)
    return predict_cell(detector, images, ctx, settings.workers)


def _attack(items: list, job: AttackJob, settings: Execution, ctx: FitContext, threads: int) -> list:
    _use_threads(threads)
    test = settings.limits.image_set(items, _decoded())
    return [outcome for _, outcome in attack_cell(job, test, settings, ctx)]


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None, shard_batches: int = SHARD_BATCHES):
        if ray is None:
            raise BenchError("--executor ray needs Ray: pip install 'aigi-bench[ray]'")
        if not ray.is_initialized():
            check_reachable(address)
            try:
                ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING,
                         configure_logging=False)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise BenchError(f"cannot start or join the Ray cluster {address or '(local)'}: {exc}") from None
        self.shard_batches = shard_batches
        #: Scoring time per detector (bench.run.executors.local): not measured across a cluster's nodes, so
        #: a Ray run leaves the timing records as they were.
        self.seconds: dict[str, float] = {}
        self.cluster_gpus = ray.cluster_resources().get("GPU", 0)
        import torch

        self.threads = torch.get_num_threads()
        remote = ray.remote(max_retries=MAX_RETRIES, retry_exceptions=False)
        self._fit, self._score_shard, self._predict = remote(_fit), remote(_score_shard), remote(_predict)
        self._attack = remote(_attack)

    # -- placement ----------------------------------------------------------------------------
    def _gpus(self, detectors: list[Detector], settings: Execution) -> int:
        wants = settings.device != "cpu" and any(d.info.gpu != "no" for d in detectors)
        return 1 if wants and self.cluster_gpus >= 1 else 0

    @staticmethod
    def _worker_ctx(ctx: FitContext, settings: Execution) -> FitContext:
        """Each worker resolves the device itself; no cache or checkpoint (the driver alone writes)."""
        return replace(ctx, device=settings.device, progress=False, cache=None, checkpoint=None)

    @staticmethod
    def _results(pending: dict) -> Iterator[tuple]:
        """(what the task was, its result or a Failure) as tasks finish."""
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            meta = pending.pop(done[0])
            try:
                yield meta, ray.get(done[0])
            except Exception as exc:  # retries exhausted, or the task itself raised (then cause is its exception)
                cause = getattr(exc, "cause", None) or exc
                first_line = (str(cause).strip().splitlines() or [""])[0]
                yield meta, Failure(f"{type(cause).__name__}: {first_line}", str(exc))

    # -- the executor interface -------------------------------------------------------------
    def fit(self, jobs: list[FitJob], settings: Execution, ctx: FitContext, decoded=None) -> Iterator[tuple]:
        ctx = self._worker_ctx(ctx, settings)
        pending = {}
        for job in jobs:  # a fit reserves the CPUs of its training loader's workers
            task = self._fit.options(num_gpus=self._gpus([job.detector], settings), num_cpus=max(1, settings.workers))
            pending[task.remote(replace(job, checkpoint=None), settings, ctx, self.threads)] = job
        yield from self._results(pending)

    def score(self, jobs: list[CellJob], test: ImageSet, settings: Execution, ctx: FitContext) -> Iterator[tuple]:
        driver_ctx, ctx = ctx, self._worker_ctx(ctx, settings)
        items = ray.put(test.items)
        refs = {id(d): ray.put(d) for job in jobs for d in job.detectors if scored_whole(d)}
        pending: dict = {}  # task -> (series, shard) or ("cell", job index, detector)
        series: list[tuple] = []  # what each shard series is for
        parts: list[list] = []  # each series' shard results, in order

        def shards(detectors: list, items_ref, n: int, cell, contexts: list[FitContext], gpus: int, what) -> None:
            """A shard series of ``detectors`` over the ``n`` images of ``items_ref`` in one cell, for ``what``."""
            shard = contexts[0].batch_size * self.shard_batches
            starts = range(0, n, shard)
            series.append(what)
            parts.append([None] * len(starts))
            for k, start in enumerate(starts):
                ref = self._score_shard.options(num_gpus=gpus).remote(
                    items_ref, detectors, cell, start, min(start + shard, n), settings, contexts, self.threads)
                pending[ref] = (len(series) - 1, k)

        # the CLIP heads: the driver (the feature cache's reader and writer) plans what each backbone lacks
        head_contexts = {}
        for job in jobs:
            for d in job.detectors:
                if is_clip_head(d):
                    on_gpu = self._gpus([d], settings) > 0
                    device = settings.device if on_gpu else "cpu"
                    head_contexts[id(d)] = detector_ctx(d, replace(driver_ctx, device=device), settings, on_gpu=on_gpu)
        groups, failures = head_groups(jobs, test, settings.seed, head_contexts)
        yield from failures
        for group in groups:
            for pixels, indices in group.requests():
                shards(ray.put([group.stage]), ray.put([test.items[i] for i in indices]), len(indices), group.job.cell,
                       [replace(group.ctx, cache=None, progress=False)], self._gpus(group.heads, settings),
                       ("features", group, pixels))
            if group.ready:  # every row cached
                yield from group.predictions(head_contexts)

        for j, job in enumerate(jobs):
            streamed_group = [d for d in job.detectors if streamed(d)]
            gpus = self._gpus(streamed_group, settings) if streamed_group else 0
            by_size: dict[int, list[Detector]] = {}  # one shard series per batch size: shards start on its batches
            contexts = {id(d): detector_ctx(d, ctx, settings, on_gpu=gpus > 0) for d in streamed_group}
            for d in streamed_group:
                by_size.setdefault(contexts[id(d)].batch_size, []).append(d)
            for group in by_size.values():
                shards(ray.put(group), items, len(test), job.cell, [contexts[id(d)] for d in group], gpus,
                       ("detectors", j, group))
            for d in job.detectors:
                if scored_whole(d):
                    gpus = self._gpus([d], settings)
                    d_ctx = detector_ctx(d, ctx, settings, on_gpu=gpus > 0)
                    ref = self._predict.options(num_gpus=gpus).remote(items, refs[id(d)], job.cell, settings, d_ctx,
                                                                      self.threads)
                    pending[ref] = ("cell", j, d)
        for meta, result in self._results(pending):
            if meta[0] == "cell":
                yield jobs[meta[1]], meta[2], result
                continue
            s, k = meta
            parts[s][k] = result
            if not all(p is not None for p in parts[s]):
                continue
            if series[s][0] == "features":
                _, group, pixels = series[s]
                group.receive(pixels, _joined(parts[s], 0))
                if group.ready:
                    yield from group.predictions(head_contexts)
                continue
            _, j, group = series[s]
            for d, detector in enumerate(group):
                yield jobs[j], detector, finish_rows(detector, _joined(parts[s], d))

    def attack(self, jobs: list[AttackJob], test: ImageSet, settings: Execution, ctx: FitContext) -> Iterator[tuple]:
        """One task per transfer cell (crafted once on the surrogate, scored by all its detectors) and one per
        (detector, white-box cell): each crafts against its own target, so they run in parallel."""
        ctx = self._worker_ctx(ctx, settings)
        items = ray.put(test.items)
        pending = {}
        for job in jobs:
            parts = [job] if job.shared else [replace(job, detectors=[d], fit_keys=[k])
                                              for d, k in zip(job.detectors, job.fit_keys)]
            for part in parts:
                targets = part.detectors + [d for d, _ in part.surrogates.values()]
                ref = self._attack.options(num_gpus=self._gpus(targets, settings)).remote(items, part, settings, ctx,
                                                                                     self.threads)
                pending[ref] = part
        for part, result in self._results(pending):
            for d, detector in enumerate(part.detectors):
                yield part, detector, result if isinstance(result, Failure) else result[d]


def _joined(parts: list, d: int) -> np.ndarray | Failure:
    """Detector ``d``'s rows over a shard series, in order, or the first shard's failure."""
    pieces = [p if isinstance(p, Failure) else p[d] for p in parts]
    return next((p for p in pieces if isinstance(p, Failure)), None) or np.concatenate(pieces)
