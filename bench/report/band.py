"""Seed bands: how much a reference's numbers move when only training randomness changes.

A trained network's numbers are not identical across machines: another CPU sums
in another order, training amplifies the last-bit differences, and the result
is a different network, as if trained with another seed. So a reference that
gates trained networks keeps, for every cell, the spread of its value over
several training seeds (same data, split, perturbations and bootstrap; only the
``train_seed`` differs). A run on another machine is then one more draw from
that spread, and a cell regresses only when it falls below what the seeds make
plausible, minus the tolerance.

Detectors whose every cell is identical under every seed (training-free ones,
seeded scikit-learn fits on deterministic features) do not depend on training
randomness at all; their cells are compared exactly.

The floor of a band cell, in the metric's "better" direction::

    floor = min(mean - t(1 - ALPHA, k - 1) * sd * sqrt(1 + 1/k), worst seed) - tolerance

the lower end of a one-sided Student-t prediction interval for one new draw
given ``k`` seeds (never above the worst seed seen), minus the tolerance.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from bench.core.errors import BenchError
from bench.report.runs import CELL_KEYS, train_seed_of

# One-sided false-alarm rate of one cell for a run that differs from the reference only by training
# randomness (or machine). Small, because a CI suite gates many cells at once.
ALPHA = 1e-3
MIN_SEEDS = 3
BAND_COLUMNS = CELL_KEYS + ["higher_is_better", "n_seeds", "mean", "sd", "min", "max"]
# Config keys that may differ between the runs of one band (everything else must match).
BAND_FREE_KEYS = ("train_seed",)


def _comparable_config(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in (record.get("config") or {}).items() if k not in BAND_FREE_KEYS}


def check_band_runs(records: Sequence[dict[str, Any]]) -> list[int]:
    """The training seeds of the runs of one band; a one-line error unless they can form one.

    They must share every config value but the training seed, and their dataset hashes, and
    each must have a different training seed.
    """
    if len(records) < MIN_SEEDS:
        raise BenchError(f"a seed band needs at least {MIN_SEEDS} runs (the reference run and "
                         f"--band runs), got {len(records)}; 8 or more give a tighter gate")
    first = records[0]
    for record in records[1:]:
        a, b = _comparable_config(first), _comparable_config(record)
        differing = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        if differing:
            raise BenchError(f"run {record.get('run_id')} differs from {first.get('run_id')} in "
                             f"{', '.join(differing)}: band runs may differ only in --train-seed")
        if record.get("dataset_hash") != first.get("dataset_hash"):
            raise BenchError(f"run {record.get('run_id')} was computed on other data "
                             f"({record.get('dataset_hash')} vs {first.get('dataset_hash')})")
    seeds = [train_seed_of(r) for r in records]
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise BenchError(f"training seed(s) {', '.join(map(str, repeated))} appear in more than one band run: "
                         "each run of a band needs its own --train-seed")
    return seeds


def build_band(results: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Per cell: the number of seeds, mean, sample sd, min and max of its value over the runs.

    A cell that is NaN in one run (e.g. no bootstrap possible) counts only the runs where it is a
    number; a cell missing from a run is an error, since the runs must share one grid.
    """
    frames = []
    for i, frame in enumerate(results):
        cells = frame[CELL_KEYS + ["higher_is_better", "value"]].copy()
        cells["run"] = i
        frames.append(cells)
    values = pd.concat(frames, ignore_index=True)
    present = values.groupby(CELL_KEYS, dropna=False)["run"].nunique()
    if (present < len(results)).any():
        example = present[present < len(results)].index[0]
        cell = {key: value.item() if isinstance(value, np.generic) else value for key, value in zip(CELL_KEYS, example)}
        raise BenchError(f"band runs do not share one grid: cell {cell} is missing from some of them")
    grouped = values.groupby(CELL_KEYS, dropna=False, sort=True)
    band = grouped.agg(higher_is_better=("higher_is_better", "first"), n_seeds=("value", "count"),
                       mean=("value", "mean"), sd=("value", "std"), min=("value", "min"), max=("value", "max"))
    band = band.reset_index()
    band["sd"] = band["sd"].fillna(0.0)
    return band[BAND_COLUMNS]


def exact_detectors(band: pd.DataFrame) -> set[str]:
    """Detectors whose every cell took one value under every seed: their numbers ignore training randomness."""
    constant = (band["max"] == band["min"]) | band["n_seeds"].eq(0)
    per_detector = constant.groupby(band["detector"]).all()
    return set(per_detector[per_detector].index)


def band_floor(band: pd.DataFrame, tolerance: pd.Series) -> pd.Series:
    """The worst value a run may reach in each cell before it counts as regressed (see the module docstring).

    In the metric's own units: a lower bound for higher-is-better metrics, an upper bound otherwise.
    """
    sign = np.where(band["higher_is_better"].astype(bool), 1.0, -1.0)
    k = band["n_seeds"].astype(float)
    t = pd.Series(stats.t.ppf(1 - ALPHA, np.maximum(k - 1, 1)), index=band.index)
    spread = t * band["sd"] * np.sqrt(1 + 1 / k.clip(lower=1))
    good_mean = sign * band["mean"]
    good_worst = np.where(sign > 0, band["min"], -band["max"])
    good_floor = np.minimum(good_mean - spread, good_worst) - tolerance.to_numpy()
    return pd.Series(sign * good_floor, index=band.index)

