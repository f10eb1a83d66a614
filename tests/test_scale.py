"""Scale (README, "Running at scale"): the scoring stream gives exactly the scores of ``predict``; a run
on a local Ray cluster gives a local run's results value for value, also when a worker is killed
while scoring; and nothing imports Ray unless asked to."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.core.cache import Cache
from bench.core.detector import FitContext
from bench.core.registries import DETECTORS, PERTURBATIONS
from bench.data.imageset import PerturbedImageSet
from bench.nn.training import seeded_torch
from bench.run.config import RunConfig
from bench.run.record import RunRecord
from bench.run.runner import Runner
from bench.run.stream import Failure, Unit, stream_rows
from detectors.spectral import SpectralDetector

pytestmark = pytest.mark.slow  # Ray clusters and streamed runs: the fast loop is pytest -m "not slow"


def predict_streamed(detector, images, ctx, workers: int):
    """One detector on one image set through the stream: what the executors do with a one-detector unit."""
    for _, result in stream_rows([Unit(None, images, [detector])], ctx, workers):
        outcome = result[0]
        assert not isinstance(outcome, Failure), outcome.reason
        return detector.finish(outcome)
    return detector.finish(np.zeros((0,)))


try:
    import ray
except ImportError:
    ray = None

needs_ray = pytest.mark.skipif(ray is None, reason="needs the ray extra: pip install 'aigi-bench[ray]'")
ROOT = Path(__file__).resolve().parents[1]
VALUE_COLS = ["detector", "generator", "perturbation", "severity", "metric", "value", "ci_low", "ci_high", "n"]
SCORE_COLS = ["detector", "image_id", "perturbation", "severity", "score", "pred_source"]


def untrained_nets():
    """Randomly initialised npr and test_cnn: the stream must reproduce any model's forward pass."""
    from baselines.npr import NPR
    from detectors.tiny_cnn import TinyCNN, _tiny_net

    npr = NPR(test_crop=32, width=8, blocks=(1, 1))
    cnn = TinyCNN(size=32)
    cnn.classes = ["blocky", "grid", "real"]
    with seeded_torch(0):
        npr.model, cnn.model = npr._build_model(), _tiny_net(3, 8)
    return npr, cnn


def test_stream_gives_the_scores_of_predict_in_any_worker_order(tiny_splits):
    """Perturbed (random noise, JPEG) cells through 2 worker processes, batches of 8 that do not divide the
    set: identical to the in-process ``predict`` path, for network and feature detectors alike."""
    train, val, test = tiny_splits["train"], tiny_splits["val"], tiny_splits["test"]
    ctx = FitContext(device="cpu", seed=0, workers=0, batch_size=8, progress=False)
    spectral = SpectralDetector()
    spectral.fit(train, val, ctx)
    detectors = [spectral, *untrained_nets()]
    for name, severity in (("noise", 3), ("jpeg", 8)):
        cell = PerturbedImageSet(test, PERTURBATIONS.get(name), severity, seed=0)
        for detector in detectors:
            plain = detector.predict(PerturbedImageSet(test, PERTURBATIONS.get(name), severity, seed=0), ctx)
            streamed = predict_streamed(detector, cell, ctx, workers=2)
            assert np.array_equal(plain.score, streamed.score), (detector.name, name)
            if plain.source is not None:
                assert list(plain.source) == list(streamed.source)


def untrained_models():
    """clip_finetune (a random tiny CLIP tower + head), effnet_mc (random tiny EfficientNet, tiny VAE: the
    error channel is computed on the stream's batches) and AEROBLADE (two tiny random autoencoders, random
    LPIPS trunk): the streamed pieces of the model-heavy detectors."""
    import copy

    from baselines.aeroblade import Aeroblade
    from bench.core.registries import create_detector
    from bench.nn.backbones import get_backbone
    from bench.nn.clip_features import ClipFeatures
    from detectors.clip_finetune import _Finetuned

    classes = ["blocky", "grid", "real"]
    clip = create_detector("test_clip.finetune")
    features = ClipFeatures(get_backbone("test_tiny_clip"), None, "random", 0, "cpu")
    backbone = features.backbone()
    effnet = create_detector("test_effnet_mc")
    effnet.labels = effnet.classes = classes
    effnet.stats = {"err": (0.05, 0.03), "fft": (100.0, 30.0)}
    with seeded_torch(0):
        clip.model = _Finetuned(copy.deepcopy(backbone.model.visual).float(), features.spec.embed_dim, 3)
        effnet.model = effnet._build_model(3)
    clip.preprocess, clip.classes = backbone.preprocess, classes
    return clip, effnet, Aeroblade(autoencoders=("test_kl", "test_vq"), lpips_backbone="random")


def test_model_heavy_detectors_stream_the_scores_of_predict(tiny_splits, tmp_path):
    """Clean and perturbed cells, in this process and through 2 workers, batches of 8 that do not divide
    the set: clip_finetune, effnet_mc and AEROBLADE give exactly ``predict``'s scores and sources, also
    when the run cache (error maps, distances) is filled by the stream and read back by ``predict``."""
    test = tiny_splits["test"]
    ctx = FitContext(device="cpu", seed=0, workers=0, batch_size=8, progress=False)
    cached = replace(ctx, cache=Cache(tmp_path))
    for detector in untrained_models():
        for name, severity in (("none", 0), ("noise", 3)):
            cell = test if name == "none" else PerturbedImageSet(test, PERTURBATIONS.get(name), severity, seed=0)
            plain = detector.predict(cell, ctx)
            for workers, run_ctx in ((0, ctx), (2, cached)):
                streamed = predict_streamed(detector, cell, run_ctx, workers=workers)
                assert np.array_equal(plain.score, streamed.score), (detector.name, name, workers)
                if plain.source is not None:
                    assert list(plain.source) == list(streamed.source)
            assert np.array_equal(plain.score, detector.predict(cell, cached).score)  # from the cache


def test_detectors_with_one_preparation_share_it_and_shards_keep_the_batches(tiny_splits):
    test = tiny_splits["test"]
    from baselines.npr import NPR

    a, b = NPR(test_crop=32, width=8, blocks=(1, 1)), NPR(test_crop=32, width=4, blocks=(1, 1))
    with seeded_torch(0):
        a.model, b.model = a._build_model(), b._build_model()
    unit = Unit("cell", test, [a, b])
    assert len(unit.preparations) == 1 and unit.slot == [0, 0]  # one preparation per image for both
    ctx = FitContext(device="cpu", workers=0, batch_size=4, progress=False)
    [(_, whole)] = list(stream_rows([unit], ctx, workers=0))
    shards = [Unit(k, test, [a, b], start, min(start + 8, len(test))) for k, start in enumerate(range(0, len(test), 8))]
    parts = [rows for _, rows in stream_rows(shards, ctx, workers=1)]
    for d in (0, 1):
        assert np.array_equal(whole[d], np.concatenate([p[d] for p in parts]))
    with pytest.raises(ValueError, match="multiple of the batch size"):
        list(stream_rows([Unit("x", test, [a], 2)], ctx, workers=0))


def test_a_local_run_and_the_cli_never_import_ray(tiny_dataset, tmp_path):
    code = ("import sys; from bench.cli.main import main; "
            f"rc = main(['run', '--detectors', 'spectral', '--dataset', {str(tiny_dataset)!r}, '--perturb', 'none', "
            f"'--bootstrap', '0', '--quiet', '--no-report', '--out', {str(tmp_path / 'o')!r}, "
            f"'--cache-dir', {str(tmp_path / 'c')!r}]); "
            "assert rc == 0; assert 'ray' not in sys.modules, 'ray was imported'")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]


# -- Ray -----------------------------------------------------------------------------------------------


class KillOnceSpectral(SpectralDetector):
    """The spectral detector, except that the first batch it scores kills its own process (SIGKILL), as
    an out-of-memory killer or a lost node would; ``marker`` records that it did, so the retry scores."""

    def __init__(self, marker: str = "", **kwargs):
        super().__init__(**kwargs)
        self.params["marker"] = marker
        self.marker = marker

    def forward_batch(self, batch, ctx):
        if not os.path.exists(self.marker):
            Path(self.marker).touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return super().forward_batch(batch, ctx)


@pytest.fixture(scope="module")
def ray_cluster():
    if ray is None:
        pytest.skip("needs the ray extra: pip install 'aigi-bench[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    yield
    ray.shutdown()


def run_on(executor, cfg: RunConfig, out: Path, cache: Path) -> RunRecord:
    return Runner(cfg, out, Cache(cache), progress=False, log=lambda *_: None, executor=executor).run()


def same_results(a: Path, b: Path) -> None:
    for name, cols in (("results.parquet", VALUE_COLS), ("scores.parquet", SCORE_COLS)):
        x, y = (pd.read_parquet(p / name)[cols].sort_values(cols[:5]).reset_index(drop=True) for p in (a, b))
        pd.testing.assert_frame_equal(x, y, check_exact=True)


@needs_ray
def test_ray_run_gives_the_local_results_value_for_value(ray_cluster, tiny_dataset, tmp_path):
    from bench.run.executors import make_executor
    from bench.run.executors.ray_cluster import RayExecutor

    cfg = RunConfig(detectors=["spectral", "test_cnn"], dataset=str(tiny_dataset), perturb="jpeg:8,noise:3",
                    bootstrap=20, device="cpu", workers=2, batch_size=8)
    run_on(make_executor("local"), cfg, tmp_path / "local", tmp_path / "local-cache")
    record = run_on(RayExecutor(shard_batches=1), cfg, tmp_path / "ray", tmp_path / "ray-cache")
    assert record.executor == "ray" and all(d.status == "ok" for d in record.detectors.values())
    same_results(tmp_path / "local", tmp_path / "ray")

    class Recording(RayExecutor):
        def fit(self, jobs, *args):
            self.fitted = [job.name for job in jobs]
            yield from super().fit(jobs, *args)

        def score(self, jobs, *args):
            self.scored = [(job.cell, d.name) for job in jobs for d in job.detectors]
            yield from super().score(jobs, *args)

    # a driver killed after all but one cell: the rerun fits nothing and scores only that cell
    sorted((tmp_path / "ray-cache" / "cells").glob("*.npz"))[0].unlink()
    rerun = Recording(shard_batches=1)
    run_on(rerun, cfg, tmp_path / "resumed", tmp_path / "ray-cache")
    assert rerun.fitted == [] and len(rerun.scored) == 1
    same_results(tmp_path / "local", tmp_path / "resumed")


@needs_ray
def test_attacks_crafted_in_ray_tasks_give_the_local_results(ray_cluster, tiny_dataset, tmp_path):
    """White-box cells (one task per detector and cell) and a transfer cell (crafted once on the shipped
    surrogate, scored by both detectors) on Ray: the local run's scores, value for value."""
    from bench.run.executors import make_executor
    from bench.run.executors.ray_cluster import RayExecutor

    class Recording(RayExecutor):
        def attack(self, jobs, *args):
            for job, detector, outcome in super().attack(jobs, *args):
                self.tasks.add((job.cell.key, tuple(d.name for d in job.detectors)))
                yield job, detector, outcome

    cfg = RunConfig(detectors=["spectral", "test_cnn"], dataset=str(tiny_dataset), perturb="fgsm:4,transfer:test_cnn:3",
                    bootstrap=20, device="cpu", workers=0, batch_size=8)
    run_on(make_executor("local"), cfg, tmp_path / "local", tmp_path / "local-cache")
    executor = Recording(shard_batches=1)
    executor.tasks = set()
    record = run_on(executor, cfg, tmp_path / "ray", tmp_path / "ray-cache")
    assert all(d.status == "ok" for d in record.detectors.values())
    assert executor.tasks == {("fgsm:4", ("test_cnn",)), ("transfer:test_cnn:3", ("spectral", "test_cnn"))}
    same_results(tmp_path / "local", tmp_path / "ray")


@needs_ray
def test_a_worker_killed_while_scoring_is_retried_with_identical_results(ray_cluster, tiny_dataset, tmp_path):
    from bench.run.executors import make_executor
    from bench.run.executors.ray_cluster import RayExecutor

    marker = tmp_path / "killed-once"
    DETECTORS.add("test_kill_once", KillOnceSpectral, family="test", kwargs={"marker": str(marker)})
    try:
        cfg = RunConfig(detectors=["test_kill_once"], dataset=str(tiny_dataset), perturb="noise:3", bootstrap=20,
                        device="cpu", workers=0, batch_size=8)
        marker.touch()  # the reference run (local) kills nothing
        run_on(make_executor("local"), cfg, tmp_path / "reference", tmp_path / "reference-cache")
        marker.unlink()
        record = run_on(RayExecutor(shard_batches=1), cfg, tmp_path / "killed", tmp_path / "killed-cache")
    finally:
        DETECTORS._entries.pop("test_kill_once")
    assert marker.exists(), "no worker was killed"
    assert record.detectors["test_kill_once"].status == "ok"
    same_results(tmp_path / "reference", tmp_path / "killed")


@needs_ray
def test_clip_heads_on_ray_give_the_local_results_with_features_from_the_driver_cache(ray_cluster, tiny_dataset,
                                                                                      tmp_path):
    """Two heads on one tiny random CLIP: the workers compute each missing feature row once per cell, the
    driver stores them and runs the heads; the results equal a local run's, and a re-run computes nothing."""
    from bench.nn import clip_features
    from bench.run.executors import make_executor
    from bench.run.executors.ray_cluster import RayExecutor

    cfg = RunConfig(detectors=["test_clip.svm", "test_clip.occ_clip"], dataset=str(tiny_dataset), perturb="noise:3",
                    bootstrap=20, device="cpu", workers=0, batch_size=8)
    run_on(make_executor("local"), cfg, tmp_path / "local", tmp_path / "local-cache")
    clip_features.reset_counters()
    record = run_on(RayExecutor(shard_batches=1), cfg, tmp_path / "ray", tmp_path / "ray-cache")
    assert all(d.status == "ok" for d in record.detectors.values())
    same_results(tmp_path / "local", tmp_path / "ray")
    n_test = pd.read_parquet(tmp_path / "ray" / "scores.parquet")["image_id"].nunique()
    assert clip_features.forward_passes() == 2 * n_test  # clean + noise, each test image once for both heads
    for cells in (tmp_path / "ray-cache" / "cells").glob("*.npz"):
        cells.unlink()
    clip_features.reset_counters()
    run_on(RayExecutor(shard_batches=1), cfg, tmp_path / "again", tmp_path / "ray-cache")
    assert clip_features.forward_passes() == 0
    same_results(tmp_path / "local", tmp_path / "again")


def test_ray_executor_without_ray_or_with_a_stray_address_is_a_one_line_error(monkeypatch):
    from bench.core.errors import BenchError
    from bench.run.executors import make_executor
    from bench.run.executors import ray_cluster

    monkeypatch.setattr(ray_cluster, "ray", None)
    with pytest.raises(BenchError, match=r"aigi-bench\[ray\]"):
        make_executor("ray")
    with pytest.raises(BenchError, match="--executor ray"):
        make_executor("local", "ray://head:10001")
