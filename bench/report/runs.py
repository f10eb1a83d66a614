"""Read stored runs back for reporting: ``results.parquet``, ``scores.parquet`` and ``run.json``
(see :mod:`bench.run.schema`), several runs concatenated with later duplicates of a cell winning.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from bench.core.errors import BenchError
from bench.run.metrics import METRICS
from bench.run.record import RunRecord
from bench.run.schema import (LATER_RESULT_COLUMNS, RESULT_COLUMNS, RESULTS_PARQUET, RUN_JSON, SCORE_COLUMNS,
                              SCORES_PARQUET)


log = logging.getLogger(__name__)

# A cell of the grid: what identifies one number across runs (run_id and weights excluded).
CELL_KEYS = ["detector", "dataset", "generator", "perturbation", "severity", "metric"]
SCORE_KEYS = ["detector", "dataset", "image_id", "perturbation", "severity"]
SEED = "seed"  # the training seed of a row: one run with --seeds holds every cell once per seed
RANDOM_WEIGHTS = "random"


# ---------------------------------------------------------------- loading


def read_run(run_dir: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """One run or reference directory. A reference keeps no scores: an empty scores table stands in.

    run.json is written last (bench.run.store), so a directory without it is an unfinished run.
    """
    run_dir = Path(run_dir)
    for required in (RESULTS_PARQUET, RUN_JSON):
        if not (run_dir / required).is_file():
            raise BenchError(f"{run_dir}: no {required}; expected a finished run directory or a stored reference")
    results = read_table(run_dir / RESULTS_PARQUET,
                         [c for c in RESULT_COLUMNS if c != SEED and c not in LATER_RESULT_COLUMNS])
    for column, value in LATER_RESULT_COLUMNS.items():
        if column not in results.columns:  # a store written before the column existed
            results[column] = value
    check_result_values(results, run_dir / RESULTS_PARQUET)
    scores_path = run_dir / SCORES_PARQUET
    scores = read_table(scores_path, [c for c in SCORE_COLUMNS if c not in ("group", SEED)]) \
        if scores_path.is_file() else pd.DataFrame(columns=SCORE_COLUMNS)
    if "group" not in scores.columns:  # written before bootstrap groups were stored: every image alone
        scores["group"] = pd.Series(range(len(scores)), index=scores.index, dtype="float64")
    try:
        record = json.loads((run_dir / RUN_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: bad JSON or not UTF-8
        raise BenchError(f"{run_dir / RUN_JSON} cannot be read ({type(exc).__name__}: {exc}); "
                         "truncated or not a bench run record") from None
    RunRecord.from_dict(record, str(run_dir / RUN_JSON))  # its fields' types, whatever its version
    return with_seed(results, record), with_seed(scores, record), record


def check_result_values(results: pd.DataFrame, path: Path) -> None:
    """A one-line error when a results table holds what bench never writes (an edited or foreign store): numbers
    stored as text, a direction that is not a boolean, or a benchmark metric's value outside [0, 1] (every one
    is a rate, an area or a probability error), so that no report or gate reads a wrong number as a result."""
    if results.empty:  # no cell at all (every detector failed): the callers say so in their own words
        return
    for column in ("value", "ci_low", "ci_high", "severity", "n"):
        if not pd.api.types.is_numeric_dtype(results[column]) or pd.api.types.is_bool_dtype(results[column]):
            raise BenchError(f"{path}: column {column} does not hold numbers: an edited or foreign store")
    if not pd.api.types.is_bool_dtype(results["higher_is_better"]):
        raise BenchError(f"{path}: column higher_is_better is not boolean: an edited or foreign store")
    known = results[results["metric"].isin(list(METRICS))]
    outside = known[(known["value"] < 0) | (known["value"] > 1)]
    if len(outside):
        row = outside.iloc[0]
        raise BenchError(f"{path}: {row['metric']} value {row['value']} of {row['detector']} ({row['perturbation']}:"
                         f"{row['severity']}) is outside [0, 1] ({len(outside)} such cells): an edited or foreign store")


def train_seed_of(record: dict[str, Any]) -> int:
    """The training seed of a single-seed run: its config's ``train_seed``, else its ``seed``."""
    config = record.get("config") or {}
    seed = config.get("train_seed")
    return int(config.get("seed", 0) if seed is None else seed)


def with_seed(table: pd.DataFrame, record: dict[str, Any]) -> pd.DataFrame:
    """A store written before the ``seed`` column held one training seed: the run's (:func:`train_seed_of`)."""
    seeds = table[SEED] if SEED in table.columns else pd.Series(float("nan"), index=table.index)
    return table.assign(**{SEED: seeds.fillna(train_seed_of(record)).astype("int64")})


def seeds_of(table: pd.DataFrame) -> list[int]:
    """The distinct training seeds of a results or scores table, sorted; [] when no detector has several
    (one seed per run, even when merged runs used different ones: nothing to average or pair per seed)."""
    if SEED not in table.columns or table.empty or table.groupby("detector")[SEED].nunique().max() < 2:
        return []
    return sorted(int(s) for s in table[SEED].dropna().unique())


def read_table(path: Path, columns: list[str]) -> pd.DataFrame:
    """A parquet table of the result store, or a one-line error when it is truncated, foreign or lacks columns."""
    try:
        table = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises its own types for truncated or non-parquet files
        raise BenchError(f"{path} cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                         "truncated or not a parquet file written by bench") from None
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise BenchError(f"{path} is not a bench result table: missing column(s) {', '.join(missing)}")
    return table


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    """Concatenate, skipping empty tables (pandas would otherwise guess their dtypes)."""
    non_empty = [frame for frame in frames if not frame.empty]
    return pd.concat(non_empty, ignore_index=True) if non_empty else pd.DataFrame(columns=columns)


def _keep_last(frame: pd.DataFrame, keys: list[str], what: str) -> pd.DataFrame:
    """When runs overlap, the later run given wins; say so, since the earlier numbers disappear."""
    duplicated = frame.duplicated(keys, keep="last")
    if duplicated.any():
        log.warning("%d %s appear in more than one run; keeping those of the later run", int(duplicated.sum()), what)
    return frame[~duplicated].reset_index(drop=True)


def load_runs(run_dirs: Iterable[str | os.PathLike]) -> tuple[pd.DataFrame, pd.DataFrame, list[dict[str, Any]]]:
    """Merge several runs (e.g. one per detector) into one results table, one scores table and their records."""
    loaded = [read_run(run_dir) for run_dir in run_dirs]
    if not loaded:
        raise BenchError("no run directory given")
    results = _keep_last(_concat([r for r, _, _ in loaded], RESULT_COLUMNS), CELL_KEYS + [SEED], "result cells")
    scores = _keep_last(_concat([s for _, s, _ in loaded], SCORE_COLUMNS), SCORE_KEYS + [SEED], "scores")
    return results, scores, [record for _, _, record in loaded]


def drop_random(results_df: pd.DataFrame) -> pd.DataFrame:
    """Random-weight detectors are sanity checks (chance level), not contenders."""
    return results_df[results_df["weights"] != RANDOM_WEIGHTS]
