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
from bench.run.schema import (FIGURE_PREFIXES, FIGURE_SUFFIXES, FIGURES_DIR, RESULT_COLUMNS, RESULTS_CSV,
                              RESULTS_PARQUET, RUN_FILES, RUN_JSON, SCORE_COLUMNS, SCORES_PARQUET)

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


def clear_previous_run(out_dir: Path) -> list[Path]:
    """Remove the files a previous run left in ``out_dir`` (a reused ``--out``), and return them.

    An output folder holds one run's files: without this, a run written with ``--no-report``, or one with other
    datasets or detectors, would leave the previous run's report.html, leaderboards or figures beside its own
    results. Only the files bench writes into a run folder (bench.run.schema) are removed, run.json first (the
    folder is incomplete until the new one lands); any other file, in the folder or in figures/, stays."""
    removed = [out_dir / name for name in RUN_FILES if (out_dir / name).is_file()]
    figures = out_dir / FIGURES_DIR
    own = figures.is_dir() and not figures.is_symlink()  # never follow a link out of the run folder
    folders = [d for d in figures.iterdir() if d.is_dir() and not d.is_symlink()] if own else []
    removed += [f for d in folders for f in sorted(d.iterdir()) if f.is_file()
                and f.name.startswith(FIGURE_PREFIXES) and f.name.endswith(FIGURE_SUFFIXES)]
    for path in removed:
        path.unlink()
    for folder in folders + ([figures] if own else []):
        if not any(folder.iterdir()):
            folder.rmdir()
    return removed


def write_store(out_dir: Path, record: RunRecord, metric_rows: list[dict], score_rows: list[dict]) -> list[Path]:
    """Write the run's store into ``out_dir`` after removing what a previous run left there (returned)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    removed = clear_previous_run(out_dir)
    results = results_frame(record.run_id, metric_rows)
    write_parquet(out_dir / RESULTS_PARQUET, results)
    write_csv(out_dir / RESULTS_CSV, results)
    write_parquet(out_dir / SCORES_PARQUET, scores_frame(record.run_id, score_rows))
    atomic.write_text(out_dir / RUN_JSON, json.dumps(record.to_dict(), indent=2, sort_keys=False, default=str))
    return removed
