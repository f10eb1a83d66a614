"""`bench compare` refuses, with exit 2, every comparison that cannot say whether a detector regressed."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bench.cli.main import main
from bench.core.errors import BenchError
from bench.report.compare import compare_dirs, compare_runs, format_summary
from bench.report.reference import save_baseline
from bench.run.schema import RESULT_COLUMNS, RESULTS_PARQUET, RUN_JSON, SCORES_PARQUET
from fixtures.report_store import results_frame, run_record, write_run


def _cli(*argv: str) -> int:
    return main(list(argv))


@pytest.fixture
def pair(tmp_path):
    return str(write_run(tmp_path / "run")), str(write_run(tmp_path / "ref"))


@pytest.mark.parametrize("option,value,typo,suggestion", [
    ("--metrics", "rocauc", "rocauc", "roc_auc"),
    ("--tol", "rocauc=0.05", "rocauc", "roc_auc"),
    ("--band-metrics", "roc_auc,app", "app", "ap"),
])
def test_compare_unknown_metric_name_exits_2_with_did_you_mean(pair, capsys, option, value, typo, suggestion):
    run, ref = pair
    assert _cli("compare", run, "--baseline", ref, option, value) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"unknown metric {typo!r}" in err and f"did you mean {suggestion!r}" in err and option in err


def test_compare_negative_default_tol_is_refused(pair, capsys):
    run, ref = pair
    assert _cli("compare", run, "--baseline", ref, "--default-tol", "-0.1") == 2
    assert "non-negative" in capsys.readouterr().err


def test_compare_known_metric_absent_from_the_selection_is_not_ok(pair, capsys):
    """A --metrics filter that leaves no reference cell compares nothing: invalid, not OK."""
    run, ref = pair
    assert _cli("compare", run, "--baseline", ref, "--metrics", "brier") == 2
    assert "holds no cells for --metrics brier" in capsys.readouterr().err


def _empty_run(tmp_path, name):
    record = run_record(name)
    record["detectors"] = {"npr": {"status": "failed", "reason": "boom"}}
    return write_run(tmp_path / name, pd.DataFrame(columns=RESULT_COLUMNS).astype({"value": float}),
                     pd.DataFrame(), record)


def test_saving_an_empty_reference_is_an_error(tmp_path, capsys):
    empty = _empty_run(tmp_path, "failed-run")
    with pytest.raises(BenchError, match="no result cells.*npr"):
        save_baseline(empty, "ci", reference_root=tmp_path / "reference")
    assert not (tmp_path / "reference" / "ci").exists()
    assert _cli("baseline", "save", str(empty), "ci", "--root", str(tmp_path / "reference")) == 2


def test_comparing_against_an_empty_reference_exits_2(tmp_path, capsys):
    run = write_run(tmp_path / "run")
    empty = _empty_run(tmp_path, "empty-ref")  # e.g. written by hand or by an older bench
    assert _cli("compare", str(run), "--baseline", str(empty)) == 2
    err = capsys.readouterr().err
    assert "reference holds no cells" in err and "OK" not in err


def test_comparing_against_an_all_nan_reference_exits_2():
    reference = results_frame("ref")
    reference["value"] = np.nan
    with pytest.raises(BenchError, match="no cells"):
        compare_runs(results_frame("run"), reference, {})


def test_different_perturbation_tables_exit_2():
    """Same (perturbation, severity), another physical parameter (another --preset): not comparable."""
    run = results_frame("run")
    jpeg3 = (run["perturbation"] == "jpeg") & (run["severity"] == 3)
    run.loc[jpeg3, "param_label"] = "q=25"
    result = compare_runs(run, results_frame("ref"), {})
    assert result.exit_code == 2
    assert result.table_mismatches == ["jpeg:3 is q=50 in the reference, q=25 in the run"]
    assert "perturbation table differs" in format_summary(result)


def test_limit_run_against_full_reference_exits_2(tmp_path):
    """The hash of the evaluated images (test_hash, train_hash) differs, although the dataset's does not."""
    ref_record, run_record_ = run_record("ref"), run_record("run")
    ref_record.update(train_hash="a" * 16, test_hash="b" * 16)
    run_record_.update(train_hash="c" * 16, test_hash="d" * 16)
    result = compare_dirs(write_run(tmp_path / "run", record=run_record_), write_run(tmp_path / "ref",
                                                                                    record=ref_record), {})
    assert result.exit_code == 2
    assert result.hash_mismatches == [
        f"training and validation images: reference {'a' * 16}, run {'c' * 16} (--limit or generator selection "
        "differs?)",
        f"evaluated test images: reference {'b' * 16}, run {'d' * 16} (--limit or generator selection differs?)"]
    del run_record_["train_hash"]
    run_record_["test_hash"] = "b" * 16  # the same test images, the training images unrecorded
    result = compare_dirs(write_run(tmp_path / "run2", record=run_record_), tmp_path / "ref", {})
    assert result.hash_mismatches == [f"training and validation images: reference {'a' * 16}, run absent "
                                      "(--limit or generator selection differs?)"]


def test_reference_without_evaluated_hashes_is_still_comparable(tmp_path):
    record = run_record("run")
    record.update(train_hash="c" * 16, test_hash="d" * 16)
    assert compare_dirs(write_run(tmp_path / "run", record=record), write_run(tmp_path / "ref"), {}).exit_code == 0


@pytest.mark.parametrize("damage", ["truncate_results", "foreign_results", "truncate_json", "list_json",
                                    "binary_json"])
def test_compare_damaged_store_exits_2_with_one_line(pair, capsys, damage):
    run, ref = pair
    from pathlib import Path

    target = Path(run)
    if damage == "truncate_results":
        data = (target / RESULTS_PARQUET).read_bytes()
        (target / RESULTS_PARQUET).write_bytes(data[: len(data) // 2])
    elif damage == "foreign_results":
        pd.DataFrame({"a": [1, 2]}).to_parquet(target / RESULTS_PARQUET)
    elif damage == "truncate_json":
        text = (target / RUN_JSON).read_text()
        (target / RUN_JSON).write_text(text[: len(text) // 2])
    elif damage == "list_json":
        (target / RUN_JSON).write_text(json.dumps([1, 2]))
    else:
        (target / RUN_JSON).write_bytes(b"\xff\xfe\x00garbage")
    assert _cli("compare", run, "--baseline", ref) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1


def test_report_truncated_scores_parquet_exits_2(tmp_path, capsys):
    run = write_run(tmp_path / "run")
    data = (run / SCORES_PARQUET).read_bytes()
    (run / SCORES_PARQUET).write_bytes(data[:100])
    assert _cli("report", str(run)) == 2
    err = capsys.readouterr().err.strip()
    assert "scores.parquet" in err and len(err.splitlines()) == 1


def test_report_out_that_is_a_file_exits_2(tmp_path, capsys):
    run = write_run(tmp_path / "run")
    (tmp_path / "file").write_text("x")
    assert _cli("report", str(run), "--out", str(tmp_path / "file")) == 2
    assert "not a directory" in capsys.readouterr().err


def test_report_of_a_missing_run_does_not_create_it(tmp_path, capsys):
    assert _cli("report", str(tmp_path / "typo")) == 2
    assert not (tmp_path / "typo").exists()


def test_baseline_save_root_that_is_a_file_exits_2(tmp_path, capsys):
    run = write_run(tmp_path / "run")
    (tmp_path / "root").write_text("x")
    assert _cli("baseline", "save", str(run), "ci", "--root", str(tmp_path / "root")) == 2
    assert "not a directory" in capsys.readouterr().err


@pytest.mark.parametrize("edit, message", [
    (lambda r: r.assign(value=r["value"].where(r["metric"] != "roc_auc", 7.3)),
     "roc_auc value 7.3 of "),
    (lambda r: r.assign(value=r["value"].astype(str)), "column value does not hold numbers"),
    (lambda r: r.assign(ci_low=r["ci_low"].astype(str)), "column ci_low does not hold numbers"),
    (lambda r: r.assign(higher_is_better=r["higher_is_better"].astype(str)), "higher_is_better is not boolean"),
])
def test_an_edited_results_table_is_refused_on_read(tmp_path, edit, message, capsys):
    """A hand-edited store (ROC-AUC 7.3, numbers as text) must not be reported or gated as a result."""
    from bench.cli.main import main
    from bench.report.runs import read_run

    run = write_run(tmp_path / "run", results=edit(results_frame()))
    with pytest.raises(BenchError) as error:
        read_run(run)
    assert message in str(error.value) and "an edited or foreign store" in str(error.value)
    assert main(["compare", str(run), "--baseline", str(write_run(tmp_path / "ref"))]) == 2
    assert "an edited or foreign store" in capsys.readouterr().err
