"""Benchmark the scoring stream on one detector, dataset and cell (not a test; prints numbers, asserts nothing).

    python benchmarks/pipeline.py --detector npr --dataset ../shared/data/wild-dev --images 256 --workers 2
    python benchmarks/pipeline.py --detector npr --dataset DIR --device cuda --workers 8 --batch-size 128
    python benchmarks/pipeline.py --detector clip_svm --profile fast --random-weights --fit-limit 4 --images 64 \
        --dataset ../shared/data/wild-dev --copies 3
    BENCH_WEIGHTS_DIR=../shared/weights BENCH_OFFLINE=1 python benchmarks/pipeline.py --detector aeroblade.taef2 \
        --dataset ../shared/data/wild-dev --images 32 --batch-size 8 --repeats 1

It fits the detector through the runner (or reuses its fit from ``--cache-dir``, e.g. a ``bench run``'s
cache; ``--fit-limit`` trains on fewer images: the model's speed does not depend on how well it is
trained), takes the first
``--images`` test images of the cell ``--cell`` (default jpeg:3) and times, each on a fresh decode:

* preparation alone: decode + perturb + the detector's preparation, through the stream's worker
  processes, batches consumed and dropped;
* model alone: the detector's forward pass over batches prepared beforehand (in memory);
* end to end: the stream (what ``bench run`` does now);
* sequential: the path before the stream (perturb every image in threads, then ``predict``);

and the ratio end to end / max(preparation, model): 1.0 is perfect overlap, 2.0 no overlap at all
when both take the same time (the target is <= 1.2). ``--copies K`` scores K copies of the detector
in one stream (they share one preparation per image), to show how a cell's cost grows with the
number of detectors on one preparation.

A head on frozen CLIP features (:mod:`bench.run.clip_stream`) is measured without a feature cache:
preparation and model are its backbone's feature stage, end to end is the local executor (the stage
streams every image, then the heads), sequential is ``predict`` per copy sharing a fresh feature cache
(the path before the stream). Its ``--copies`` are heads on one backbone: one forward pass per image
for all of them. ``--random-weights`` times a backbone whose weights are absent (timings only).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.core.cache import Cache  # noqa: E402
from bench.core.detector import Detector  # noqa: E402
from bench.data.imageset import DecodedCache, ImageSet  # noqa: E402
from bench.run.clip_stream import FeatureStage, is_clip_head  # noqa: E402
from bench.run.config import RunConfig  # noqa: E402
from bench.run.executors.local import LocalExecutor  # noqa: E402
from bench.run.runner import Runner  # noqa: E402
from bench.run.splits import build_splits  # noqa: E402
from bench.run.stream import Failure, Unit, stream_rows  # noqa: E402
from bench.run.plan import compile_cell, compile_execution  # noqa: E402
from bench.run.work import CellJob  # noqa: E402


class PreparationOnly(Detector):
    """Consumes a detector's prepared batches without a model: times the preparation side of the stream."""

    def __init__(self, detector: Detector):
        super().__init__()
        self.inner = detector

    def preparation(self):
        return self.inner.preparation()

    def forward_batch(self, batch, ctx):
        return np.zeros(len(batch))


def fastest(fns: dict, repeats: int) -> dict[str, float]:
    """Each function's fastest of ``repeats`` runs, taken in rounds (one run of each per round) so that
    other load on the machine disturbs every figure alike."""
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            started = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detector", default="npr")
    parser.add_argument("--dataset", default="demo")
    parser.add_argument("--cell", default="jpeg:3", help="perturbation:severity (none:0 for clean images)")
    parser.add_argument("--images", type=int, default=256, help="test images to score (the first N)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--copies", type=int, default=1, help="copies of the detector sharing one stream")
    parser.add_argument("--fit-limit", type=int, help="fit on at most N images per class and split (default: all; "
                                                      "a fit already in --cache-dir is reused)")
    parser.add_argument("--profile", default="paper", help="detector settings (paper or fast)")
    parser.add_argument("--random-weights", action="store_true", help="allow randomly initialised backbones")
    parser.add_argument("--cache-dir", default="/tmp/bench-pipeline-cache")
    parser.add_argument("--repeats", type=int, default=3, help="each figure is the fastest of this many runs")
    args = parser.parse_args()

    perturbation, severity = args.cell.split(":")
    cfg = RunConfig(detectors=[args.detector], dataset=args.dataset, limit=args.fit_limit, device=args.device,
                    workers=args.workers, batch_size=args.batch_size, perturb="none", profile=args.profile,
                    random_weights=args.random_weights)
    runner = Runner(cfg, Path("/tmp/bench-pipeline-out"), Cache(args.cache_dir), progress=False, log=lambda *_: None)
    splits = build_splits(cfg, runner.cache, progress=False)
    run = runner.fit_all([args.detector], splits, {args.detector: None})[args.detector]
    if run.status != "ok":
        raise SystemExit(f"{args.detector}: {run.reason}")
    full = RunConfig(dataset=args.dataset, seed=cfg.seed)
    test_items = build_splits(full, runner.cache, progress=False).test[:args.images]
    clip = is_clip_head(run.detector)
    ctx = replace(runner.ctx, cache=None)  # no run cache: every repeat computes (AEROBLADE's distances and
    # effnet_mc's error maps would be read back from it otherwise)
    detectors = [run.detector] * args.copies
    streamed = [FeatureStage(run.detector.extractor(ctx))] if clip else detectors  # what the stream's model runs

    def test_set() -> ImageSet:  # a fresh decoded cache each time: every measurement decodes
        return ImageSet(test_items, DecodedCache(), cfg.max_pixels, cfg.min_side)

    grid_cell = compile_cell(perturbation, int(severity), cfg.preset)

    def cell() -> ImageSet:
        return grid_cell.images(test_set(), cfg.seed)

    def stream(dets: list, workers: int) -> dict:
        return next(rows for _, rows in stream_rows([Unit(None, cell(), dets)], ctx, workers))

    def end_to_end() -> None:
        if not clip:
            stream(detectors, args.workers)
            return
        for _, detector, outcome in LocalExecutor().score([CellJob(grid_cell, detectors)], test_set(),
                                                          compile_execution(cfg), ctx):
            if isinstance(outcome, Failure):
                raise SystemExit(f"{detector.name}: {outcome.reason}")

    batches = []
    images = cell()
    prep = streamed[0].preparation()
    for first in range(0, len(images), args.batch_size):
        batches.append(prep.combine([prep.run(images[i], images, i)
                                     for i in range(first, min(first + args.batch_size, len(images)))]))

    def sequential() -> None:
        images = cell()
        images.materialize(max(1, args.workers))
        with tempfile.TemporaryDirectory() as features:  # CLIP heads: the copies share a fresh feature cache
            for detector in detectors:
                detector.predict(images, replace(ctx, cache=Cache(features)) if clip else ctx)

    times = fastest({"preparation alone": lambda: stream([PreparationOnly(streamed[0])], args.workers),
                     "model alone": lambda: [d.forward_batch(b, ctx) for d in streamed for b in batches],
                     "end to end (stream)": end_to_end,
                     "sequential (before the stream)": sequential}, args.repeats)
    prep, model, end_to_end_s, before = times.values()
    n = len(test_items)
    random = any(record.get("random") for record in run.detector.weights_provenance.values())
    print(f"{args.detector} x{args.copies} on {args.dataset}, cell {args.cell}, {n} images, device {runner.device}, "
          f"{args.workers} workers, batch {args.batch_size}" + (", RANDOM weights (timings only)" if random else ""))
    for label, seconds in times.items():
        print(f"  {label:32s} {seconds:8.2f} s  {n / seconds:8.1f} images/s")
    print(f"  end to end / max(preparation, model) = {end_to_end_s / max(prep, model):.2f}   (target <= 1.2)")
    print(f"  sequential / end to end              = {before / end_to_end_s:.2f}")


if __name__ == "__main__":
    main()
