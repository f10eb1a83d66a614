"""Several training seeds in one run (bench run --seeds): seed column, fits per seed, training-free
detectors once, leaderboard spread, figures, comparisons, and old stores without the column."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bench.core.cache import Cache
from bench.core.errors import BenchError
from bench.core.registries import DETECTORS, load_plugins
from bench.cli.main import build_parser, run_config_from_args
from bench.report.compare import compare_dirs
from bench.report.reference import save_baseline
from bench.report.figures import plot_robustness_curves
from bench.report.leaderboard import leaderboard_frame, leaderboard_markdown
from bench.report.pairwise import compare_detectors, format_comparison, scores_by_seed
from bench.report.runs import load_runs, read_run
from bench.run.config import RunConfig
from bench.run.record import RunRecord
from bench.run.runner import Runner
from bench.run.schema import RESULTS_PARQUET, RUN_JSON, SCORES_PARQUET

pytestmark = pytest.mark.slow  # runs under several training seeds: the fast loop is pytest -m "not slow"

KEYS = ["detector", "generator", "perturbation", "severity", "metric"]


def make_cfg(dataset, **changes) -> RunConfig:
    return RunConfig(**{"detectors": ["spectral", "test_cnn"], "dataset": str(dataset), "perturb": "jpeg:8",
                        "bootstrap": 20, "device": "cpu", "workers": 1, "seeds": [0, 1],
                        "detector_params": {"test_cnn": {"epochs": 1}}, **changes})


@pytest.fixture(scope="module")
def training_free_spectral():
    """spectral declared training-free for these tests (a seeded fit on fixed features behaves as one),
    with its fits and predictions counted."""
    load_plugins()
    calls = {"fit": 0, "predict": 0}
    cls = DETECTORS.get("spectral")
    fit, finish = cls.fit, cls.finish  # every prediction ends in finish, streamed or not

    def counted_fit(self, *args, **kwargs):
        calls["fit"] += 1
        return fit(self, *args, **kwargs)

    def counted_finish(self, *args, **kwargs):
        calls["predict"] += 1
        return finish(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(DETECTORS.entry("spectral").meta, "trains", False)
        patch.setattr(cls, "fit", counted_fit)
        patch.setattr(cls, "finish", counted_finish)
        yield calls


def run(cfg: RunConfig, out, cache) -> RunRecord:
    return Runner(cfg, out, cache, progress=False, log=lambda *_: None).run()


@pytest.fixture(scope="module")
def seeds_run(tiny_dataset, training_free_spectral, tmp_path_factory):
    """One run with training seeds 0 and 1 (and its cache, for runs that reuse its fits)."""
    root = tmp_path_factory.mktemp("seeds")
    cache = Cache(root / "cache")
    record = run(make_cfg(tiny_dataset), root / "run", cache)
    return root / "run", record, dict(training_free_spectral), cache


def test_config_takes_seeds_as_a_list_or_a_comma_string():
    assert RunConfig.from_dict({"seeds": "0, 1,2"}).training_seeds == [0, 1, 2]
    assert RunConfig.from_dict({"train_seed": 4}).training_seeds == [4]
    for bad in ({"seeds": "0,x"}, {"seeds": [1, 1]}, {"seeds": [0, 1], "train_seed": 2}, {"seeds": [-1]}):
        with pytest.raises(BenchError, match="seed"):
            RunConfig.from_dict(bad)
    cfg = RunConfig.from_dict({"seed": 3, "seeds": [0, 1]})
    assert (cfg.split_seed(1), RunConfig.from_dict({"seed": 3, "seeds": [0, 1], "vary_split": True}).split_seed(1)) \
        == (3, 1)


def test_each_seed_fits_training_detectors_and_training_free_ones_once(seeds_run):
    out, record, calls, _ = seeds_run
    results, scores, _ = read_run(out)
    assert sorted(results["seed"].unique()) == [0, 1] and sorted(scores["seed"].unique()) == [0, 1]
    assert calls == {"fit": 1, "predict": 1 + 2}  # validation threshold, then the two cells, at seed 0 only
    by_seed = {s: part.set_index(KEYS).sort_index() for s, part in results.groupby("seed")}
    spectral = [part.loc["spectral", ["value", "ci_low", "ci_high"]] for part in by_seed.values()]
    pd.testing.assert_frame_equal(*spectral)  # constant across seeds
    cnn = [part.loc["test_cnn", "value"] for part in by_seed.values()]
    assert not cnn[0].equals(cnn[1])  # another training draw
    assert record.train_seeds == [0, 1]
    fits = [r["detectors"]["test_cnn"]["fit_key"] for r in record.seed_runs]
    assert fits[0] != fits[1] and {r["split_seed"] for r in record.seed_runs} == {0}
    assert len({r["test_hash"] for r in record.seed_runs}) == 1


def test_seed_matches_a_single_seed_run(seeds_run, tiny_dataset, tmp_path):
    """Seed 1 of a multi-seed run gives the numbers of a run with --train-seed 1 (its fits, from the cache)."""
    out, _, _, cache = seeds_run
    single = run(make_cfg(tiny_dataset, seeds=None, train_seed=1), tmp_path / "one", cache)
    assert single.train_seed == 1
    multi = read_run(out)[0].query("seed == 1").set_index(KEYS).sort_index()["value"]
    alone = read_run(tmp_path / "one")[0].set_index(KEYS).sort_index()["value"]
    pd.testing.assert_series_equal(multi, alone)


def test_leaderboard_and_figures_show_the_spread_over_seeds(seeds_run):
    out = seeds_run[0]
    results, _, records = load_runs([out])
    frame = leaderboard_frame(results)
    cnn = frame.set_index("detector").loc["test_cnn"]
    per_seed = results.query("detector == 'test_cnn' and metric == 'roc_auc' and generator == 'all' "
                             "and perturbation == 'none'").set_index("seed")["value"]
    assert cnn["clean"] == pytest.approx(per_seed.mean())
    assert cnn["clean_sd"] == pytest.approx(per_seed.std())
    assert (cnn["clean_min"], cnn["clean_max"], cnn["n_seeds"]) == (per_seed.min(), per_seed.max(), 2)
    assert frame.set_index("detector").loc["spectral", "clean_sd"] == 0
    text = leaderboard_markdown(frame, results, records)
    assert "Clean seeds: sd (min–max)" in text and "With 2 training seeds (0, 1)" in text
    assert "seed: 0; training seeds: 0, 1;" in text  # the provenance line names the training seeds too
    assert f"{cnn['clean_sd']:.3f} ({cnn['clean_min']:.3f}–{cnn['clean_max']:.3f})" in text
    bands = lambda fig: sum(len(ax.collections) for ax in fig.axes)
    one_seed = plot_robustness_curves(results[results["seed"] == 0])
    assert bands(plot_robustness_curves(results)) == bands(one_seed) + 1  # test_cnn's band over seeds


def test_compare_gate_and_baseline_save_refuse_several_seeds(seeds_run, tmp_path):
    out = seeds_run[0]
    with pytest.raises(BenchError, match="holds 2 training seeds"):
        compare_dirs(out, out, {})
    with pytest.raises(BenchError, match="holds 2 training seeds"):
        save_baseline(out, "multi", reference_root=tmp_path)
    assert not (tmp_path / "multi").exists()


def test_command_line_flags_reach_the_config():
    args = build_parser().parse_args(["run", "--seeds", "0,1,2", "--vary-split", "--allow-overlap"])
    cfg = run_config_from_args(args)
    assert (cfg.seeds, cfg.vary_split, cfg.allow_overlap) == ([0, 1, 2], True, True)
    with pytest.raises(BenchError, match="seeds"):
        run_config_from_args(build_parser().parse_args(["run", "--seeds", "0,one"]))


def test_compare_detectors_pairs_per_seed_and_averages(seeds_run):
    out = seeds_run[0]
    results, scores, record = read_run(out)
    both = compare_detectors(results, scores, record, "test_cnn", "spectral")
    each = [compare_detectors(results, scores, record, "test_cnn", "spectral", seed=s) for s in (0, 1)]
    assert both.attrs["seeds"] == [0, 1]
    for column in ("value_a", "value_b", "diff"):
        np.testing.assert_allclose(both[column], (each[0][column] + each[1][column]) / 2)
    assert (both["se"] > 0).all()
    per_seed = np.vstack([each[0]["diff"], each[1]["diff"]])  # the spread of the difference over the seeds
    np.testing.assert_allclose(both["diff_min"], per_seed.min(axis=0))
    np.testing.assert_allclose(both["diff_max"], per_seed.max(axis=0))
    np.testing.assert_allclose(both["diff_sd"], per_seed.std(axis=0, ddof=1))
    assert "diff seeds: sd (min–max)" in format_comparison(both)
    assert "diff_sd" not in each[0].columns and "diff seeds" not in format_comparison(each[0])
    boot = compare_detectors(results, scores, record, "test_cnn", "spectral", metric="ap")
    np.testing.assert_allclose(boot["diff"], (compare_detectors(results, scores, record, "test_cnn", "spectral",
                                                                metric="ap", seed=0)["diff"]
                                              + compare_detectors(results, scores, record, "test_cnn", "spectral",
                                                                  metric="ap", seed=1)["diff"]) / 2)
    with pytest.raises(BenchError, match="no training seed 5"):
        compare_detectors(results, scores, record, "test_cnn", "spectral", seed=5)


def test_vary_split_redraws_the_split_per_seed(tiny_dataset, training_free_spectral, tmp_path, cache):
    fits = training_free_spectral["fit"]
    record = run(make_cfg(tiny_dataset, detectors=["spectral"], vary_split=True), tmp_path / "vary", cache)
    seed_runs = record.seed_runs
    assert [r["split_seed"] for r in seed_runs] == [0, 1]
    assert seed_runs[0]["test_hash"] != seed_runs[1]["test_hash"]
    assert training_free_spectral["fit"] - fits == 2  # another split, another fit
    _, scores, record = read_run(tmp_path / "vary")
    with pytest.raises(BenchError, match="split per training seed"):
        scores_by_seed(scores, record, None)
    assert list(scores_by_seed(scores, record, 1)) == [1]


def test_a_store_without_the_seed_column_loads_with_its_training_seed(seeds_run, tmp_path):
    """Results and scores written before the seed column: every row is the run's training seed."""
    out = seeds_run[0]
    old = tmp_path / "old"
    old.mkdir()
    results, scores, record = read_run(out)
    results[results["seed"] == 1].drop(columns="seed").to_parquet(old / RESULTS_PARQUET)
    scores[scores["seed"] == 1].drop(columns="seed").to_parquet(old / SCORES_PARQUET)
    config = {k: v for k, v in record["config"].items() if k not in ("seeds", "vary_split")}
    (old / RUN_JSON).write_text(json.dumps({**record, "config": {**config, "train_seed": 1}}))
    loaded, loaded_scores, _ = read_run(old)
    assert set(loaded["seed"]) == {1} and set(loaded_scores["seed"]) == {1}
    assert loaded["seed"].dtype == np.int64
    assert leaderboard_frame(loaded).attrs.get("seeds") is None  # a plain single-seed board
