"""Per-detector compute settings (README, "Running at scale"): the scoring batch size a detector prefers
on a GPU applies only when the user gives none and never on the CPU; bf16 autocast only for detectors
that declare ``mixed_precision``, and only on CUDA."""

from __future__ import annotations

from functools import partial

import numpy as np
import torch

from bench.core.detector import DEFAULT_BATCH_SIZE, FitContext
from bench.nn.training import autocast_dtype, seeded_torch
from bench.run.config import RunConfig
from bench.run.executors import local
from bench.run.plan import CLEAN, Execution, compile_execution
from bench.run.work import CellJob, batch_size_for, detector_ctx

CPU_CTX = FitContext(device="cpu", workers=0, progress=False)


def tiny_npr(width: int, gpu_batch_size: int | None):
    from baselines.npr import NPR

    detector = NPR(test_crop=32, width=width, blocks=(1, 1))
    detector.gpu_batch_size = gpu_batch_size  # instance attribute: the class keeps its own preference
    with seeded_torch(0):
        detector.model = detector._build_model()
    return detector


def test_a_given_batch_size_wins_and_the_cpu_keeps_the_default():
    npr = tiny_npr(8, 256)
    assert batch_size_for(npr, 12, on_gpu=True) == 12
    assert batch_size_for(npr, None, on_gpu=True) == 256
    assert batch_size_for(npr, None, on_gpu=False) == DEFAULT_BATCH_SIZE
    assert batch_size_for(tiny_npr(8, None), None, on_gpu=True) == DEFAULT_BATCH_SIZE
    assert RunConfig(detectors=["npr"]).batch_size is None  # unset stays distinguishable from 32
    assert detector_ctx(npr, CPU_CTX, compile_execution(RunConfig(detectors=["npr"]))).batch_size == DEFAULT_BATCH_SIZE
    assert detector_ctx(npr, CPU_CTX, compile_execution(RunConfig(detectors=["npr"], batch_size=5))).batch_size == 5


def test_mixed_precision_reaches_the_autocast_decision_only_where_declared():
    from baselines.npr import NPR
    from detectors.clip_finetune import ClipFinetune

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    cfg = Execution()
    assert ClipFinetune.mixed_precision and not NPR.mixed_precision
    declared = detector_ctx(ClipFinetune.__new__(ClipFinetune), CPU_CTX, cfg)
    undeclared = detector_ctx(tiny_npr(8, None), CPU_CTX, cfg)
    assert autocast_dtype(cuda, declared.mixed_precision) == torch.bfloat16
    assert autocast_dtype(cuda, undeclared.mixed_precision) is None
    assert autocast_dtype(cpu, declared.mixed_precision) is None  # never on the CPU


def test_detectors_preferring_other_batch_sizes_get_their_own_batches_and_predicts_scores(tiny_splits, monkeypatch):
    """On a (pretended) GPU without --batch-size, two detectors of one cell with different preferences are
    streamed in their own batch sizes and give exactly what ``predict`` gives with that batch size."""
    test = tiny_splits["test"]
    a, b = tiny_npr(8, 4), tiny_npr(4, 8)
    seen: dict[int, set[int]] = {id(a): set(), id(b): set()}
    for detector in (a, b):
        forward = detector.forward_batch
        monkeypatch.setattr(detector, "forward_batch", lambda x, ctx, f=forward, d=detector:
                            seen[id(d)].add(len(x)) or f(x, ctx))
    monkeypatch.setattr(local, "detector_ctx", partial(detector_ctx, on_gpu=True))
    settings = Execution(workers=0)
    out = {id(d): p for _, d, p in local.LocalExecutor().score([CellJob(CLEAN, [a, b])], test, settings, CPU_CTX)}
    assert max(seen[id(a)]) == 4 and max(seen[id(b)]) == 8
    for detector, size in ((a, 4), (b, 8)):
        plain = detector.predict(test, FitContext(device="cpu", workers=0, batch_size=size, progress=False))
        assert np.array_equal(plain.score, out[id(detector)].score)
