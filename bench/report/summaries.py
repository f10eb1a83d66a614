"""Robustness summaries of one metric: one number per detector that a table can carry.

Computed from the per-cell values of one metric, one dataset, ``generator == "all"`` (see README,
"Reports", for the formulas):

- ``nauc``: normalised area under the metric-vs-severity curve, per perturbation (trapezoids over the
  severity levels present, clean at level 0, divided by the highest level) and overall (their mean);
- ``relative``: mean over every perturbed cell divided by the clean value;
- ``worst``: the worst perturbed cell (minimum, or maximum for lower-is-better metrics);
- ``mce``: corruption error relative to a reference detector, as ImageNet-C's mCE: per perturbation
  ``CE = sum_s E_s / sum_s E_s(reference)`` over its levels >= 1 with ``E = 1 - value`` (``value`` for
  lower-is-better metrics), then the mean over perturbations.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CLEAN = "none"


def normalised_area(severities, values) -> float:
    """Trapezoidal area under ``values`` over ``severities`` (clean = level 0 included), divided by the
    largest level: the mean of the curve over [0, s_max]. NaN with fewer than two points or a NaN value."""
    s = np.asarray(severities, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    order = np.argsort(s)
    s, v = s[order], v[order]
    if s.size < 2 or s[-1] <= 0 or np.isnan(v).any():
        return float("nan")
    return float(np.sum(np.diff(s) * (v[1:] + v[:-1]) / 2) / (s[-1] - s[0]))


def _error(values: pd.Series, higher_is_better: bool) -> pd.Series:
    return 1.0 - values if higher_is_better else values


def robustness_summary(cells: pd.DataFrame, higher_is_better: bool, reference: str | None = None) -> pd.DataFrame:
    """Per detector (index): ``nauc``, ``relative``, ``worst``, ``mce`` (only with ``reference``), and
    per perturbation ``nauc:P`` and ``ce:P``. ``cells``: detector, perturbation, severity, value."""
    clean = cells[cells["perturbation"] == CLEAN].groupby("detector")["value"].first()
    perturbed = cells[(cells["perturbation"] != CLEAN) & (cells["severity"] > 0)]
    out = pd.DataFrame(index=pd.Index(sorted(cells["detector"].unique()), name="detector"))
    if perturbed.empty:
        return out
    perturbations = sorted(perturbed["perturbation"].unique())
    for p in perturbations:
        rows = perturbed[perturbed["perturbation"] == p]
        out[f"nauc:{p}"] = [
            normalised_area([0, *g["severity"]], [clean.get(d, np.nan), *g["value"]])
            for d in out.index for g in [rows[rows["detector"] == d]]
        ]
    out["nauc"] = out[[f"nauc:{p}" for p in perturbations]].mean(axis=1, skipna=False)
    out["relative"] = perturbed.groupby("detector")["value"].mean() / clean
    worst = perturbed.groupby("detector")["value"]
    out["worst"] = worst.min() if higher_is_better else worst.max()
    if reference is not None:
        errors = perturbed.assign(error=_error(perturbed["value"], higher_is_better))
        table = errors.pivot_table(index=["perturbation", "severity"], columns="detector", values="error")
        if reference not in table.columns:
            raise KeyError(reference)
        for p in perturbations:
            part = table.loc[p]
            part = part[part[reference].notna()]
            denominator = part[reference].sum()
            out[f"ce:{p}"] = part.sum(axis=0, min_count=1).reindex(out.index) / denominator if denominator > 0 \
                else np.nan
        out["mce"] = out[[f"ce:{p}" for p in perturbations]].mean(axis=1, skipna=False)
    return out
