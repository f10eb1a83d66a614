"""bench reproduce: published numbers as data, one run per generator against its own reals, the
published-vs-measured table; offline, on a GenImage mirror with a test table and the cheap spectral detector."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from bench.cli.main import main
from bench.core.errors import BenchError
from bench.data.adapters import forensynths, genimage
from bench.report.reproduce import (REPRODUCE_DIR, Published, compare, list_lines, load_reproduction,
                                    reproduction_names, run_config)
from bench.run.config import RunConfig
from test_published_datasets import genimage_mirror

PUBLISHED = """title: toy table
paper: nobody, 2026
source: tests/test_reproduce.py
unit: percent
metrics: [ap]
generators:
  sdv14: {row: SD v1.4, ap: 0.0}
  adm: {row: ADM, ap: 100.0}
"""


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    root = tmp_path_factory.mktemp("repro")
    genimage_mirror(root / "GenImage", ("sdv14", "adm", "midjourney"), n=10)
    folder = root / "reproduce"
    folder.mkdir()
    (folder / "toy.yaml").write_text("detectors: [spectral]\ndataset: genimage\nperturb: none\nbootstrap: 50\n")
    (folder / "toy.published.yaml").write_text(PUBLISHED)
    (folder / "bare.yaml").write_text("detectors: [spectral]\ndataset: genimage\nperturb: none\n")
    code = main(["reproduce", "toy", "--dir", str(folder), "--dataset", f"genimage={root / 'GenImage'}",
                 "--out", str(root / "out"), "--cache-dir", str(root / "cache"), "--quiet", "--device", "cpu",
                 "--workers", "1"])
    return root, folder, code


def test_each_published_generator_is_measured_against_its_own_reals(reproduced, capsys):
    root, _, code = reproduced
    assert code == 0
    table = pd.read_csv(root / "out" / "reproduce.csv")
    assert list(table["generator"]) == ["sdv14", "adm"] and set(table["metric"]) == {"ap"}
    for gen in ("sdv14", "adm"):
        scores = pd.read_parquet(root / "out" / gen / "scores.parquet").query("perturbation == 'none'")
        assert all(i.startswith(genimage.ARCHIVES[gen] + "/") for i in scores["image_id"])  # its own reals only
        assert set(scores["generator"]) == {"real", gen}
        row = table[table["generator"] == gen].iloc[0]
        own = 100 * average_precision_score(scores["label"], scores["score"])
        assert row["measured"] == pytest.approx(own)
        assert row["difference"] == pytest.approx(row["measured"] - row["published"])
        assert row["ci_low"] <= row["measured"] <= row["ci_high"]
    assert not table.loc[table["generator"] == "sdv14", "within_ci"].item()  # 0% AP is never inside the CI


def test_comparison_is_printed_with_source_and_ci(reproduced, capsys):
    root, folder, _ = reproduced
    # the fixture's output is not captured here: run again (every fit and cell now comes from the cache)
    code = main(["reproduce", "toy", "--dir", str(folder), "--dataset", f"genimage={root / 'GenImage'}",
                 "--out", str(root / "out"), "--cache-dir", str(root / "cache"), "--quiet", "--device", "cpu",
                 "--workers", "1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "source: tests/test_reproduce.py" in out and "published in CI" in out
    assert "sdv14 (SD v1.4)" in out and "NO" in out
    assert "published numbers lie within the measured 95% CI" in out


def test_list_says_which_tables_are_not_transcribed(reproduced, capsys):
    _, folder, _ = reproduced
    assert main(["reproduce", "--list", "--dir", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "bare: spectral on genimage\n  published numbers: not yet transcribed" in out
    assert "toy: spectral on genimage\n  toy table: 2 generators x ap" in out


def test_within_ci_and_difference():
    measured = pd.DataFrame({"generator": ["a", "a"], "metric": ["ap", "acc"], "value": [0.9, 0.5],
                             "ci_low": [0.85, 0.4], "ci_high": [0.95, 0.6], "n": [10, 10]})
    pub = Published("t", "p", "s", "percent", {("a", "ap"): 80.0, ("a", "acc"): 55.0, ("b", "ap"): 50.0})
    table = compare(pub, measured).set_index(["generator", "metric"])
    assert table.loc[("a", "ap"), "difference"] == pytest.approx(10.0) and not table.loc[("a", "ap"), "within_ci"]
    assert table.loc[("a", "acc"), "within_ci"]
    assert math.isnan(table.loc[("b", "ap"), "measured"]) and table.loc[("b", "ap"), "within_ci"] is None


def test_bad_reproductions_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "two.yaml").write_text("detectors: [spectral, npr]\n")
    (tmp_path / "bad.yaml").write_text("detectors: [spectral]\n")
    (tmp_path / "bad.published.yaml").write_text(PUBLISHED.replace("[ap]", "[apx]"))
    assert main(["reproduce", "tow", "--dir", str(tmp_path)]) == 2
    assert "did you mean 'two'" in capsys.readouterr().err
    with pytest.raises(BenchError, match="exactly one detector"):
        load_reproduction("two", tmp_path)
    with pytest.raises(BenchError, match="unknown metric 'apx'; did you mean 'ap'"):
        load_reproduction("bad", tmp_path)


def test_shipped_reproductions_load_and_name_the_datasets_generators():
    names = reproduction_names()
    assert {"cnndet-forensynths", "npr-forensynths", "univfd-diffusion", "aeroblade"} <= set(names)
    assert len(list_lines()) >= len(names)
    for name in names:
        repro = load_reproduction(name)
        RunConfig.from_dict(repro.config)
        if repro.published and repro.config["dataset"] == "forensynths-test":
            assert set(repro.published.generators) <= set(forensynths.TEST_GENERATORS)
            assert all(0 <= v <= 100 for v in repro.published.values.values())
    assert (REPRODUCE_DIR / "cnndet-forensynths.published.yaml").is_file()


def test_run_config_takes_the_overrides_given_and_one_generator(tmp_path):
    (tmp_path / "r.yaml").write_text("detectors: [spectral]\ndataset: genimage\nperturb: none\n")
    cfg = run_config(load_reproduction("r", tmp_path), {"dataset": None, "limit": 5, "weights": {"c": "/w.pth"}}, "adm")
    assert (cfg.dataset, cfg.limit, cfg.weights, cfg.generators) == ("genimage", 5, {"c": "/w.pth"}, ["adm"])
