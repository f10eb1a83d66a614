"""Regression check against a stored reference run, and ``baseline save`` to store one.

Cells are matched on (detector, dataset, generator, perturbation, severity,
metric). The delta is signed so that negative means worse, whatever the
metric's direction (``higher_is_better`` of the reference). Exit codes, for CI:

    0  every reference cell is present and none got worse by more than its tolerance
    1  some metric got worse by more than its tolerance
    2  the comparison is invalid: reference cells missing from the run (or NaN
       there), or a dataset hash that differs from the reference's run.json

2 wins over 1: numbers computed on other data or on fewer cells do not say
whether the detectors regressed.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
from tabulate import tabulate

from bench.core import atomic
from bench.core.errors import BenchError
from bench.report.runs import CELL_KEYS, read_run
from bench.run.schema import RESULTS_CSV, RESULTS_PARQUET, RUN_JSON

DEFAULT_TOLERANCE = 0.02
DEFAULT_REFERENCE_ROOT = "results/reference"
EXIT_OK, EXIT_REGRESSED, EXIT_INVALID = 0, 1, 2
# A drop of exactly the tolerance passes; float noise must not turn it into a failure.
_EPS = 1e-9
# "Worst first": what invalidates the check, then regressions, then the rest.
STATUS_ORDER = {"missing": 0, "regressed": 1, "ok": 2, "new": 3}


@dataclass
class CompareResult:
    """Per-cell comparison (``cells``) and dataset hash mismatches; ``exit_code`` is the CI verdict.

    ``cells`` columns: the cell keys, higher_is_better, ref_value, run_value,
    delta (negative = worse), tolerance and status: ok, regressed, missing
    (in the reference, not in the run) or new (in the run only; never fails).
    Sorted worst first.
    """

    cells: pd.DataFrame
    hash_mismatches: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return int((self.cells["status"] == status).sum())

    @property
    def exit_code(self) -> int:
        if self.count("missing") or self.hash_mismatches:
            return EXIT_INVALID
        return EXIT_REGRESSED if self.count("regressed") else EXIT_OK


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
    return cells[CELL_KEYS + ["higher_is_better", "value"]]


def _status(merged: pd.DataFrame) -> np.ndarray:
    missing = (merged["_merge"] == "left_only") | (merged["ref_value"].notna() & merged["run_value"].isna())
    return np.select(
        [missing, merged["_merge"] == "right_only", merged["delta"] < -(merged["tolerance"] + _EPS)],
        ["missing", "new", "regressed"],
        default="ok",
    )


def _hash_mismatches(run_record: dict[str, Any], ref_record: dict[str, Any]) -> list[str]:
    """Datasets of the reference's run.json (test and training data) whose hash differs in the run's."""
    ref_datasets = ref_record.get("datasets") or {}
    run_datasets = run_record.get("datasets") or {}
    mismatches = []
    for dataset in sorted(ref_datasets):
        ref_hash = (ref_datasets[dataset] or {}).get("hash")
        run_hash = (run_datasets.get(dataset) or {}).get("hash")
        if ref_hash is not None and run_hash != ref_hash:
            mismatches.append(f"{dataset}: reference {ref_hash}, run {run_hash or 'absent'}")
    return mismatches


def compare_runs(
    run_df: pd.DataFrame,
    ref_df: pd.DataFrame,
    tolerances: dict[str, float],
    default_tol: float = DEFAULT_TOLERANCE,
    *,
    metrics: Iterable[str] | None = None,
    run_record: dict[str, Any] | None = None,
    ref_record: dict[str, Any] | None = None,
) -> CompareResult:
    """Compare a run's results table with a reference's, cell by cell.

    ``tolerances`` maps metric -> largest allowed drop (``default_tol`` for the
    others). ``metrics`` restricts the check. With both run records given, the
    dataset hashes are checked too.
    """
    metrics = None if metrics is None else list(metrics)
    ref = _cells(ref_df, metrics, "reference")
    run = _cells(run_df, metrics, "run")
    merged = ref.merge(run, on=CELL_KEYS, how="outer", suffixes=("_ref", "_run"), indicator=True)
    merged = merged.rename(columns={"value_ref": "ref_value", "value_run": "run_value"})
    direction = merged["higher_is_better_ref"].combine_first(merged["higher_is_better_run"])
    merged["higher_is_better"] = direction.astype(bool)
    difference = merged["run_value"] - merged["ref_value"]
    merged["delta"] = difference.where(merged["higher_is_better"], -difference)
    merged["tolerance"] = merged["metric"].map(tolerances).fillna(default_tol).astype(float)
    merged["status"] = _status(merged)
    merged["_order"] = merged["status"].map(STATUS_ORDER)
    cells = merged.sort_values(["_order", "delta", *CELL_KEYS], na_position="first", ignore_index=True)
    cells = cells[CELL_KEYS + ["higher_is_better", "ref_value", "run_value", "delta", "tolerance", "status"]]
    hashes = _hash_mismatches(run_record, ref_record) if run_record is not None and ref_record is not None else []
    return CompareResult(cells, hashes)


def compare_dirs(
    run_dir: str | os.PathLike,
    ref_dir: str | os.PathLike,
    tolerances: dict[str, float],
    default_tol: float = DEFAULT_TOLERANCE,
    metrics: Iterable[str] | None = None,
) -> CompareResult:
    """``compare_runs`` on two run or reference directories, dataset hashes included."""
    run_df, _, run_record = read_run(run_dir)
    ref_df, _, ref_record = read_run(ref_dir)
    return compare_runs(
        run_df, ref_df, tolerances, default_tol, metrics=metrics, run_record=run_record, ref_record=ref_record
    )


def format_table(result: CompareResult, limit: int | None = None) -> str:
    """The cells worst first (the first ``limit`` of them; all when None or 0)."""
    shown = result.cells if not limit else result.cells.head(limit)
    table = tabulate(
        [
            [row.status, row.detector, row.dataset, row.generator, row.perturbation, row.severity, row.metric,
             _number(row.ref_value, ".4f"), _number(row.run_value, ".4f"), _number(row.delta, "+.4f"),
             _number(row.tolerance, ".4f")]
            for row in shown.itertuples()
        ],
        headers=["status", "detector", "dataset", "generator", "perturbation", "severity", "metric",
                 "reference", "run", "delta", "tolerance"],
        disable_numparse=True,
    )
    hidden = len(result.cells) - len(shown)
    return table + (f"\n... {hidden} more cells" if hidden else "")


def _number(value: float, spec: str) -> str:
    return "-" if pd.isna(value) else format(value + 0.0, spec)  # + 0.0: "-0.0000" would read as a drop


def format_summary(result: CompareResult) -> str:
    """One line for CI logs: the verdict, the counts, and the exit code."""
    in_reference = len(result.cells) - result.count("new")
    parts = [f"{in_reference} reference cells", f"{result.count('regressed')} regressed beyond tolerance"]
    if result.count("missing"):
        parts.append(f"{result.count('missing')} missing from the run")
    if result.count("new"):
        parts.append(f"{result.count('new')} new in the run (not checked)")
    parts += [f"dataset hash differs ({mismatch})" for mismatch in result.hash_mismatches]
    verdict = {EXIT_OK: "OK", EXIT_REGRESSED: "REGRESSION", EXIT_INVALID: "INVALID"}[result.exit_code]
    return f"{verdict}: " + "; ".join(parts) + f" (exit {result.exit_code})"


def _check_name(name: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise BenchError(f"bad baseline name {name!r}: use letters, digits, '.', '_' or '-' (no path separators)")


def _copy(source: Path, target: Path) -> None:
    with atomic.atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def save_baseline(
    run_dir: str | os.PathLike, name: str, reference_root: str | os.PathLike = DEFAULT_REFERENCE_ROOT
) -> Path:
    """Store a run's results as the reference NAME: results.parquet, results.csv and run.json, not the scores.

    The CSV is kept (written from the parquet if the run lacks it) so that a
    change of reference reads as a plain diff in code review. Replaces an
    existing reference of the same name.
    """
    _check_name(name)
    source = Path(run_dir)
    for required in (RESULTS_PARQUET, RUN_JSON):
        if not (source / required).is_file():
            raise BenchError(f"{source}: no {required}; is this a finished run directory?")
    target = Path(reference_root) / name
    for file_name in (RESULTS_PARQUET, RUN_JSON):
        _copy(source / file_name, target / file_name)
    if (source / RESULTS_CSV).is_file():
        _copy(source / RESULTS_CSV, target / RESULTS_CSV)
    else:
        atomic.write_text(target / RESULTS_CSV, pd.read_parquet(source / RESULTS_PARQUET).to_csv(index=False))
    return target
