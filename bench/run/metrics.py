"""Detection and attribution metrics, per generator, with bootstrap confidence intervals.

Conventions (README, "Metrics"):

- A score is "higher = more likely generated"; a decision says *generated*
  when ``score >= threshold``.
- Natural threshold: 0.5, only when the scores are probabilities; metrics that
  need it (acc, real_acc, fake_acc, balanced_acc) and the calibration metrics
  (ece, brier) are absent for other scores. A practical threshold is fixed on
  clean validation reals (:func:`threshold_at_tnr`) and passed in as
  ``val_threshold``. No oracle threshold (chosen on the test labels) is reported.
- A metric that does not apply (no probabilities, no validation threshold) is
  absent from the result; a metric that applies but is undefined on the data
  (e.g. roc_auc with one class only) is NaN, so every cell has the same rows.

Speed: every binary metric of every bootstrap replicate is computed from one
sort of the subset's scores. A bootstrap replicate is a vector of per-image
counts (how often each image was drawn), so the replicates of a subset are a
``(B, n)`` weight matrix applied to the same sorted scores; the point estimate
is the row of ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.run.resample import bootstrap_weights

NATURAL_THRESHOLD = 0.5
ECE_BINS = 15
REAL = "real"  # attribution class of real images
ALL = "all"  # generator value of the row computed on every image
MEAN = "mean"  # generator value of the row averaged over generators


@dataclass(frozen=True)
class MetricInfo:
    higher_is_better: bool
    description: str
    task: str  # "binary" (real vs generated) or "attribution" (which source)


METRICS: dict[str, MetricInfo] = {
    "roc_auc": MetricInfo(True, "area under the ROC curve (ties count one half)", "binary"),
    "ap": MetricInfo(True, "average precision, generated = positive (sklearn's step-wise sum)", "binary"),
    "acc": MetricInfo(True, "accuracy at the natural threshold 0.5 (probabilities only)", "binary"),
    "real_acc": MetricInfo(True, "share of real images called real at 0.5 (TNR; prob. only)", "binary"),
    "fake_acc": MetricInfo(True, "share of generated images called generated at 0.5 (TPR; prob. only)", "binary"),
    "balanced_acc": MetricInfo(True, "mean of real_acc and fake_acc at 0.5 (probabilities only)", "binary"),
    "tpr_at_fpr_5": MetricInfo(True, "highest TPR over thresholds whose FPR <= 5%", "binary"),
    "tpr_at_fpr_1": MetricInfo(True, "highest TPR over thresholds whose FPR <= 1%", "binary"),
    "eer": MetricInfo(False, "equal error rate: FPR = FNR, linearly interpolated along the ROC", "binary"),
    "acc_at_val_threshold": MetricInfo(
        True, "accuracy at the threshold giving 95% TNR on clean validation reals", "binary"
    ),
    "ece": MetricInfo(False, "expected calibration error, 15 equal-width bins (probabilities only)", "binary"),
    "brier": MetricInfo(False, "Brier score, mean squared error of the probability (probabilities only)", "binary"),
    "attr_acc": MetricInfo(True, "source attribution accuracy (real is a class)", "attribution"),
    "attr_macro_f1": MetricInfo(True, "source attribution F1, macro-averaged over the true classes", "attribution"),
}

_FPR_TARGETS = {"tpr_at_fpr_5": 0.05, "tpr_at_fpr_1": 0.01}


# --- binary metrics -----------------------------------------------------------------------------


def threshold_at_tnr(real_scores, tnr: float = 0.95) -> float:
    """The smallest threshold with at least ``tnr`` of the real scores strictly below it.

    Fixed on clean validation reals and then applied to every perturbed cell: it
    shows what a deployed detector would do, which neither 0.5 nor an oracle
    threshold shows. With ``k = ceil(tnr * n)``, it is the next float above the
    k-th smallest real score, so ties at that score all count as real.
    """
    s = np.sort(np.asarray(real_scores, dtype=np.float64).ravel())
    if s.size == 0 or not np.isfinite(s).all():
        raise ValueError("threshold_at_tnr needs at least one real score, all finite")
    if not 0.0 < tnr <= 1.0:
        raise ValueError(f"tnr must be in (0, 1], got {tnr}")
    k = int(np.ceil(tnr * s.size - 1e-9))
    return float(np.nextafter(s[k - 1], np.inf))


def _check_binary(y, score, probability: bool) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y).ravel()
    score = np.asarray(score, dtype=np.float64).ravel()
    if y.shape != score.shape:
        raise ValueError(f"labels and scores differ in length: {y.size} vs {score.size}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (real) or 1 (generated)")
    if not np.isfinite(score).all():
        raise ValueError("scores must be finite")
    if probability and score.size and (score.min() < 0.0 or score.max() > 1.0):
        raise ValueError("probability scores must lie in [0, 1]")
    return y.astype(np.float64), score


def _binary_batch(
    y: np.ndarray, score: np.ndarray, w: np.ndarray, *, probability: bool, val_threshold: float | None
) -> dict[str, np.ndarray]:
    """Binary metrics for each row of the image weights ``w`` (shape ``(B, n)``), from one sort."""
    names = _binary_names(probability, val_threshold)
    if y.size == 0:
        return {name: np.full(w.shape[0], np.nan) for name in names}
    pos, neg = w @ y, w @ (1.0 - y)
    out = _ranking_metrics(y, score, w, pos, neg)
    if probability:
        out.update(_decision_metrics(y, score >= NATURAL_THRESHOLD, w, pos, neg))
        out.update(_calibration_metrics(y, score, w, pos + neg))
    if val_threshold is not None:
        out["acc_at_val_threshold"] = _decision_metrics(y, score >= val_threshold, w, pos, neg)["acc"]
    return {name: out[name] for name in names}


def _binary_names(probability: bool, val_threshold: float | None) -> list[str]:
    skip = set() if probability else {"acc", "real_acc", "fake_acc", "balanced_acc", "ece", "brier"}
    if val_threshold is None:
        skip.add("acc_at_val_threshold")
    return [name for name, info in METRICS.items() if info.task == "binary" and name not in skip]


def _ranking_metrics(y, score, w, pos, neg) -> dict[str, np.ndarray]:
    """Metrics of the ROC / precision-recall curves over the distinct thresholds (as sklearn)."""
    order = np.argsort(-score, kind="stable")
    s = score[order]
    starts = np.concatenate(([0], np.flatnonzero(s[1:] != s[:-1]) + 1))  # one group per distinct score
    w_sorted = w[:, order]
    tp_step = np.add.reduceat(w_sorted * y[order], starts, axis=1)
    fp_step = np.add.reduceat(w_sorted, starts, axis=1) - tp_step
    zero = np.zeros((w.shape[0], 1))
    tps = np.hstack([zero, np.cumsum(tp_step, axis=1)])  # point 0 is the threshold +inf
    fps = np.hstack([zero, np.cumsum(fp_step, axis=1)])
    both = (pos > 0) & (neg > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr, fpr = tps / pos[:, None], fps / neg[:, None]
        precision = tps[:, 1:] / (tps[:, 1:] + fps[:, 1:])
        out = {
            "roc_auc": np.sum(np.diff(fpr, axis=1) * (tpr[:, 1:] + tpr[:, :-1]) / 2, axis=1),
            "ap": np.sum(tp_step * np.nan_to_num(precision), axis=1) / pos,
            "eer": _eer(tpr, fpr),
        }
        for name, target in _FPR_TARGETS.items():
            out[name] = np.max(np.where(fpr <= target, tpr, 0.0), axis=1)
    for name in ("roc_auc", "eer", *_FPR_TARGETS):
        out[name] = np.where(both, out[name], np.nan)
    out["ap"] = np.where(pos > 0, out["ap"], np.nan)
    return out


def _eer(tpr: np.ndarray, fpr: np.ndarray) -> np.ndarray:
    """FPR where it equals FNR on the piecewise-linear ROC.

    ``d = FPR - FNR`` rises strictly from -1 at (0, 0) to 1 at (1, 1), so it
    crosses 0 once: at the first ROC point with ``d >= 0`` or on the segment
    before it, where FPR and FNR are interpolated linearly.
    """
    d = fpr + tpr - 1.0
    hi = np.argmax(d >= 0, axis=1)
    lo = np.maximum(hi - 1, 0)
    rows = np.arange(d.shape[0])
    d_lo, d_hi = d[rows, lo], d[rows, hi]
    frac = np.where(d_hi > d_lo, -d_lo / (d_hi - d_lo), 1.0)
    return fpr[rows, lo] + frac * (fpr[rows, hi] - fpr[rows, lo])


def _decision_metrics(y, predicted, w, pos, neg) -> dict[str, np.ndarray]:
    """Accuracies of the decisions ``predicted`` (True = generated)."""
    tp = w @ (y * predicted)
    tn = neg - w @ ((1.0 - y) * predicted)
    with np.errstate(divide="ignore", invalid="ignore"):
        real_acc, fake_acc = tn / neg, tp / pos
        return {
            "acc": (tp + tn) / (pos + neg),
            "real_acc": real_acc,
            "fake_acc": fake_acc,
            "balanced_acc": (real_acc + fake_acc) / 2,  # NaN unless both classes are present
        }


def _calibration_metrics(y, p, w, total) -> dict[str, np.ndarray]:
    """ECE of the positive-class probability in bins [k/15, (k+1)/15) (the last closed), and Brier."""
    bins = np.minimum((p * ECE_BINS).astype(np.int64), ECE_BINS - 1)
    gap = np.zeros((y.size, ECE_BINS))
    gap[np.arange(y.size), bins] = y - p  # per bin: sum of (outcome - probability)
    return {
        "ece": np.abs(w @ gap).sum(axis=1) / total,
        "brier": (w @ (p - y) ** 2) / total,
    }


# --- attribution --------------------------------------------------------------------------------


def _attribution_batch(true_names: np.ndarray, pred_names: np.ndarray, w: np.ndarray) -> dict[str, np.ndarray]:
    """Attribution accuracy and macro F1 (over the classes present in the true labels) for each row of the
    image weights ``w``; as sklearn's ``accuracy_score`` / ``f1_score(average="macro", zero_division=0)``
    with ``sample_weight``, without their per-call cost."""
    classes = np.array(sorted(set(true_names)), dtype=object)
    is_true = true_names[:, None] == classes[None, :]
    is_pred = pred_names[:, None] == classes[None, :]
    tp, n_true, n_pred = w @ (is_true & is_pred), w @ is_true, w @ is_pred
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(n_true + n_pred > 0, 2 * tp / (n_true + n_pred), 0.0)
        return {
            "attr_acc": (w @ (true_names == pred_names)) / w.sum(axis=1),
            "attr_macro_f1": f1.mean(axis=1),
        }


# --- one cell: per generator, with bootstrap intervals ------------------------------------------


def evaluate_cell(
    labels,
    generators,
    scores,
    pred_source=None,
    *,
    probability: bool,
    val_threshold: float | None,
    n_boot: int = 200,
    seed: int = 0,
    ci: float = 0.95,
    groups=None,
) -> list[dict]:
    """Result rows (generator, metric, value, ci_low, ci_high, n, higher_is_better) of one cell.

    Subsets: ``"all"`` (every image), each generator (its images vs ALL real
    images) and ``"mean"`` (the mean of the per-generator values, NaN if one
    is NaN). Attribution metrics (when ``pred_source`` is given) are reported
    for ``"all"`` only, with real images as the class ``"real"``.

    The percentile bootstrap resamples with replacement within each group (the
    reals, and each generator's images), so every subset keeps its size and
    class balance; each replicate computes every metric of every subset from the
    same draw, and the "mean" interval averages per replicate. With ``groups``
    (one label per image) whole groups are resampled (:mod:`bench.run.resample`).
    """
    y, score = _check_binary(labels, scores, probability)
    generators = np.asarray(generators, dtype=object).ravel()
    if generators.shape != y.shape:
        raise ValueError(f"labels and generators differ in length: {y.size} vs {generators.size}")
    gen_names = sorted(set(generators[y == 1]))
    reserved = {REAL, ALL, MEAN} & set(gen_names)
    if reserved:
        raise ValueError(f"generated images may not use the reserved generator names {sorted(reserved)}")

    w = np.vstack([np.ones(y.size), bootstrap_weights(y, generators, gen_names, n_boot, seed, groups)])
    batches = {ALL: (_binary_batch(y, score, w, probability=probability, val_threshold=val_threshold), y.size)}
    for gen in gen_names:
        cols = (y == 0) | (generators == gen)
        batch = _binary_batch(y[cols], score[cols], w[:, cols], probability=probability, val_threshold=val_threshold)
        batches[gen] = (batch, int(cols.sum()))
    if gen_names:
        per_gen = [batches[gen][0] for gen in gen_names]
        batches[MEAN] = ({name: np.mean([b[name] for b in per_gen], axis=0) for name in per_gen[0]}, y.size)
    if pred_source is not None:
        true_names = np.where(y == 1, generators, REAL)
        pred_names = np.asarray(pred_source, dtype=object).ravel()
        if pred_names.shape != y.shape:
            raise ValueError(f"labels and pred_source differ in length: {y.size} vs {pred_names.size}")
        batches[ALL][0].update(_attribution_batch(true_names, pred_names, w))

    return [
        _row(subset, name, values, n, ci)
        for subset, (batch, n) in batches.items()
        for name, values in batch.items()
    ]


def _row(subset: str, name: str, values: np.ndarray, n: int, ci: float) -> dict:
    low, high = _percentile_interval(values[0], values[1:], ci)
    return {
        "generator": subset,
        "metric": name,
        "value": float(values[0]),
        "ci_low": low,
        "ci_high": high,
        "n": int(n),
        "higher_is_better": METRICS[name].higher_is_better,
    }


def _percentile_interval(value: float, replicates: np.ndarray, ci: float) -> tuple[float, float]:
    """The central ``ci`` interval of the replicates; NaN when the value is NaN or nothing was resampled."""
    finite = replicates[np.isfinite(replicates)]
    if np.isnan(value) or finite.size == 0:
        return float("nan"), float("nan")
    alpha = (1.0 - ci) / 2
    low, high = np.quantile(finite, [alpha, 1.0 - alpha])
    return float(low), float(high)
