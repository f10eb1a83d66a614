"""What `bench compare` prints, pinned in full: the table a CI log shows, the line per mode and the
one-line verdict. A reader acts on these words and numbers (which cell, how far, which rule), so a changed
count, sign, order or label is a changed result."""

from __future__ import annotations

import pandas as pd

from bench.report.band import build_band
from bench.report.compare import compare_runs, format_modes, format_summary, format_table, parse_tolerances
from fixtures.report_store import results_frame
from test_gate_band import NETWORK, SEEDS, cell, seed_record, seed_run


def _tolerance_result():
    """No band: one regressed cell, one improved lower-is-better cell, one missing cell, one new cell."""
    run = results_frame("new")
    jpeg3 = cell(run, detector=NETWORK, severity=3)
    run.loc[jpeg3, "value"] -= 0.05
    run.loc[cell(run, detector=NETWORK, severity=3, metric="ece"), "value"] -= 0.004
    run = run[~cell(run, detector="univfd.vit_l14", perturbation="blur", severity=1)]
    new = run.iloc[[0]].copy()
    new["metric"] = "ap"
    return compare_runs(pd.concat([run, new]), results_frame("reference"), parse_tolerances("roc_auc=0.02,ece=0.01"))


def _band_result():
    """With a band of five training seeds: the network regresses, an exact detector gains, an ungated metric
    of the network drops, on another machine."""
    run = results_frame("new")
    run.loc[cell(run), "value"] -= 0.12
    run.loc[cell(run, detector="univfd.vit_l14"), "value"] += 0.01
    run.loc[cell(run, metric="acc_at_val_threshold"), "value"] -= 0.3
    reference, other = seed_record(0), seed_record(0)
    reference["machine"], other["machine"] = {"cpu": "AMD EPYC", "isa": "AVX512"}, {"cpu": "Intel Xeon", "isa": "AVX2"}
    result = compare_runs(run, seed_run(0), {}, band=build_band([seed_run(s) for s in SEEDS]),
                          run_record=other, ref_record=reference)
    result.band_seeds = SEEDS
    return result


HEADER = ("status     detector              dataset    generator    perturbation    severity    metric"
          "{pad}reference    run     delta    tolerance    limit")


def test_tolerance_table_worst_first_with_signed_deltas_and_limits():
    lines = format_table(_tolerance_result(), 6).splitlines()
    assert lines[0] == HEADER.format(pad="                mode       ")
    assert lines[2:] == [
        "missing    univfd.vit_l14        toy        all          blur            1           roc_auc"
        "               tolerance  0.8420       -       -        0.0200       0.8220",
        "regressed  cnndet.blur_jpeg_0.5  toy        all          jpeg            3           roc_auc"
        "               tolerance  0.6000       0.5500  -0.0500  0.0200       0.5800",
        "ok         clip_svm.vit_b16      toy        all          blur            1           acc_at_val_threshold"
        "  tolerance  0.8300       0.8300  +0.0000  0.0200       0.8100",
        "ok         clip_svm.vit_b16      toy        all          blur            1           ece"
        "                   tolerance  0.0350       0.0350  +0.0000  0.0100       0.0450",
        "ok         clip_svm.vit_b16      toy        all          blur            1           roc_auc"
        "               tolerance  0.9300       0.9300  +0.0000  0.0200       0.9100",
        "ok         clip_svm.vit_b16      toy        all          blur            2           acc_at_val_threshold"
        "  tolerance  0.8100       0.8100  +0.0000  0.0200       0.7900",
        "... 331 more cells",
    ]
    everything = format_table(_tolerance_result()).splitlines()
    assert len(everything) == 2 + 337 and everything[-1].startswith("new ")  # every cell when no limit, no tail
    assert everything[-1].endswith("0.9500  -        0.0200       -")
    improved = format_table(_tolerance_result(), 0).splitlines()
    assert ("ok         cnndet.blur_jpeg_0.5  toy        all          jpeg            3           ece"
            "                   tolerance  0.2000       0.1960  +0.0040  0.0100       0.2100") in improved


def test_tolerance_modes_and_summary():
    result = _tolerance_result()
    assert format_modes(result) == (
        "same machine and package versions as the reference\n"
        "tolerance: 336 cells (clip_svm.vit_b16, cnndet.blur_jpeg_0.5, dummy.random, univfd.vit_l14): "
        "may drop by at most the tolerance")
    assert format_summary(result) == ("INVALID: 336 reference cells; 1 regressed; 1 missing from the run; "
                                      "1 new in the run (not checked) (exit 2)")


def test_band_table_modes_and_summary():
    result = _band_result()
    lines = format_table(result, 2).splitlines()
    assert lines[0] == HEADER.format(pad="    mode    ")
    assert lines[2:] == [
        "regressed  cnndet.blur_jpeg_0.5  toy        all          jpeg            2           roc_auc"
        "   band    0.6874       0.5800  -0.1074  0.0200       0.6014",
        "changed    univfd.vit_l14        toy        all          jpeg            2           roc_auc"
        "   exact   0.8100       0.8200  +0.0100  0.0000       0.8100",
        "... 334 more cells",
    ]
    ungated = result.cells[result.cells["status"] == "ungated"]
    assert ungated["limit"].isna().all() and len(ungated) == 56
    assert format_modes(result).splitlines() == [
        "the run and the reference come from different machines or package versions: machine cpu: reference "
        "'AMD EPYC', run 'Intel Xeon'; machine isa: reference 'AVX512', run 'AVX2'",
        "  exact cells must still match (their numbers do not depend on floating-point order at the precision "
        "compared); trained networks are judged against their training-seed band",
        "seed band of the reference: 5 training seeds (0, 1, 2, 3, 4)",
        "exact: 252 cells (clip_svm.vit_b16, dummy.random, univfd.vit_l14): identical under every training seed, "
        "so any change fails",
        "band: 28 cells (cnndet.blur_jpeg_0.5; roc_auc): must stay within the training-seed band and the tolerance; "
        "a drop of 0.1 below the reference fails in 28 of them (median margin 0.086)",
        "ungated: 56 cells (cnndet.blur_jpeg_0.5): metrics that vary with training randomness beyond use as a gate "
        "(--band-metrics adds them)",
    ]
    assert format_summary(result) == ("REGRESSION: 336 reference cells; 1 regressed; 1 exact cells changed for the "
                                      "better (if intended, save a new reference) (exit 1)")


def test_band_line_lists_every_gated_metric():
    run = results_frame("new")
    result = compare_runs(run, seed_run(0), {}, band=build_band([seed_run(s) for s in SEEDS]),
                          band_metrics=["roc_auc", "ece"])
    band_line = [line for line in format_modes(result).splitlines() if line.startswith("band:")]
    assert band_line[0].startswith("band: 56 cells (cnndet.blur_jpeg_0.5; ece, roc_auc): ")


def test_a_passing_check_says_ok():
    result = compare_runs(results_frame("new"), results_frame("reference"), {})
    assert format_summary(result) == "OK: 336 reference cells; 0 regressed (exit 0)"
