"""Paired statistics for comparing detectors on the same images: DeLong's test for correlated ROC
curves, the paired bootstrap of any metric's difference, and Holm's step-down correction.

DeLong, DeLong & Clarke-Pearson (1988), "Comparing the areas under two or more correlated receiver
operating characteristic curves: a nonparametric approach", in the fast midrank form of Sun & Xu
(2014), "Fast implementation of DeLong's algorithm ...", IEEE Signal Processing Letters 21(11).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm, rankdata

from bench.run.metrics import _binary_batch

#: Differences of metrics (and standard errors) below this are float noise: the same sums in another order.
FLOAT_NOISE = 1e-12


@dataclass(frozen=True)
class Difference:
    """``a - b`` of one metric with its 95% interval and two-sided p-value (H0: no difference)."""

    value_a: float
    value_b: float
    diff: float
    ci_low: float
    ci_high: float
    p: float
    se: float = float("nan")  # DeLong only


def delong_covariance(y, scores) -> tuple[np.ndarray, np.ndarray]:
    """AUCs of the rows of ``scores`` (shape ``(k, n)``) and their ``(k, k)`` DeLong covariance.

    With ``m`` positives (label 1) and ``n`` negatives, the placement of a positive
    is the share of negatives it outscores (ties one half): ``V10_i = (R_i - R^+_i) / n``
    where ``R_i`` is its midrank among all scores and ``R^+_i`` among the positives;
    of a negative, the share of positives that outscore it: ``V01_j = 1 - (R_j - R^-_j) / m``.
    ``AUC = mean(V10) = mean(V01)`` and ``Cov = S10 / m + S01 / n`` with ``S10``, ``S01``
    the sample covariance matrices (ddof 1) of the placements.
    """
    y = np.asarray(y).ravel().astype(bool)
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    m, n = int(y.sum()), int((~y).sum())
    if m < 2 or n < 2:
        raise ValueError(f"DeLong needs at least two images of each class, got {m} generated and {n} real")
    pos, neg = scores[:, y], scores[:, ~y]
    ranks = rankdata(np.hstack([pos, neg]), axis=1)  # average ranks = midranks
    v10 = (ranks[:, :m] - rankdata(pos, axis=1)) / n
    v01 = 1.0 - (ranks[:, m:] - rankdata(neg, axis=1)) / m
    aucs = v10.mean(axis=1)
    cov = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return aucs, cov


def delong_test(y, score_a, score_b, ci: float = 0.95) -> Difference:
    """DeLong's test of ``AUC_a - AUC_b`` on the same images: ``z = diff / se``, two-sided normal p-value,
    ``diff ± z_{(1+ci)/2} se``. ``se = 0`` (identical or perfectly separated scores) gives p = 1 when the
    difference is 0, else 0.

    ``score_a`` and ``score_b`` may hold one row per training seed (the same images): then the test is of
    the mean over the seeds of ``AUC_a,s - AUC_b,s``, with the covariance of all ``2 k`` AUCs."""
    a, b = np.atleast_2d(score_a), np.atleast_2d(score_b)
    aucs, cov = delong_covariance(y, np.vstack([a, b]))
    return contrast_test(aucs, cov, np.r_[np.ones(len(a)), -np.ones(len(b))] / len(a), ci)


def contrast_test(aucs: np.ndarray, cov: np.ndarray, weights: np.ndarray, ci: float = 0.95) -> Difference:
    """Normal test of the linear contrast ``weights @ aucs`` (e.g. a mean over cells of AUC differences);
    value_a / value_b are the weighted sums of the positive / negative weights."""
    diff = float(weights @ aucs)
    se = float(np.sqrt(max(float(weights @ cov @ weights), 0.0)))
    if se > FLOAT_NOISE:
        p = float(2 * norm.sf(abs(diff) / se))
    else:
        p = 1.0 if abs(diff) < FLOAT_NOISE else 0.0
    half = float(norm.ppf((1 + ci) / 2)) * se
    value_a = float(np.clip(weights, 0, None) @ aucs)
    value_b = float(-np.clip(weights, None, 0) @ aucs)
    return Difference(value_a, value_b, diff, diff - half, diff + half, p, se)


def paired_bootstrap(
    y, score_a, score_b, w: np.ndarray, metric: str, *, probability: bool,
    thresholds: tuple[float | None, float | None] = (None, None), ci: float = 0.95,
) -> Difference:
    """``metric(a) - metric(b)`` on the same bootstrap draws ``w`` (``(B, n)`` counts, as
    :func:`bench.run.resample.bootstrap_weights`): percentile interval of the replicate differences,
    p-value ``min(1, 2 min(P*(d <= 0), P*(d >= 0)))`` (resolution ``1 / B``; ``|d| < FLOAT_NOISE`` is a tie). ``thresholds``: the
    validation thresholds of a and b, for ``acc_at_val_threshold``.

    ``score_a`` and ``score_b`` may hold one row per training seed (the same images; ``thresholds`` then
    one per seed): each replicate's value is the mean over the seeds."""
    y = np.asarray(y, dtype=np.float64)
    ones = np.vstack([np.ones(y.size), w])
    values = []
    for score, threshold in zip((score_a, score_b), thresholds):
        rows = np.atleast_2d(np.asarray(score, dtype=np.float64))
        per_row = list(threshold) if isinstance(threshold, (list, tuple)) else [threshold] * len(rows)
        seed_values = []
        for row, row_threshold in zip(rows, per_row):
            batch = _binary_batch(y, row, ones, probability=probability, val_threshold=row_threshold)
            if metric not in batch:
                raise ValueError(f"metric {metric!r} is not computed for these detectors "
                                 f"(available: {', '.join(batch)})")
            seed_values.append(batch[metric])
        values.append(np.mean(seed_values, axis=0))
    a, b = values
    d = a - b
    reps = d[1:][np.isfinite(d[1:])]
    if not np.isfinite(d[0]) or reps.size == 0:
        return Difference(float(a[0]), float(b[0]), float(d[0]), float("nan"), float("nan"), float("nan"))
    alpha = (1 - ci) / 2
    low, high = np.quantile(reps, [alpha, 1 - alpha])
    sign = np.where(np.abs(reps) < FLOAT_NOISE, 0.0, reps)  # equal metrics summed in another order: a tie
    p = float(min(1.0, 2 * min(np.mean(sign <= 0), np.mean(sign >= 0))))
    return Difference(float(a[0]), float(b[0]), float(d[0]), float(low), float(high), p)


def seed_differences(y, score_a, score_b, metric: str, *, probability: bool,
                     thresholds: tuple[list, list] | None = None) -> np.ndarray:
    """``metric(a) - metric(b)`` on all the images, per training seed (one row of ``score_a``/``score_b`` per
    seed; ``thresholds``: each detector's per-seed validation thresholds): how much the difference itself
    moves with the training draw, which the test of the mean over the seeds does not show."""
    y = np.asarray(y, dtype=np.float64)
    ones = np.ones((1, y.size))
    rows_a, rows_b = (np.atleast_2d(np.asarray(s, dtype=np.float64)) for s in (score_a, score_b))
    thr_a, thr_b = thresholds or ([None] * len(rows_a), [None] * len(rows_b))
    return np.array([_binary_batch(y, ra, ones, probability=probability, val_threshold=ta)[metric][0]
                     - _binary_batch(y, rb, ones, probability=probability, val_threshold=tb)[metric][0]
                     for ra, rb, ta, tb in zip(rows_a, rows_b, thr_a, thr_b)])


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control); NaN entries are not tested.

    Sorted ascending, ``p_(i)`` (i = 1..k) becomes ``max_{j <= i} min(1, (k - j + 1) p_(j))``; reject
    where the adjusted value is at most alpha.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    tested = np.flatnonzero(np.isfinite(p))
    k = tested.size
    if k:
        order = tested[np.argsort(p[tested], kind="stable")]
        adjusted = np.minimum(1.0, (k - np.arange(k)) * p[order])
        out[order] = np.maximum.accumulate(adjusted)
    return out
