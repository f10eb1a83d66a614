"""Keeping some of a dataset's generators: ``--generators`` (the dataset itself) and the held-out
protocols ``--train-generators`` / ``--test-generators`` share these two rules.

A kept generator brings its generated images and the real images it is evaluated against: the
shared reals, and, where a dataset publishes reals per generator (``Row.subset``: GenImage,
ForenSynths' test set), only the kept generators' own reals.
"""

from __future__ import annotations

from typing import Sequence, TypeVar

from bench.core.errors import BenchError
from bench.core.registry import unknown_name_message
from bench.data.manifest import Row

R = TypeVar("R", bound=Row)


def generators_of(rows: Sequence[Row]) -> list[str]:
    return sorted({row.generator for row in rows if row.label == 1})


def check_generators(wanted: Sequence[str], known: Sequence[str], role: str, dataset: str) -> None:
    """One-line error for the first name the dataset does not have, with the close matches."""
    for name in wanted:
        if name not in known:
            raise BenchError(f"{role} (dataset {dataset!r}): {unknown_name_message('generator', name, list(known))}")


def keep_generators(rows: list[R], wanted: Sequence[str]) -> list[R]:
    """The rows of the ``wanted`` generators and their reals (shared reals, or the kept generators' own)."""
    keep = set(wanted)
    return [row for row in rows if (row.generator in keep if row.label else row.subset in (None, *keep))]
