"""Every CSV the project writes, through one function: atomic, and safe to open in a spreadsheet.

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return (or their full-width forms)
is a formula to Excel, LibreOffice and Google Sheets: a generator named ``=cmd|' /C calc'!A0`` would
run when results.csv is opened. Such a text cell is written with a leading ``'`` (OWASP's advice), which
spreadsheets show as text; numbers are untouched. The Parquet files keep the names as they are.
"""

from __future__ import annotations

import os

import pandas as pd

from bench.core import atomic

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")


def neutralise(value):
    """``value`` with a leading ``'`` when it is text a spreadsheet would read as a formula."""
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_PREFIXES) else value


def write_csv(path: str | os.PathLike, frame: pd.DataFrame) -> None:
    """``frame`` as CSV (no index), text cells neutralised, written atomically."""
    safe = frame.copy()
    for column in safe.columns:
        if safe[column].dtype.kind not in "biufcmM":  # text (object, string, category): not numbers or dates
            safe[column] = safe[column].map(neutralise)
    safe.columns = [neutralise(str(c)) for c in safe.columns]
    atomic.write_text(path, safe.to_csv(index=False))
