"""Regression check: exit codes, tolerances, direction of metrics; baseline save; CLI wiring."""

from __future__ import annotations

import argparse
import json

import pandas as pd
import pytest

from bench.cli.report import add_report_commands
from bench.core.errors import BenchError
from bench.report.compare import (
    compare_dirs,
    compare_runs,
    format_summary,
    format_table,
    parse_tolerances,
)
from bench.report.reference import save_baseline
from bench.run.schema import RESULTS_CSV, RESULTS_PARQUET, RUN_JSON
from fixtures.report_store import results_frame, run_record, write_run

CELL = dict(detector="cnndet.blur_jpeg_0.5", generator="all", perturbation="jpeg", severity=3)


def _with(metric: str, change: float, **cell) -> pd.DataFrame:
    """The fixture run with one cell's value moved by ``change``."""
    run = results_frame("new-run")
    where = run["metric"] == metric
    for column, value in {**CELL, **cell}.items():
        where &= run[column] == value
    assert where.sum() == 1
    run.loc[where, "value"] += change
    return run


def _compare(run: pd.DataFrame, **kwargs):
    return compare_runs(run, results_frame("reference"), parse_tolerances("roc_auc=0.02,ece=0.01"), **kwargs)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench")
    add_report_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def _run_cli(*argv: str) -> int:
    args = _parser().parse_args(list(argv))
    return args.func(args)


def test_identical_runs_pass():
    result = _compare(results_frame("new-run"))
    assert result.exit_code == 0
    assert set(result.cells["status"]) == {"ok"}


def test_drop_beyond_tolerance_fails_with_1():
    result = _compare(_with("roc_auc", -0.05))
    assert result.exit_code == 1
    worst = result.cells.iloc[0]
    assert (worst["status"], worst["metric"], worst["delta"]) == ("regressed", "roc_auc", pytest.approx(-0.05))
    assert result.count("regressed") == 1


def test_drop_within_tolerance_passes():
    assert _compare(_with("roc_auc", -0.015)).exit_code == 0


def test_drop_of_exactly_the_tolerance_passes():
    assert _compare(_with("roc_auc", -0.02)).exit_code == 0


def test_improvement_passes():
    result = _compare(_with("roc_auc", +0.05))
    assert result.exit_code == 0
    assert result.cells["delta"].max() == pytest.approx(0.05)


def test_lower_is_better_metric_rising_fails():
    result = _compare(_with("ece", +0.05))
    assert result.exit_code == 1
    assert result.cells.iloc[0]["delta"] == pytest.approx(-0.05)
    assert _compare(_with("ece", -0.05)).exit_code == 0


def test_default_tolerance_applies_to_unnamed_metrics():
    run = _with("acc_at_val_threshold", -0.03)
    assert _compare(run).exit_code == 1  # default 0.02
    assert _compare(run, default_tol=0.05).exit_code == 0


def test_metrics_filter_ignores_other_metrics():
    result = _compare(_with("ece", +0.05), metrics=["roc_auc"])
    assert result.exit_code == 0 and set(result.cells["metric"]) == {"roc_auc"}


def test_missing_cell_fails_with_2_even_with_a_regression():
    run = _with("roc_auc", -0.05)
    run = run[~((run["metric"] == "ece") & (run["severity"] == 3) & (run["generator"] == "sdxl"))]
    result = _compare(run)
    assert result.exit_code == 2
    # 4 detectors x 2 perturbations missing, listed before the regression: worst first
    assert list(result.cells["status"].iloc[:9]) == ["missing"] * 8 + ["regressed"]


def test_nan_in_the_run_counts_as_missing():
    assert _compare(_with("roc_auc", float("nan"))).exit_code == 2


def test_new_cells_do_not_fail():
    reference = results_frame("reference")
    result = compare_runs(results_frame("new-run"), reference[reference["metric"] != "ece"], {})
    assert result.exit_code == 0 and result.count("new") > 0
    assert "new in the run (not checked)" in format_summary(result)


def test_dataset_hash_mismatch_fails_with_2(tmp_path):
    run = write_run(tmp_path / "run")
    reference = write_run(tmp_path / "ref", record=run_record("ref", dataset_hash="0" * 16))
    result = compare_dirs(run, reference, {})
    assert result.exit_code == 2
    assert result.hash_mismatches == [f"toy: reference {'0' * 16}, run 3f2a9c1b0d4e5f60"]
    assert format_summary(result).startswith("INVALID:")


@pytest.mark.parametrize("run_datasets", [{}, {"other": {"hash": "3f2a9c1b0d4e5f60"}}, {"toy": {}}, None])
def test_a_run_without_the_references_dataset_hash_is_invalid(tmp_path, run_datasets):
    """The reference names dataset toy with a hash; a run whose run.json lacks that dataset (or its hash)
    cannot show it used the same images, so the check fails instead of being skipped."""
    record = run_record("run")
    if run_datasets is None:
        del record["datasets"]
    else:
        record["datasets"] = run_datasets
    run = write_run(tmp_path / "run", record=record)
    result = compare_dirs(run, write_run(tmp_path / "ref"), {})
    assert result.hash_mismatches == ["toy: reference 3f2a9c1b0d4e5f60, run absent"]
    assert result.exit_code == 2


def test_a_reference_without_dataset_hashes_checks_none():
    record = run_record("ref")
    del record["datasets"]
    result = compare_runs(results_frame(), results_frame(), {}, run_record=run_record("run"), ref_record=record)
    assert result.hash_mismatches == [] and result.exit_code == 0


def test_duplicate_cells_are_refused():
    doubled = pd.concat([results_frame(), results_frame()], ignore_index=True)
    with pytest.raises(BenchError, match="duplicate cells"):
        _compare(doubled)


@pytest.mark.parametrize("spec", ["roc_auc", "=0.1", "roc_auc=-0.1", "roc_auc=x", "roc_auc=nan", "roc_auc==0.1"])
def test_bad_tolerance_spec(spec):
    with pytest.raises(BenchError, match="bad tolerance"):
        parse_tolerances(spec)


def test_tolerance_spec():
    assert parse_tolerances(" roc_auc=0.02, acc=0.03 ,") == {"roc_auc": 0.02, "acc": 0.03}
    assert parse_tolerances(None) == {}
    assert parse_tolerances("roc_auc=0") == {"roc_auc": 0.0}  # no drop allowed is a valid tolerance


def test_a_reference_cell_that_is_nan_and_absent_from_the_run_is_missing():
    reference = results_frame("reference")
    reference.loc[0, "value"] = float("nan")
    run = results_frame("new").drop(index=0)
    result = compare_runs(run, reference, {})
    assert result.count("missing") == 1 and result.exit_code == 2


def test_table_lists_worst_first_and_truncates():
    table = format_table(_compare(_with("roc_auc", -0.05)), limit=3)
    lines = table.splitlines()
    assert lines[2].startswith("regressed  cnndet.blur_jpeg_0.5") and "-0.0500" in lines[2]
    assert lines[-1] == f"... {len(results_frame()) - 3} more cells"


def test_save_baseline_copies_results_and_record_not_scores(tmp_path):
    run = write_run(tmp_path / "run")
    target = save_baseline(run, "ci", reference_root=tmp_path / "reference")
    assert target == tmp_path / "reference" / "ci"
    assert sorted(p.name for p in target.iterdir()) == sorted([RESULTS_CSV, RESULTS_PARQUET, RUN_JSON])
    assert compare_dirs(run, target, {}).exit_code == 0


def test_save_baseline_writes_the_csv_when_the_run_lacks_it(tmp_path):
    run = write_run(tmp_path / "run")
    (run / RESULTS_CSV).unlink()
    target = save_baseline(run, "ci", reference_root=tmp_path / "reference")
    assert len(pd.read_csv(target / RESULTS_CSV)) == len(results_frame())


@pytest.mark.parametrize("name", ["", "../up", "a/b", ".hidden"])
def test_save_baseline_refuses_bad_names(tmp_path, name):
    with pytest.raises(BenchError, match="bad baseline name"):
        save_baseline(write_run(tmp_path / "run"), name, reference_root=tmp_path / "reference")


def test_cli_baseline_save_then_compare(tmp_path, capsys):
    run = write_run(tmp_path / "run")
    root = tmp_path / "reference"
    assert _run_cli("baseline", "save", str(run), "ci", "--root", str(root)) == 0
    assert _run_cli("compare", str(run), "--baseline", str(root / "ci")) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("OK:")

    worse = write_run(tmp_path / "worse", _with("roc_auc", -0.05))
    assert _run_cli("compare", str(worse), "--baseline", str(root / "ci")) == 1
    assert _run_cli("compare", str(worse), "--baseline", str(root / "ci"), "--tol", "roc_auc=0.06") == 0
    assert _run_cli("compare", str(worse), "--baseline", str(root / "ci"), "--metrics", "ece,acc") == 0
    assert _run_cli("compare", str(worse), "--baseline", str(root / "ci"), "--default-tol", "0.06") == 0
    assert _run_cli("compare", str(worse), "--baseline", str(root / "ci"), "--tol", "roc_auc=0.02",
                    "--default-tol", "0.06") == 1


def test_cli_compare_unreadable_input_exits_2(tmp_path, capsys):
    """Through ``bench.cli.main.main``: CI reads 1 as "regressed", so an invalid comparison must exit 2."""
    from bench.cli.main import main

    run = str(write_run(tmp_path / "run"))
    assert main(["compare", run, "--baseline", str(tmp_path / "nowhere")]) == 2
    assert "no results.parquet" in capsys.readouterr().err
    assert main(["compare", run, "--baseline", run, "--tol", "roc_auc"]) == 2
    assert "bad tolerance" in capsys.readouterr().err
    assert main(["compare", run, "--baseline", run]) == 0


def test_cli_baseline_save_warns_about_a_dirty_tree(tmp_path, capsys):
    record = run_record()
    record["git"]["dirty"] = True
    run = write_run(tmp_path / "run", record=record)
    assert _run_cli("baseline", "save", str(run), "ci", "--root", str(tmp_path / "reference")) == 0
    assert "uncommitted changes" in capsys.readouterr().err
    assert json.loads((tmp_path / "reference" / "ci" / RUN_JSON).read_text())["git"]["dirty"] is True


def test_a_metric_only_the_reference_knows_can_be_named():
    reference = results_frame("reference")
    run = results_frame("new")
    for frame in (reference, run):
        frame.loc[frame["metric"] == "ece", "metric"] = "my_metric"
    result = compare_runs(run, reference, {"my_metric": 0.01}, metrics=["my_metric"], band_metrics=["my_metric"])
    assert result.exit_code == 0 and set(result.cells["metric"]) == {"my_metric"}


@pytest.mark.parametrize("option, kwargs", [("--metrics", {"metrics": ["nosuch"]}),
                                             ("--tol", {"tolerances": {"nosuch": 0.1}}),
                                             ("--band-metrics", {"band_metrics": ["nosuch"]})])
def test_an_unknown_metric_names_the_option(option, kwargs):
    kwargs = dict(kwargs)  # the parameter's dict is shared by every run of the test
    tolerances = kwargs.pop("tolerances", {})
    with pytest.raises(BenchError) as error:
        compare_runs(results_frame(), results_frame(), tolerances, **kwargs)
    assert str(error.value).startswith(f"{option}: unknown metric 'nosuch' (known: ")


def test_zero_tolerance_is_valid_and_a_negative_one_is_named():
    assert compare_runs(results_frame(), results_frame(), {}, default_tol=0.0).exit_code == 0
    assert compare_runs(results_frame(), results_frame(), {"roc_auc": 0}).exit_code == 0
    with pytest.raises(BenchError) as error:
        compare_runs(results_frame(), results_frame(), {}, default_tol=-0.1)
    assert str(error.value) == "tolerance for --default-tol must be a non-negative number, got -0.1"


@pytest.mark.parametrize("which", ["reference", "run"])
def test_duplicates_and_several_seeds_name_the_table(which):
    doubled = pd.concat([results_frame(), results_frame()], ignore_index=True)
    frames = {"reference": results_frame(), "run": results_frame()}
    frames[which] = doubled
    with pytest.raises(BenchError) as error:
        compare_runs(frames["run"], frames["reference"], {})
    assert str(error.value) == f"the {which} holds {len(results_frame())} duplicate cells: compare one run at a time"
    seeded = {"reference": results_frame(), "run": results_frame()}
    two = pd.concat([results_frame().assign(seed=0), results_frame().assign(seed=1)], ignore_index=True)
    seeded[which] = two
    with pytest.raises(BenchError) as error:
        compare_runs(seeded["run"], seeded["reference"], {})
    assert str(error.value) == (
        f"the {which} holds 2 training seeds (0, 1); bench compare and bench baseline save take a run of one "
        "training seed (bench run --train-seed S); seed bands come from one run per seed (bench baseline save "
        "RUN NAME --band RUN...)")
    one_seed = results_frame().assign(seed=3)
    assert compare_runs(one_seed, one_seed, {}).exit_code == 0


def test_an_empty_reference_says_why():
    empty = results_frame().assign(value=float("nan"))
    with pytest.raises(BenchError) as error:
        compare_runs(results_frame(), empty, {})
    assert str(error.value) == ("the reference holds no cells: nothing to compare against (a reference saved from a "
                                "run whose detectors all failed is not a reference)")
    with pytest.raises(BenchError) as error:
        compare_runs(results_frame(), empty, {}, metrics=["roc_auc", "ece"])
    assert str(error.value).startswith("the reference holds no cells for --metrics roc_auc,ece: ")


def test_records_are_checked_only_when_both_are_given():
    result = compare_runs(results_frame(), results_frame(), {}, run_record=run_record("run"))
    assert result.exit_code == 0 and result.hash_mismatches == []


def test_two_values_for_one_cell_are_duplicates():
    doubled = pd.concat([results_frame(), results_frame().assign(value=0.5)], ignore_index=True)
    with pytest.raises(BenchError, match="the run holds 336 duplicate cells"):
        compare_runs(doubled, results_frame(), {})


def test_stores_without_parameter_labels_compare_and_never_mismatch():
    bare = results_frame().drop(columns="param_label")
    assert compare_runs(bare, bare, {}).exit_code == 0
    result = compare_runs(bare, results_frame(), {})  # a run from before the labels existed
    assert result.table_mismatches == [] and result.exit_code == 0


def test_a_table_mismatch_is_reported_even_where_the_run_has_no_number():
    run = results_frame("new")
    jpeg3 = run["perturbation"].eq("jpeg") & run["severity"].eq(3)
    run.loc[jpeg3, "param_label"] = "q=25"
    run.loc[jpeg3, "value"] = float("nan")  # every number of the level undefined (e.g. one class left)
    result = compare_runs(run, results_frame("reference"), {})
    assert result.table_mismatches == ["jpeg:3 is q=50 in the reference, q=25 in the run"]
