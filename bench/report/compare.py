"""Regression check against a stored reference run.

Cells are matched on (detector, dataset, generator, perturbation, severity,
metric). The delta is signed so that negative means worse, whatever the
metric's direction (``higher_is_better`` of the reference). Each cell is judged
in one of four modes:

``exact``
    the reference's seed band shows the detector's numbers do not depend on
    training randomness (bench.report.band): any change at all fails, a drop
    as ``regressed`` and a gain as ``changed`` (a perturbation that silently stopped
    working looks like a gain), beyond 1e-9, far below what one image changes in
    any metric (probabilities from another BLAS build differ in their last bits).
``band``
    a trained network: the run may fall anywhere the reference's training
    seeds make plausible, minus the tolerance (bench.report.band.band_floor).
    Only ``band_metrics`` (ranking metrics by default) are gated this way.
``ungated``
    the other metrics of a band detector (thresholded and calibration
    metrics swing with training randomness on small test sets): listed, not judged.
``tolerance``
    a reference without a band: the run may drop by at most the tolerance.

Exit codes, for CI:

    0  every reference cell is present and none regressed
    1  some cell regressed, or an exact cell changed
    2  the comparison is invalid: reference cells missing from the run (or NaN
       there), a dataset hash that differs from the reference's run.json, other
       images trained on or evaluated, other perturbation tables, unknown metric
       names, or an empty reference (bench.report.compare_checks)

2 wins over 1: numbers computed on other data or on fewer cells do not say
whether the detectors regressed.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
import pandas as pd
from tabulate import tabulate

from bench.core.errors import BenchError
from bench.report import compare_checks
from bench.report.band import band_floor, exact_detectors
from bench.report.runs import CELL_KEYS, read_run
from bench.report.reference import read_band
from bench.run import provenance

DEFAULT_TOLERANCE = 0.02
DEFAULT_BAND_METRICS = ("roc_auc", "ap")
EXIT_OK, EXIT_REGRESSED, EXIT_INVALID = 0, 1, 2
# A drop of exactly the tolerance passes; float noise must not turn it into a failure.
_EPS = 1e-9
# "Worst first": what invalidates the check, then regressions, then the rest.
STATUS_ORDER = {"missing": 0, "regressed": 1, "changed": 2, "ok": 3, "ungated": 4, "new": 5}
MODES = ("exact", "band", "ungated", "tolerance")
# The drop whose detectability ``format_modes`` reports for band cells: how much the gate can see.
POWER_DROP = 0.1


@dataclass
class CompareResult:
    """Per-cell comparison (``cells``), dataset hash mismatches, machines and band; ``exit_code`` is the CI verdict.

    ``cells`` columns: the cell keys, higher_is_better, mode, ref_value, run_value,
    delta (negative = worse), tolerance, limit (the worst value that still passes;
    NaN when not gated) and status: ok, regressed, changed (an exact cell got better),
    missing (in the reference, not in the run), ungated, or new (in the run only; never
    fails). Sorted worst first. ``machine_differences``: how the run's machine and package
    versions differ from the reference's; ``band_seeds``: the training seeds of the reference's band.
    """

    cells: pd.DataFrame
    hash_mismatches: list[str] = field(default_factory=list)
    table_mismatches: list[str] = field(default_factory=list)
    machine_differences: list[str] = field(default_factory=list)
    band_seeds: list[int] = field(default_factory=list)

    def count(self, status: str) -> int:
        return int((self.cells["status"] == status).sum())

    @property
    def exit_code(self) -> int:
        if self.count("missing") or self.hash_mismatches or self.table_mismatches:
            return EXIT_INVALID
        return EXIT_REGRESSED if self.count("regressed") or self.count("changed") else EXIT_OK


def _parse_tolerance(item: str) -> tuple[str, float]:
    metric, separator, number = (part.strip() for part in item.partition("="))
    try:
        value = float(number)
    except ValueError:
        value = math.nan
    if not (separator and metric and math.isfinite(value) and value >= 0):
        raise BenchError(f"bad tolerance {item!r}: expected METRIC=NON_NEGATIVE_NUMBER, e.g. roc_auc=0.02")
    return metric, value


def parse_tolerances(spec: str | None) -> dict[str, float]:
    """Parse ``"roc_auc=0.02,acc=0.03"`` into ``{"roc_auc": 0.02, "acc": 0.03}``."""
    items = (item.strip() for item in (spec or "").split(","))
    return dict(_parse_tolerance(item) for item in items if item)


def _cells(results_df: pd.DataFrame, metrics: Iterable[str] | None, what: str) -> pd.DataFrame:
    cells = results_df if metrics is None else results_df[results_df["metric"].isin(list(metrics))]
    duplicated = cells.duplicated(CELL_KEYS)
    if duplicated.any():
        raise BenchError(f"the {what} holds {int(duplicated.sum())} duplicate cells: compare one run at a time")
    extra = ["param_label"] if "param_label" in cells else []
    return cells[CELL_KEYS + ["higher_is_better", "value"] + extra]


def _modes(merged: pd.DataFrame, band: pd.DataFrame | None, band_metrics: Iterable[str]) -> np.ndarray:
    if band is None:
        return np.full(len(merged), "tolerance", dtype=object)
    exact = merged["detector"].isin(exact_detectors(band))
    banded = merged["detector"].isin(set(band["detector"])) & ~exact
    gated = merged["metric"].isin(list(band_metrics))
    return np.select([exact, banded & gated, banded], ["exact", "band", "ungated"], default="tolerance")


def _limits(merged: pd.DataFrame, band: pd.DataFrame | None) -> pd.Series:
    """The worst value that passes, per cell, in the metric's own units (NaN where nothing is gated)."""
    sign = np.where(merged["higher_is_better"], 1.0, -1.0)
    limit = pd.Series(merged["ref_value"] - sign * merged["tolerance"], index=merged.index)
    limit[merged["mode"] == "exact"] = merged["ref_value"]
    limit[merged["mode"] == "ungated"] = np.nan
    in_band = merged["mode"] == "band"
    if in_band.any():
        stats = merged.loc[in_band, CELL_KEYS].merge(band, on=CELL_KEYS, how="left")
        stats.index = merged.index[in_band]
        limit[in_band] = band_floor(stats, merged.loc[in_band, "tolerance"])
    return limit


def _status(merged: pd.DataFrame) -> np.ndarray:
    missing = (merged["_merge"] == "left_only") | (merged["ref_value"].notna() & merged["run_value"].isna())
    sign = np.where(merged["higher_is_better"], 1.0, -1.0)
    below_limit = sign * (merged["run_value"] - merged["limit"]) < -_EPS
    changed = (merged["mode"] == "exact") & (merged["delta"] > _EPS)
    return np.select(
        [missing, merged["_merge"] == "right_only", below_limit, merged["mode"] == "ungated", changed],
        ["missing", "new", "regressed", "ungated", "changed"],
        default="ok",
    )


def compare_runs(
    run_df: pd.DataFrame,
    ref_df: pd.DataFrame,
    tolerances: dict[str, float],
    default_tol: float = DEFAULT_TOLERANCE,
    *,
    metrics: Iterable[str] | None = None,
    run_record: dict[str, Any] | None = None,
    ref_record: dict[str, Any] | None = None,
    band: pd.DataFrame | None = None,
    band_metrics: Iterable[str] = DEFAULT_BAND_METRICS,
) -> CompareResult:
    """Compare a run's results table with a reference's, cell by cell.

    ``tolerances`` maps metric -> largest allowed drop beyond the reference (or below
    its seed band) (``default_tol`` for the others; exact cells allow none).
    ``metrics`` restricts the check. ``band`` is the reference's seed band
    (bench.report.band), which decides each detector's mode. With both run records
    given, the dataset hashes and machines are checked too.
    """
    metrics = None if metrics is None else list(metrics)
    band_metrics = list(band_metrics)
    reference_metrics = set(ref_df["metric"]) if "metric" in ref_df else set()
    compare_checks.check_metric_names(metrics, reference_metrics, "--metrics")
    compare_checks.check_metric_names(tolerances, reference_metrics, "--tol")
    compare_checks.check_metric_names(band_metrics, reference_metrics, "--band-metrics")
    compare_checks.check_tolerances(tolerances, default_tol)
    compare_checks.check_single_seed(ref_df, "reference")
    compare_checks.check_single_seed(run_df, "run")
    ref = _cells(ref_df, metrics, "reference")
    run = _cells(run_df, metrics, "run")
    compare_checks.check_reference_cells(ref, metrics)
    merged = ref.merge(run, on=CELL_KEYS, how="outer", suffixes=("_ref", "_run"), indicator=True)
    merged = merged.rename(columns={"value_ref": "ref_value", "value_run": "run_value"})
    direction = merged["higher_is_better_ref"].combine_first(merged["higher_is_better_run"])
    merged["higher_is_better"] = direction.astype(bool)
    difference = merged["run_value"] - merged["ref_value"]
    merged["delta"] = difference.where(merged["higher_is_better"], -difference)
    merged["mode"] = _modes(merged, band, band_metrics)
    merged["tolerance"] = merged["metric"].map(tolerances).fillna(default_tol).astype(float)
    merged.loc[merged["mode"] == "exact", "tolerance"] = 0.0
    merged["limit"] = _limits(merged, band)
    merged["status"] = _status(merged)
    merged["_order"] = merged["status"].map(STATUS_ORDER)
    cells = merged.sort_values(["_order", "delta", *CELL_KEYS], na_position="first", ignore_index=True)
    cells = cells[CELL_KEYS + ["higher_is_better", "mode", "ref_value", "run_value", "delta", "tolerance", "limit",
                               "status"]]
    result = CompareResult(cells, table_mismatches=compare_checks.table_mismatches(merged))
    if run_record is not None and ref_record is not None:
        result.hash_mismatches = compare_checks.hash_mismatches(run_record, ref_record)
        result.machine_differences = provenance.machine_differences(ref_record, run_record)
    return result


def compare_dirs(
    run_dir: str | os.PathLike,
    ref_dir: str | os.PathLike,
    tolerances: dict[str, float],
    default_tol: float = DEFAULT_TOLERANCE,
    metrics: Iterable[str] | None = None,
    band_metrics: Iterable[str] = DEFAULT_BAND_METRICS,
) -> CompareResult:
    """``compare_runs`` on two run or reference directories: dataset hashes, machines and seed band included."""
    run_df, _, run_record = read_run(run_dir)
    ref_df, _, ref_record = read_run(ref_dir)
    band, seeds = read_band(ref_dir)
    result = compare_runs(run_df, ref_df, tolerances, default_tol, metrics=metrics, run_record=run_record,
                          ref_record=ref_record, band=band, band_metrics=band_metrics)
    result.band_seeds = seeds
    return result


def format_table(result: CompareResult, limit: int | None = None) -> str:
    """The cells worst first (the first ``limit`` of them; all when None or 0)."""
    shown = result.cells if not limit else result.cells.head(limit)
    table = tabulate(
        [
            [row.status, row.detector, row.dataset, row.generator, row.perturbation, row.severity, row.metric,
             row.mode, _number(row.ref_value, ".4f"), _number(row.run_value, ".4f"), _number(row.delta, "+.4f"),
             _number(row.tolerance, ".4f"), _number(row.limit, ".4f")]
            for row in shown.itertuples()
        ],
        headers=["status", "detector", "dataset", "generator", "perturbation", "severity", "metric", "mode",
                 "reference", "run", "delta", "tolerance", "limit"],
        disable_numparse=True,
    )
    hidden = len(result.cells) - len(shown)
    return table + (f"\n... {hidden} more cells" if hidden else "")


def _number(value: float, spec: str) -> str:
    return "-" if pd.isna(value) else format(value + 0.0, spec)  # + 0.0: "-0.0000" would read as a drop


def format_modes(result: CompareResult) -> str:
    """How each detector's cells were judged (one line per mode in use), and on which machines."""
    checked = result.cells[result.cells["status"] != "new"]
    lines = []
    if result.machine_differences:
        lines.append("the run and the reference come from different machines or package versions: "
                     + "; ".join(result.machine_differences))
        lines.append("  exact cells must still match (their numbers do not depend on floating-point order at the "
                     "precision compared); trained networks are judged against their training-seed band")
    else:
        lines.append("same machine and package versions as the reference")
    if result.band_seeds:
        lines.append(f"seed band of the reference: {len(result.band_seeds)} training seeds "
                     f"({', '.join(map(str, result.band_seeds))})")
    for mode in MODES:
        cells = checked[checked["mode"] == mode]
        if cells.empty:
            continue
        detectors = ", ".join(sorted(cells["detector"].unique()))
        if mode == "exact":
            lines.append(f"exact: {len(cells)} cells ({detectors}): identical under every training seed, "
                         "so any change fails")
        elif mode == "band":
            margin = (cells["ref_value"] - cells["limit"]).abs()
            metrics = ", ".join(sorted(cells["metric"].unique()))
            lines.append(f"band: {len(cells)} cells ({detectors}; {metrics}): must stay within the training-seed "
                         f"band and the tolerance; a drop of {POWER_DROP} below the reference fails in "
                         f"{int((margin < POWER_DROP).sum())} of them (median margin {margin.median():.3f})")
        elif mode == "ungated":
            lines.append(f"ungated: {len(cells)} cells ({detectors}): metrics that vary with training "
                         "randomness beyond use as a gate (--band-metrics adds them)")
        else:
            lines.append(f"tolerance: {len(cells)} cells ({detectors}): may drop by at most the tolerance")
    return "\n".join(lines)


def format_summary(result: CompareResult) -> str:
    """One line for CI logs: the verdict, the counts, and the exit code."""
    in_reference = len(result.cells) - result.count("new")
    parts = [f"{in_reference} reference cells", f"{result.count('regressed')} regressed"]
    if result.count("changed"):
        parts.append(f"{result.count('changed')} exact cells changed for the better (if intended, save a new "
                     "reference)")
    if result.count("missing"):
        parts.append(f"{result.count('missing')} missing from the run")
    if result.count("new"):
        parts.append(f"{result.count('new')} new in the run (not checked)")
    parts += [f"dataset hash differs ({mismatch})" for mismatch in result.hash_mismatches]
    parts += [f"perturbation table differs ({mismatch})" for mismatch in result.table_mismatches]
    verdict = {EXIT_OK: "OK", EXIT_REGRESSED: "REGRESSION", EXIT_INVALID: "INVALID"}[result.exit_code]
    return f"{verdict}: " + "; ".join(parts) + f" (exit {result.exit_code})"
