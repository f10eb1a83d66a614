"""Images stored inside Parquet files (Hugging Face ``datasets`` exports), addressed like files.

A manifest row's ``path`` is normally a file on disk. An image that lives in a Parquet cell gets a
*member path* instead, ``<file.parquet>::<row>:<column>``, and :func:`bench.data.images.read_image_file`
reads its bytes through :func:`read_member`. Every consumer (probing and content hashing, decoding,
audits) therefore treats it exactly like a file, and nothing is copied out of the Parquet files.

Cells are read one row group at a time and only the image column is read, so a dataset is streamed:
a small LRU of row groups serves the sequential access of probing and scoring without holding the
whole file in memory (the row groups kept are bounded by :data:`_BUDGET_BYTES`). The cell is either the ``datasets`` Image struct ``{"bytes": ..., "path": ...}``
or plain binary.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections import OrderedDict

from bench.core.errors import ImageSkip

SEPARATOR = "::"
_BUDGET_BYTES = 512 << 20  # row groups kept in memory (the most recent one always is)


def member_path(parquet_file: str, row: int, column: str) -> str:
    return f"{parquet_file}{SEPARATOR}{row}:{column}"


def split_member(path: str) -> tuple[str, int, str] | None:
    """(file, row, column) of a member path, None for an ordinary file path."""
    file, sep, rest = str(path).rpartition(SEPARATOR)
    if not sep or not file.lower().endswith(".parquet"):
        return None
    row, _, column = rest.partition(":")
    if not row.isdigit() or not column:
        return None
    return file, int(row), column


def member_file(path: str) -> str:
    """The file on disk that holds ``path``: the Parquet file of a member path, else the path itself."""
    parts = split_member(path)
    return parts[0] if parts else str(path)


def _size(cells: list) -> int:
    return sum(len((c.get("bytes") if isinstance(c, dict) else c) or b"") for c in cells)


class _RowGroupCache:
    """An LRU of (file, row group, column) -> the column's cells (raw bytes, not decoded), bounded by
    ``budget`` bytes, plus each file's row-group offsets."""

    def __init__(self, budget: int):
        self.budget = budget
        self._groups: OrderedDict[tuple, tuple[list, int]] = OrderedDict()
        self._bytes = 0
        self._offsets: dict[tuple, list[int]] = {}
        self._lock = threading.Lock()
        # One row group is read at a time: threads probing neighbouring rows wait for the group another
        # thread is reading instead of reading it again.
        self._reading = threading.Lock()

    def cell(self, file: str, row: int, column: str):
        import pyarrow.parquet as pq

        stamp = os.stat(file)
        ident = (file, stamp.st_size, stamp.st_mtime_ns)
        with self._lock:
            offsets = self._offsets.get(ident)
        parquet = None
        if offsets is None:
            parquet = pq.ParquetFile(file)
            offsets = [0]
            for i in range(parquet.metadata.num_row_groups):
                offsets.append(offsets[-1] + parquet.metadata.row_group(i).num_rows)
            with self._lock:
                self._offsets[ident] = offsets
        if not 0 <= row < offsets[-1]:
            raise ImageSkip(f"row {row} is beyond the {offsets[-1]} rows of {file}")
        group = bisect.bisect_right(offsets, row) - 1
        key = (ident, group, column)
        with self._lock:
            entry = self._groups.get(key)
            if entry is not None:
                self._groups.move_to_end(key)
        if entry is None:
            with self._reading:
                with self._lock:
                    entry = self._groups.get(key)
                if entry is None:
                    entry = self._read(parquet or pq.ParquetFile(file), file, group, column)
                    with self._lock:
                        self._groups[key] = entry
                        self._bytes += entry[1]
                        while self._bytes > self.budget and len(self._groups) > 1:
                            self._bytes -= self._groups.popitem(last=False)[1][1]
        return entry[0][row - offsets[group]]

    @staticmethod
    def _read(parquet, file: str, group: int, column: str) -> tuple[list, int]:
        if column not in parquet.schema_arrow.names:
            raise ImageSkip(f"column {column!r} is not in {file}")
        cells = parquet.read_row_group(group, columns=[column]).column(0).to_pylist()
        return cells, _size(cells)


_CACHE = _RowGroupCache(_BUDGET_BYTES)


def read_member(path: str, max_bytes: int) -> bytes:
    """The image bytes of a member path; an ImageSkip (one-line reason) when the cell holds none."""
    parts = split_member(path)
    if parts is None:
        raise ImageSkip(f"not a Parquet member path: {path}")
    file, row, column = parts
    try:
        cell = _CACHE.cell(file, row, column)
    except OSError as exc:
        raise ImageSkip(f"cannot read {file}: {exc.strerror or exc}") from None
    except ImageSkip:
        raise
    except Exception as exc:  # pyarrow raises its own error types for corrupt files
        raise ImageSkip(f"cannot read row {row} of {file}: {exc}") from None
    data = cell.get("bytes") if isinstance(cell, dict) else cell
    if not data:
        raise ImageSkip(f"no image bytes in column {column!r} (row {row})")
    if len(data) > max_bytes:
        raise ImageSkip(f"image larger than {max_bytes} bytes: not used")
    return bytes(data)
