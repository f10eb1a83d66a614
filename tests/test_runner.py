"""The runner end to end: grid, caching, resume, cross-dataset and held-out protocols, the store."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.core.cache import Cache
from bench.core.errors import BenchError
from bench.report.write import write_leaderboards
from bench.run.config import RunConfig
from bench.run.record import RunRecord
from bench.run.runner import Runner
from bench.run.schema import RESULT_COLUMNS, SCORE_COLUMNS
from detectors.spectral import SpectralDetector

pytestmark = pytest.mark.slow  # whole runs of the runner: the fast loop is pytest -m "not slow"

VALUE_COLS = ["detector", "generator", "perturbation", "severity", "metric", "value", "ci_low", "ci_high", "n"]


def run(cfg: RunConfig, out: Path, cache: Cache) -> RunRecord:
    """A run as ``bench run --no-report`` does it: the runner, then the leaderboards."""
    record = Runner(cfg, out, cache, progress=False, log=lambda *_: None).run()
    write_leaderboards([out])
    return record


def values(out: Path) -> pd.DataFrame:
    df = pd.read_parquet(out / "results.parquet")
    return df[VALUE_COLS].sort_values(VALUE_COLS[:5]).reset_index(drop=True)


@pytest.fixture
def cfg(tiny_dataset) -> RunConfig:
    return RunConfig(detectors=["spectral", "test_cnn"], dataset=str(tiny_dataset), perturb="jpeg:1,8,noise:5",
                     bootstrap=20, device="cpu", workers=1)


def test_end_to_end_store(cfg, tmp_path, cache):
    record = run(cfg, tmp_path / "out", cache)
    out = tmp_path / "out"
    for name in ["results.parquet", "results.csv", "scores.parquet", "run.json", "leaderboard.md"]:
        assert (out / name).stat().st_size > 0, name
    res = pd.read_parquet(out / "results.parquet")
    assert list(res.columns) == RESULT_COLUMNS
    assert res["value"].dtype == np.float64 and res["severity"].dtype == np.int64
    assert set(res["detector"]) == {"spectral", "test_cnn"}
    assert set(res["generator"]) == {"all", "mean", "blocky", "grid"}
    assert set(zip(res["perturbation"], res["severity"])) == {("none", 0), ("jpeg", 1), ("jpeg", 8), ("noise", 5)}
    assert {"roc_auc", "ap", "acc", "real_acc", "fake_acc", "balanced_acc", "tpr_at_fpr_5", "tpr_at_fpr_1", "eer",
            "acc_at_val_threshold", "ece", "brier", "attr_acc", "attr_macro_f1"} <= set(res["metric"])
    jpeg30 = res[(res.perturbation == "jpeg") & (res.severity == 8)]
    assert (jpeg30["param"] == 30).all() and (jpeg30["param_label"] == "q=30").all()
    clean_auc = res.query("detector == 'spectral' and perturbation == 'none' and generator == 'all' "
                          "and metric == 'roc_auc'")["value"].item()
    assert clean_auc > 0.9  # the tiny dataset's artefacts are easy
    scores = pd.read_parquet(out / "scores.parquet")
    assert list(scores.columns) == SCORE_COLUMNS
    n_test = record.splits["test"]
    assert len(scores) == 2 * 4 * n_test
    assert scores["pred_source"].isin(["real", "blocky", "grid"]).all()
    rec = json.loads((out / "run.json").read_text())
    for key in ["run_id", "date", "git", "versions", "device", "seed", "config", "dataset_hash", "detectors",
                "perturbation_stage", "perturbation_tables", "skipped_images"]:
        assert key in rec, key
    assert rec["detectors"]["spectral"]["status"] == "ok"
    assert rec["detectors"]["spectral"]["weights"] == "trained"
    assert rec["perturbation_tables"]["jpeg"]["levels"]["8"] == "q=30"
    board = (out / "leaderboard.md").read_text()
    assert "spectral" in board and rec["dataset_hash"] in board


def test_second_run_recomputes_nothing(cfg, tmp_path, cache, monkeypatch):
    run(cfg, tmp_path / "a", cache)

    def boom(*args, **kwargs):
        raise AssertionError("recomputed")

    from detectors.tiny_cnn import TinyCNN

    for cls in (SpectralDetector, TinyCNN):
        for method in ("fit", "predict", "forward_batch", "finish"):  # finish and forward_batch: the stream
            monkeypatch.setattr(cls, method, boom)
    run(cfg, tmp_path / "b", cache)
    pd.testing.assert_frame_equal(values(tmp_path / "a"), values(tmp_path / "b"))


def test_interrupted_run_resumes_with_only_missing_cells(cfg, tmp_path, cache, monkeypatch):
    cfg.detectors = ["spectral"]
    reference = tmp_path / "ref"
    run(cfg, reference, Cache(tmp_path / "other-cache"))

    calls = {"n": 0}
    original = SpectralDetector.finish  # every prediction ends there, streamed or not

    def interrupted(self, rows):
        calls["n"] += 1
        if calls["n"] == 3:  # the validation pass, the clean cell, then the interruption
            raise KeyboardInterrupt
        return original(self, rows)

    monkeypatch.setattr(SpectralDetector, "finish", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, tmp_path / "out", cache)
    assert not (tmp_path / "out" / "run.json").exists()

    calls["n"] = -100
    run(cfg, tmp_path / "out", cache)
    assert calls["n"] == -100 + 3  # only the three missing cells were scored again
    pd.testing.assert_frame_equal(values(reference), values(tmp_path / "out"))


@pytest.mark.slow
def test_kill_9_then_resume_gives_identical_numbers(tiny_dataset, tmp_path):
    args = [sys.executable, "-m", "bench.cli.main", "run", "--detectors", "test_cnn", "--dataset", str(tiny_dataset),
            "--perturb", "jpeg,blur,noise", "--bootstrap", "10", "--device", "cpu", "--workers", "1",
            "--quiet", "--no-report", "--cache-dir", str(tmp_path / "cache")]
    proc = subprocess.Popen(args + ["--out", str(tmp_path / "killed")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    cells = tmp_path / "cache" / "cells"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and len(list(cells.glob("*.npz"))) < 3:
        time.sleep(0.01)
    killed_mid_run = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(cells.glob("*.npz")))
    for entry in cells.glob("*.npz"):  # a kill mid-write may leave a hidden .tmp, never a partial entry
        data = Cache(tmp_path / "cache").load_arrays("cells", entry.stem)  # complete: its tag checks out
        assert data is not None and len(data["score"]) > 0
    subprocess.run(args + ["--out", str(tmp_path / "killed")], check=True, capture_output=True)
    subprocess.run([*args[:-3], "--cache-dir", str(tmp_path / "fresh"), "--out", str(tmp_path / "fresh-out")],
                   check=True, capture_output=True)
    assert len(list(cells.glob("*.npz"))) == 1 + 8 + 4 + 5
    if killed_mid_run:
        assert done_before < 18
    pd.testing.assert_frame_equal(values(tmp_path / "killed"), values(tmp_path / "fresh-out"))


def test_held_out_generators(cfg, tmp_path, cache):
    cfg.detectors = ["spectral"]
    cfg.train_generators = ["blocky"]
    cfg.test_generators = ["grid"]
    record = run(cfg, tmp_path / "out", cache)
    res = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert set(res["generator"]) == {"all", "mean", "grid"}
    assert not res["metric"].str.startswith("attr_").any()  # 'grid' is not a class the detector knows
    scores = pd.read_parquet(tmp_path / "out" / "scores.parquet")
    assert set(scores["generator"]) == {"real", "grid"}
    assert record.config["train_generators"] == ["blocky"]
    board = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "trained on generators blocky, tested on generators grid" in board  # the protocol is on the table


def test_unknown_held_out_generator_is_a_clear_error(cfg, tmp_path, cache):
    cfg.train_generators = ["blocy"]
    with pytest.raises(BenchError, match="blocy"):
        run(cfg, tmp_path / "out", cache)


def test_cross_dataset_trains_on_one_and_tests_on_all_of_another(cfg, tiny_dataset, tmp_path, cache):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(tiny_dataset, other)
    for p in list((other / "fake" / "grid").glob("*.png"))[:5]:
        p.unlink()
    cfg.detectors = ["spectral"]
    cfg.train_on = str(tiny_dataset)
    cfg.dataset = str(other)
    with pytest.raises(BenchError, match=r"overlap between training and test data \(identical content: tiny0:train"):
        run(cfg, tmp_path / "out", cache)  # the target is a copy of the training data
    cfg.allow_overlap = True
    record = run(cfg, tmp_path / "out", cache)
    assert record.splits["test"] == 75  # every image of the target dataset
    assert set(record.datasets) == {"tiny0", "other"}
    assert {part.split(":")[0] for o in record.overlaps for part in o["files"]} == {"tiny0", "other"}


def test_config_round_trip_reproduces_the_run(cfg, tmp_path, cache):
    run(cfg, tmp_path / "a", cache)
    stored = json.loads((tmp_path / "a" / "run.json").read_text())["config"]
    assert RunConfig.from_dict(stored) == cfg
    from bench.cli.main import main

    assert main(["run", "--config", str(tmp_path / "a" / "run.json"), "--out", str(tmp_path / "b"),
                 "--cache-dir", str(cache.root), "--quiet", "--no-report"]) == 0
    pd.testing.assert_frame_equal(values(tmp_path / "a"), values(tmp_path / "b"))


def test_failing_detector_is_recorded_and_others_continue(cfg, tmp_path, cache, monkeypatch):
    def broken(self, train, val, ctx):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(SpectralDetector, "fit", broken)
    record = run(cfg, tmp_path / "out", cache)
    assert record.detectors["spectral"].status == "failed"
    assert "RuntimeError: out of memory" in record.detectors["spectral"].reason
    assert record.detectors["test_cnn"].status == "ok"
    res = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert set(res["detector"]) == {"test_cnn"}


def test_limit_is_per_class_and_split(cfg, tmp_path, cache):
    cfg.limit = 3
    cfg.detectors = ["spectral"]
    record = run(cfg, tmp_path / "out", cache)
    assert record.splits == {"train": 9, "val": 9, "test": 9}


def test_unloadable_fit_in_the_cache_is_recomputed(cfg, tmp_path, cache):
    """A truncated fit (or one pickled before a module moved) is a cache miss, not a failed detector."""
    first = run(cfg, tmp_path / "a", cache)
    fit = cache.path("fits", first.detectors["test_cnn"].fit_key, "pkl")
    fit.write_bytes(fit.read_bytes()[:100])
    second = run(cfg, tmp_path / "b", cache)
    assert second.detectors["test_cnn"].status == "ok"
    assert fit.stat().st_size > 100  # stored again
    pd.testing.assert_frame_equal(values(tmp_path / "a"), values(tmp_path / "b"))


def test_train_seed_changes_training_only(cfg, tmp_path, cache):
    """--train-seed redraws the network's training; split, perturbations and the seeded sklearn fit stay."""
    cfg.detectors = ["spectral", "test_cnn"]
    base = run(cfg, tmp_path / "s0", cache)
    other = run(RunConfig(**{**cfg.to_dict(), "train_seed": 7}), tmp_path / "s7", cache)
    assert (base.train_seed, other.train_seed) == (0, 7)
    assert base.dataset_hash == other.dataset_hash and base.train_hash == other.train_hash
    assert base.detectors["test_cnn"].fit_key != other.detectors["test_cnn"].fit_key
    a, b = values(tmp_path / "s0"), values(tmp_path / "s7")
    spectral = a["detector"] == "spectral"
    pd.testing.assert_frame_equal(a[spectral], b[spectral])
    assert not a[~spectral]["value"].equals(b[~spectral]["value"])


def test_run_record_names_the_machine(cfg, tmp_path, cache):
    cfg.detectors = ["spectral"]
    machine = run(cfg, tmp_path / "out", cache).machine
    import torch

    assert machine["arch"] and machine["cpu"] and machine["torch_threads"] == torch.get_num_threads()
    assert machine["isa"] == torch.backends.cpu.get_cpu_capability()
    assert machine["blas"] and all({"library", "version", "architecture", "threads"} <= set(lib)
                                   for lib in machine["blas"])
