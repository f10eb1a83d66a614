"""Stored references (``bench baseline save``): a run's results, its record, and optionally a seed band.

A reference folder holds results.parquet, results.csv and run.json of one run
(not the per-image scores). Saved with band runs (the same configuration under
other ``--train-seed`` values), it also holds band.parquet and band.csv, the
per-cell spread over the training seeds (bench.report.band), and band.json, the
seeds and runs it came from. The CSV files are kept so that a change of
reference reads as a plain diff in code review.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Sequence

import pandas as pd

from bench.core import atomic
from bench.core.csv_files import write_csv
from bench.core.errors import BenchError
from bench.run.schema import BAND_CSV, BAND_JSON, BAND_PARQUET, RESULTS_CSV, RESULTS_PARQUET, RUN_JSON
from bench.run.store import write_parquet
from bench.report.band import BAND_COLUMNS, build_band, check_band_runs
from bench.report.compare_checks import check_single_seed
from bench.report.runs import read_run, read_table

DEFAULT_REFERENCE_ROOT = "results/reference"


def _check_name(name: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise BenchError(f"bad baseline name {name!r}: use letters, digits, '.', '_' or '-' (no path separators)")


def _copy(source: Path, target: Path) -> None:
    with atomic.atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def save_baseline(
    run_dir: str | os.PathLike,
    name: str,
    reference_root: str | os.PathLike = DEFAULT_REFERENCE_ROOT,
    band_runs: Sequence[str | os.PathLike] = (),
) -> Path:
    """Store RUN as the reference NAME (replacing one of that name), with a seed band when ``band_runs`` are given.

    The band is built from RUN and ``band_runs`` together; they must differ only in their
    training seed (bench.report.band.check_band_runs). Every input is checked before
    anything is written.
    """
    _check_name(name)
    source = Path(run_dir)
    run_df, _, record = read_run(source)
    check_single_seed(run_df, "run")
    if run_df.empty or run_df["value"].isna().all():
        failed = sorted(name for name, d in (record.get("detectors") or {}).items()
                        if isinstance(d, dict) and d.get("status") != "ok")
        because = f" (detectors not ok: {', '.join(failed)}; reasons in its run.json)" if failed else ""
        raise BenchError(f"{source}: the run holds no result cells{because}; an empty reference would gate nothing")
    band = band_json = None
    if band_runs:
        loaded = [read_run(path) for path in band_runs]
        for path, (df, _, _) in zip(band_runs, loaded):
            check_single_seed(df, f"band run {path}")
        records = [record] + [r for _, _, r in loaded]
        seeds = check_band_runs(records)
        band = build_band([run_df] + [df for df, _, _ in loaded])
        band_json = {"train_seeds": seeds, "runs": [r.get("run_id") for r in records]}
    target = Path(reference_root) / name
    for file_name in (RESULTS_PARQUET, RUN_JSON):
        _copy(source / file_name, target / file_name)
    write_csv(target / RESULTS_CSV, run_df)  # written, not copied: a run's own CSV may predate neutralising
    if band is None:
        for stale in (BAND_PARQUET, BAND_CSV, BAND_JSON):
            (target / stale).unlink(missing_ok=True)  # a replaced reference must not keep an old band
    else:
        write_parquet(target / BAND_PARQUET, band)
        write_csv(target / BAND_CSV, band)
        atomic.write_text(target / BAND_JSON, json.dumps(band_json, indent=2))
    return target


def read_band(ref_dir: str | os.PathLike) -> tuple[pd.DataFrame | None, list[int]]:
    """The seed band of a reference and its training seeds; (None, []) for a reference without one."""
    ref_dir = Path(ref_dir)
    if not (ref_dir / BAND_PARQUET).is_file():
        return None, []
    try:
        seeds = json.loads((ref_dir / BAND_JSON).read_text(encoding="utf-8"))["train_seeds"]
    except (OSError, ValueError, KeyError, TypeError):
        raise BenchError(f"{ref_dir}: {BAND_PARQUET} without a readable {BAND_JSON}; save the reference again") \
            from None
    try:
        seeds = [int(s) for s in seeds]
    except (TypeError, ValueError):
        raise BenchError(f"{ref_dir / BAND_JSON}: train_seeds must be a list of integers; save the reference again") \
            from None
    return read_table(ref_dir / BAND_PARQUET, BAND_COLUMNS), seeds
