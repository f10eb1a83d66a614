"""The seed-band gate: band construction and checks, exact vs band vs ungated cells, references with a band."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench.core.errors import BenchError
from bench.report.band import ALPHA, BAND_COLUMNS, band_floor, build_band, check_band_runs, exact_detectors
from bench.report.compare import compare_dirs, compare_runs, format_modes, format_summary
from bench.report.reference import read_band, save_baseline
from bench.run.schema import BAND_CSV, BAND_JSON, BAND_PARQUET
from fixtures.report_store import results_frame, run_record, write_run

NETWORK = "cnndet.blur_jpeg_0.5"  # plays a trained network: its numbers move with the training seed
SEEDS = [0, 1, 2, 3, 4]
# Per-seed shifts of the network's every value: mean 0, sample sd 0.01.
SHIFTS = np.array([-0.0126491106, -0.0063245553, 0.0, 0.0063245553, 0.0126491106])


def seed_run(seed: int) -> pd.DataFrame:
    frame = results_frame(f"seed-{seed}")
    frame.loc[frame["detector"] == NETWORK, "value"] += SHIFTS[SEEDS.index(seed)]
    return frame


def seed_record(seed: int, **changes) -> dict:
    record = run_record(f"seed-{seed}")
    record["config"] = {"seed": 0, "train_seed": seed, "perturb": "jpeg,blur", **changes}
    record["dataset_hash"] = "3f2a9c1b0d4e5f60"
    return record


@pytest.fixture
def band() -> pd.DataFrame:
    return build_band([seed_run(s) for s in SEEDS])


def cell(frame: pd.DataFrame, detector: str = NETWORK, metric: str = "roc_auc", generator: str = "all",
         perturbation: str = "jpeg", severity: int = 2) -> pd.Series:
    return ((frame["detector"] == detector) & (frame["metric"] == metric) & (frame["generator"] == generator)
            & (frame["perturbation"] == perturbation) & (frame["severity"] == severity))


def test_band_statistics(band):
    row = band[cell(band)].iloc[0]
    reference = results_frame()
    value = reference[cell(reference)]["value"].iloc[0]
    assert row["n_seeds"] == 5
    assert row["mean"] == pytest.approx(value)
    assert row["sd"] == pytest.approx(0.01, rel=1e-6)
    assert (row["min"], row["max"]) == (pytest.approx(value - 0.0126491106), pytest.approx(value + 0.0126491106))


def test_floor_is_a_student_t_prediction_bound_minus_the_tolerance(band):
    row = band[cell(band)]
    floor = band_floor(row, pd.Series([0.02], index=row.index)).iloc[0]
    t = stats.t.ppf(1 - ALPHA, 4)
    assert floor == pytest.approx(row["mean"].iloc[0] - t * 0.01 * np.sqrt(1 + 1 / 5) - 0.02, rel=1e-6)
    lower_is_better = band[cell(band, metric="ece")]
    ceiling = band_floor(lower_is_better, pd.Series([0.0], index=lower_is_better.index)).iloc[0]
    assert ceiling > lower_is_better["max"].iloc[0]  # for ECE the limit lies above the band


def test_floor_is_never_above_the_worst_seed():
    constant_but_one = build_band([results_frame(), results_frame(), results_frame()])
    worst = results_frame()
    worst.loc[cell(worst), "value"] -= 0.3
    band = build_band([results_frame(), results_frame(), worst])
    row = band[cell(band)]
    assert band_floor(row, pd.Series([0.0], index=row.index)).iloc[0] <= row["min"].iloc[0]
    assert exact_detectors(constant_but_one) == set(results_frame()["detector"])


def test_exact_detectors_are_those_no_seed_moved(band):
    assert exact_detectors(band) == set(results_frame()["detector"]) - {NETWORK}


def test_one_constant_cell_does_not_make_a_network_exact():
    """Exact means every cell of the detector is constant over the seeds, not any: a network with one
    constant cell (e.g. an AUC of 1.0) must stay in the band mode, or it would be gated bit for bit."""
    runs = [seed_run(s) for s in SEEDS]
    for run in runs:
        run.loc[cell(run), "value"] = 1.0
    band = build_band(runs)
    assert band[cell(band)]["sd"].iloc[0] == 0.0
    assert NETWORK not in exact_detectors(band)
    assert exact_detectors(band) == set(results_frame()["detector"]) - {NETWORK}


def test_floor_is_capped_at_the_worst_seed_once_the_prediction_bound_rises_above_it():
    """With 17 seeds (16 at 0.9, one at 0.8) the t bound, mean - t(0.999, 16) sd sqrt(1 + 1/17) = 0.802,
    lies above the worst seed; the floor is the worst seed minus the tolerance."""
    values = [0.9] * 16 + [0.8]
    runs = []
    for value in values:
        run = results_frame()
        run.loc[cell(run), "value"] = value
        runs.append(run)
    band = build_band(runs)
    row = band[cell(band)]
    mean, sd, k = np.mean(values), np.std(values, ddof=1), len(values)
    bound = mean - stats.t.ppf(1 - ALPHA, k - 1) * sd * np.sqrt(1 + 1 / k)
    assert bound > 0.8  # the case the cap exists for
    assert band_floor(row, pd.Series([0.01], index=row.index)).iloc[0] == pytest.approx(0.8 - 0.01)
    lower_is_better = band[cell(band, metric="ece")].copy()
    lower_is_better[["mean", "sd", "min", "max", "n_seeds"]] = [1 - mean, sd, 1 - 0.9, 1 - 0.8, k]
    ceiling = band_floor(lower_is_better, pd.Series([0.01], index=lower_is_better.index)).iloc[0]
    assert ceiling == pytest.approx(0.2 + 0.01)  # mirrored: the worst (highest) seed plus the tolerance


def _band_error(records) -> str:
    with pytest.raises(BenchError) as error:
        check_band_runs(records)
    return str(error.value)


def test_band_runs_must_differ_only_in_the_training_seed():
    assert check_band_runs([seed_record(s) for s in SEEDS]) == SEEDS
    assert _band_error([seed_record(0), seed_record(1)]) == (
        "a seed band needs at least 3 runs (the reference run and --band runs), got 2; 8 or more give a tighter gate")
    assert _band_error([seed_record(0), seed_record(1), seed_record(2, perturb="noise", bootstrap=10)]) == (
        "run seed-2 differs from seed-0 in bootstrap, perturb: band runs may differ only in --train-seed")
    assert _band_error([seed_record(0), seed_record(1, profile="paper")]) .startswith("a seed band needs")
    assert _band_error([seed_record(0), seed_record(1), seed_record(2, profile="paper")]) == (
        "run seed-2 differs from seed-0 in profile: band runs may differ only in --train-seed")  # a key only one has
    assert _band_error([seed_record(0), seed_record(1), seed_record(1), seed_record(0)]) == (
        "training seed(s) 0, 1 appear in more than one band run: each run of a band needs its own --train-seed")
    other_data = seed_record(2)
    other_data["dataset_hash"] = "0" * 16
    assert _band_error([seed_record(0), seed_record(1), other_data]) == (
        "run seed-2 was computed on other data (0000000000000000 vs 3f2a9c1b0d4e5f60)")
    assert _band_error([seed_record(0), other_data, seed_record(1)]) == (
        "run seed-2 was computed on other data (0000000000000000 vs 3f2a9c1b0d4e5f60)")  # the second run is checked


def test_band_runs_must_share_one_grid():
    partial = seed_run(2)
    partial = partial[~cell(partial, perturbation="blur", severity=1)]
    with pytest.raises(BenchError) as error:
        build_band([seed_run(0), seed_run(1), partial])
    assert str(error.value) == (
        "band runs do not share one grid: cell {'detector': 'cnndet.blur_jpeg_0.5', 'dataset': 'toy', 'generator': "
        "'all', 'perturbation': 'blur', 'severity': 1, 'metric': 'roc_auc'} is missing from some of them")


def test_a_cell_that_is_nan_in_some_runs_counts_only_its_numbers():
    runs = [seed_run(s) for s in SEEDS]
    runs[0].loc[cell(runs[0]), "value"] = np.nan
    runs[1].loc[cell(runs[1]), "value"] = np.nan
    band = build_band(runs)
    row = band[cell(band)].iloc[0]
    values = [seed_run(s)[cell(seed_run(s))]["value"].iloc[0] for s in SEEDS[2:]]
    assert row["n_seeds"] == 3 and row["mean"] == pytest.approx(np.mean(values))
    assert row["sd"] == pytest.approx(np.std(values, ddof=1))
    one = build_band([seed_run(0)] * 3)  # a single number per cell: sd 0, not NaN
    assert (one["sd"] == 0).all() and list(one.columns) == BAND_COLUMNS
    assert band.index.tolist() == list(range(len(band)))


def _gate(run: pd.DataFrame, band: pd.DataFrame, **kwargs):
    return compare_runs(run, seed_run(0), {}, band=band, **kwargs)


def test_another_seed_inside_the_band_passes(band):
    another_seed = results_frame("new")
    another_seed.loc[another_seed["detector"] == NETWORK, "value"] += 0.015  # beyond every band seed, plausible
    result = _gate(another_seed, band)
    assert result.exit_code == 0
    modes = result.cells.groupby("detector")["mode"].unique().map(lambda m: sorted(m))
    assert modes[NETWORK] == ["band", "ungated"] and modes["univfd.vit_l14"] == ["exact"]


def test_network_drop_below_the_band_fails_and_inside_passes(band):
    run = results_frame("new")
    run.loc[cell(run), "value"] -= 0.12
    result = _gate(run, band)
    assert result.exit_code == 1
    assert result.cells.iloc[0][["status", "mode", "detector", "metric"]].tolist() == \
           ["regressed", "band", NETWORK, "roc_auc"]
    run = results_frame("new")
    run.loc[cell(run), "value"] -= 0.05  # within t * sd * sqrt(1.2) + 0.02 = 0.0986 of the mean
    assert _gate(run, band).exit_code == 0


def test_ungated_metrics_of_a_network_are_listed_not_judged(band):
    run = results_frame("new")
    run.loc[cell(run, metric="acc_at_val_threshold"), "value"] -= 0.3
    result = _gate(run, band)
    assert result.exit_code == 0
    assert result.cells[cell(result.cells, metric="acc_at_val_threshold")]["status"].iloc[0] == "ungated"
    assert _gate(run, band, band_metrics=["roc_auc", "acc_at_val_threshold"]).exit_code == 1


def test_exact_cells_fail_on_any_change(band):
    run = results_frame("new")
    run.loc[cell(run, detector="univfd.vit_l14"), "value"] -= 1e-6
    assert _gate(run, band).exit_code == 1
    run = results_frame("new")
    run.loc[cell(run, detector="univfd.vit_l14"), "value"] += 0.01
    result = _gate(run, band)  # a gain in a deterministic number is a behaviour change too
    assert result.exit_code == 1 and result.count("changed") == 1 and result.count("regressed") == 0
    assert "1 exact cells changed for the better" in format_summary(result)
    run = results_frame("new")
    run.loc[run["detector"] == "univfd.vit_l14", "value"] -= 1e-14  # another BLAS build's last bits
    assert _gate(run, band).exit_code == 0


def test_explicit_tolerances_do_not_loosen_exact_cells(band):
    run = results_frame("new")
    run.loc[cell(run, detector="univfd.vit_l14"), "value"] -= 0.01
    assert compare_runs(run, seed_run(0), {"roc_auc": 0.05}, band=band).exit_code == 1


def test_reference_with_band_round_trip(tmp_path):
    runs = [write_run(tmp_path / f"s{s}", seed_run(s), record=seed_record(s)) for s in SEEDS]
    target = save_baseline(runs[0], "ci", reference_root=tmp_path / "ref", band_runs=runs[1:])
    assert {BAND_PARQUET, BAND_CSV, BAND_JSON} <= {p.name for p in target.iterdir()}
    assert json.loads((target / BAND_JSON).read_text())["train_seeds"] == SEEDS
    band, seeds = read_band(target)
    assert seeds == SEEDS and len(band) == len(results_frame())

    worse = seed_run(0)
    worse.loc[cell(worse), "value"] -= 0.2
    result = compare_dirs(write_run(tmp_path / "worse", worse, record=seed_record(9)), target, {})
    assert result.exit_code == 1 and result.band_seeds == SEEDS
    assert set(result.cells["mode"]) == {"exact", "band", "ungated"}  # the stored band decides the modes
    assert "seed band of the reference: 5 training seeds (0, 1, 2, 3, 4)" in format_modes(result)

    save_baseline(runs[0], "ci", reference_root=tmp_path / "ref")  # replaced without a band: no stale band
    assert read_band(target) == (None, [])
    assert not (target / BAND_CSV).exists() and not (target / BAND_JSON).exists()


def test_modes_say_when_the_machines_differ(tmp_path):
    reference = seed_record(0)
    reference["machine"] = {"cpu": "AMD EPYC", "isa": "AVX512", "torch_threads": 2}
    run = seed_record(0)
    run["machine"] = {"cpu": "Intel Xeon", "isa": "AVX2", "torch_threads": 2}
    result = compare_runs(results_frame(), results_frame(), {}, run_record=run, ref_record=reference)
    text = format_modes(result)
    assert "different machines" in text and "isa: reference 'AVX512', run 'AVX2'" in text
    assert "torch_threads" not in text
    same = compare_runs(results_frame(), results_frame(), {}, run_record=reference, ref_record=reference)
    assert "same machine" in format_modes(same)


def test_load_order_of_blas_libraries_is_no_machine_difference():
    libraries = [{"library": "openblas", "version": "0.3.30", "architecture": "SkylakeX", "threads": 2},
                 {"library": "openblas", "version": "0.3.31", "architecture": "SkylakeX", "threads": 2}]
    reference, run = seed_record(0), seed_record(0)
    reference["machine"], run["machine"] = {"blas": libraries}, {"blas": libraries[::-1]}
    result = compare_runs(results_frame(), results_frame(), {}, run_record=run, ref_record=reference)
    assert result.machine_differences == []
    run["machine"] = {"blas": [libraries[0], {**libraries[1], "architecture": "Haswell"}]}
    result = compare_runs(results_frame(), results_frame(), {}, run_record=run, ref_record=reference)
    assert result.machine_differences == [
        "machine blas: reference ['openblas 0.3.30 SkylakeX x2', 'openblas 0.3.31 SkylakeX x2'], "
        "run ['openblas 0.3.30 SkylakeX x2', 'openblas 0.3.31 Haswell x2']"]


def test_a_cell_with_two_numeric_seeds_uses_one_degree_of_freedom():
    """NaN in some runs leaves k numbers: the prediction bound uses t with k - 1 degrees of freedom."""
    runs = [seed_run(s) for s in SEEDS]
    for run in runs[2:]:
        run.loc[cell(run), "value"] = np.nan
    band = build_band(runs)
    row = band[cell(band)]
    values = [seed_run(s)[cell(seed_run(s))]["value"].iloc[0] for s in SEEDS[:2]]
    floor = band_floor(row, pd.Series([0.0], index=row.index))
    expected = np.mean(values) - stats.t.ppf(1 - ALPHA, 1) * np.std(values, ddof=1) * np.sqrt(1.5)
    assert floor.iloc[0] == pytest.approx(min(expected, min(values)))
    assert floor.index.equals(row.index)  # aligned with the cells it bounds


def test_a_detector_without_band_is_judged_by_the_tolerance():
    """A detector the band's runs did not have (added since the reference) is neither exact nor banded."""
    band = build_band([seed_run(s) for s in SEEDS])
    band = band[band["detector"] != "dummy.random"]
    result = _gate(results_frame("new"), band)
    modes = result.cells.groupby("detector")["mode"].unique().map(sorted)
    assert modes["dummy.random"] == ["tolerance"] and modes[NETWORK] == ["band", "ungated"]
    assert modes["univfd.vit_l14"] == ["exact"]


def test_a_cell_undefined_under_every_seed_keeps_a_detector_exact():
    """A cell NaN in every band run (e.g. an AUC with one class) says nothing about training randomness."""
    runs = [results_frame() for _ in range(3)]
    for run in runs:
        run.loc[cell(run, detector="univfd.vit_l14"), "value"] = np.nan
    band = build_band(runs)
    assert band[cell(band, detector="univfd.vit_l14")]["n_seeds"].iloc[0] == 0
    assert "univfd.vit_l14" in exact_detectors(band)


def test_a_cell_with_one_numeric_seed_has_sd_zero():
    runs = [seed_run(s) for s in SEEDS[:3]]
    for run in runs[1:]:
        run.loc[cell(run), "value"] = np.nan
    row = build_band(runs)[lambda b: cell(b)].iloc[0]
    assert row["n_seeds"] == 1 and row["sd"] == 0.0
