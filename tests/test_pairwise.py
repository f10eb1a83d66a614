"""Paired comparisons on a real (tiny) run: shared bootstrap draws, `bench compare-detectors`, the
report's pairwise table and mCE column, and cache keys that follow the perturbation's table values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from bench.cli.main import main
from bench.core.cache import Cache
from bench.core.errors import BenchError
from bench.core.registries import PERTURBATIONS
from bench.report.leaderboard import leaderboard_frame
from bench.report.pairwise import compare_detectors, pairwise_auc
from bench.report.runs import read_run
from bench.report.write import write_report
from bench.run.config import RunConfig
from bench.run.metrics import evaluate_cell
from bench.run.resample import cell_seed
from bench.run.runner import Runner
from perturbations import functions
from perturbations.base import Perturbation

pytestmark = pytest.mark.slow  # whole runs compared: the fast loop is pytest -m "not slow"


@pytest.fixture(scope="module")
def two_detector_run(tiny_dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pairwise") / "run"
    cfg = RunConfig(detectors=["spectral", "test_cnn"], dataset=str(tiny_dataset), perturb="jpeg:1,8,noise:5",
                    bootstrap=50, device="cpu", workers=1)
    Runner(cfg, out, Cache(out.parent / "cache"), progress=False, log=lambda *_: None).run()
    return out


def test_every_detector_of_a_cell_gets_the_same_draws(two_detector_run):
    results, scores, record = read_run(two_detector_run)
    assert scores["group"].notna().all()
    for detector in ("spectral", "test_cnn"):
        cell = scores[(scores.detector == detector) & (scores.perturbation == "jpeg") & (scores.severity == 8)]
        rows = evaluate_cell(cell.label.to_numpy(), cell.generator.to_numpy(), cell.score.to_numpy(),
                             probability=False, val_threshold=None, n_boot=50, seed=cell_seed(record["seed"], "jpeg", 8),
                             groups=cell.group.to_numpy())
        auc = next(r for r in rows if r["metric"] == "roc_auc" and r["generator"] == "all")
        stored = results.query("detector == @detector and perturbation == 'jpeg' and severity == 8 "
                               "and metric == 'roc_auc' and generator == 'all'").iloc[0]
        assert (auc["value"], auc["ci_low"], auc["ci_high"]) == pytest.approx(
            (stored.value, stored.ci_low, stored.ci_high))


def test_compare_detectors_per_cell_with_holm(two_detector_run):
    results, scores, record = read_run(two_detector_run)
    frame = compare_detectors(results, scores, record, "spectral", "test_cnn")
    assert list(zip(frame.perturbation, frame.severity)) == [("none", 0), ("jpeg", 1), ("jpeg", 8), ("noise", 5)]
    clean = scores[(scores.perturbation == "none")]
    a, b = (clean[clean.detector == d].set_index("image_id").sort_index() for d in ("spectral", "test_cnn"))
    expected = roc_auc_score(a.label, a.score) - roc_auc_score(b.label, b.score)
    assert frame.loc[0, "diff"] == pytest.approx(expected)
    assert (frame["p_holm"] >= frame["p"]).all() and (frame["p_holm"] <= 1).all()
    assert (frame["ci_low"] <= frame["diff"]).all() and (frame["diff"] <= frame["ci_high"]).all()
    other = compare_detectors(results, scores, record, "spectral", "test_cnn", metric="tpr_at_fpr_5")
    assert "se" not in other.columns and other["p"].between(0, 1).all()
    with pytest.raises(BenchError, match="no scores"):
        compare_detectors(results, scores, record, "spectral", "nope")
    with pytest.raises(BenchError, match="metric"):
        compare_detectors(results, scores, record, "spectral", "test_cnn", metric="attr_acc")


def test_compare_detectors_cli(two_detector_run, capsys):
    assert main(["compare-detectors", str(two_detector_run), "spectral", "test_cnn"]) == 0
    out = capsys.readouterr().out
    assert "jpeg:8 (q=30)" in out and "p (Holm)" in out and "DeLong" in out and "Holm over 4 cells" in out
    assert main(["compare-detectors", str(two_detector_run), "spectral", "nope"]) == 2
    with pytest.raises(SystemExit):
        main(["compare-detectors", "--help"])
    assert "examples:" in capsys.readouterr().out


def test_report_pairwise_table_and_mce(two_detector_run, tmp_path):
    results, scores, _ = read_run(two_detector_run)
    diff = pairwise_auc(scores, ["spectral", "test_cnn"])
    assert diff.loc["spectral", "test_cnn"] == pytest.approx(-diff.loc["test_cnn", "spectral"])
    perturbed = results.query("metric == 'roc_auc' and generator == 'all' and severity > 0")
    by = perturbed.groupby("detector")["value"].mean()
    assert diff.loc["spectral", "test_cnn"] == pytest.approx(by["spectral"] - by["test_cnn"])
    paths = write_report([two_detector_run], tmp_path / "report", reference_detector="test_cnn")
    assert (tmp_path / "report" / "pairwise.md") in paths
    assert "mCE" in (tmp_path / "report" / "leaderboard.md").read_text(encoding="utf-8")
    frame = leaderboard_frame(results, reference_detector="test_cnn").set_index("detector")
    assert frame.loc["test_cnn", "mce"] == pytest.approx(1.0)
    auc = perturbed.set_index(["detector", "perturbation", "severity"])["value"]
    ce = lambda p, levels: (sum(1 - auc["spectral", p, s] for s in levels)
                            / sum(1 - auc["test_cnn", p, s] for s in levels))
    assert frame.loc["spectral", "mce"] == pytest.approx((ce("jpeg", [1, 8]) + ce("noise", [5])) / 2)
    with pytest.raises(BenchError, match="reference-detector"):
        leaderboard_frame(results, reference_detector="nope")


# ---------------------------------------------------------------- honest cache keys


def test_fingerprint_follows_table_values_version_and_source():
    base = dict(name="x", description="", param_name="q", unit="", fn=functions.jpeg, tables={"default": (90, 50)})
    fp = Perturbation(**base).fingerprint()
    assert Perturbation(**{**base, "tables": {"default": (90, 40)}}).fingerprint() != fp
    assert Perturbation(**{**base, "version": 2}).fingerprint() != fp
    assert Perturbation(**{**base, "fn": functions.gaussian_blur}).fingerprint() != fp
    assert Perturbation(**base).fingerprint() == fp


def test_changing_a_table_value_recomputes_the_cell(tiny_dataset, tmp_path, monkeypatch):
    cfg = RunConfig(detectors=["spectral"], dataset=str(tiny_dataset), perturb="jpeg:1,2", bootstrap=5,
                    device="cpu", workers=1)
    cache = Cache(tmp_path / "cache")
    Runner(cfg, tmp_path / "a", cache, progress=False, log=lambda *_: None).run()
    cells = lambda: set((tmp_path / "cache" / "cells").glob("*.npz"))  # noqa: E731
    before = cells()
    Runner(cfg, tmp_path / "b", cache, progress=False, log=lambda *_: None).run()
    assert cells() == before  # nothing changed: everything from the cache
    jpeg = PERTURBATIONS.get("jpeg")
    monkeypatch.setitem(jpeg.tables, "default", (100, 55, *jpeg.tables["default"][2:]))
    Runner(cfg, tmp_path / "c", cache, progress=False, log=lambda *_: None).run()
    assert len(cells() - before) == 1  # level 2's quality changed (90 -> 55); the clean and level-1 cells did not
    unchanged = "not (perturbation == 'jpeg' and severity == 2)"
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "c" / "scores.parquet").query(unchanged)[["image_id", "score"]].reset_index(drop=True),
        pd.read_parquet(tmp_path / "b" / "scores.parquet").query(unchanged)[["image_id", "score"]].reset_index(drop=True))
    c = pd.read_parquet(tmp_path / "c" / "scores.parquet").query("perturbation == 'jpeg' and severity == 2")
    b = pd.read_parquet(tmp_path / "b" / "scores.parquet").query("perturbation == 'jpeg' and severity == 2")
    assert not np.allclose(c["score"].to_numpy(), b["score"].to_numpy())
