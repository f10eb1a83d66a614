"""Write and read a run's result store (file names and columns: bench/run/schema.py).

Every file is written atomically (temporary file + rename) and run.json last,
so a run directory whose run.json exists is complete.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd

from bench.core import atomic
from bench.core.csv_files import write_csv
from bench.run.record import RunRecord
from bench.run.schema import RESULT_COLUMNS, RESULTS_CSV, RESULTS_PARQUET, RUN_JSON, SCORE_COLUMNS, SCORES_PARQUET

RESULT_DTYPES = {"severity": "int64", "param": "float64", "value": "float64", "ci_low": "float64",
                 "ci_high": "float64", "n": "int64", "higher_is_better": "bool", "seed": "int64"}


def results_frame(run_id: str, rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame([{**row, "run_id": run_id} for row in rows], columns=RESULT_COLUMNS)
    return df.astype(RESULT_DTYPES)


def scores_frame(run_id: str, rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame([{**row, "run_id": run_id} for row in rows], columns=SCORE_COLUMNS)
    return df.astype({"label": "int64", "severity": "int64", "score": "float64", "seed": "int64"})


def write_parquet(path: Path, df: pd.DataFrame) -> None:
    """Write a table as parquet atomically (no index)."""
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    atomic.write_bytes(path, buf.getvalue())


def write_store(out_dir: Path, record: RunRecord, metric_rows: list[dict], score_rows: list[dict]) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stale = out_dir / RUN_JSON
    if stale.exists():
        stale.unlink()  # the directory is incomplete until the new run.json lands
    results = results_frame(record.run_id, metric_rows)
    write_parquet(out_dir / RESULTS_PARQUET, results)
    write_csv(out_dir / RESULTS_CSV, results)
    write_parquet(out_dir / SCORES_PARQUET, scores_frame(record.run_id, score_rows))
    atomic.write_text(out_dir / RUN_JSON, json.dumps(record.to_dict(), indent=2, sort_keys=False, default=str))
