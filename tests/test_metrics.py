import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    brier_score_loss,
    f1_score,
    roc_auc_score,
    roc_curve,
)

from bench.run.resample import bootstrap_weights
from bench.run.metrics import (
    METRICS,
    _attribution_batch,
    _binary_batch,
    evaluate_cell,
    threshold_at_tnr,
)

ROW_KEYS = {"generator", "metric", "value", "ci_low", "ci_high", "n", "higher_is_better"}


def binary_metrics(y, score, *, probability: bool, val_threshold: float | None) -> dict[str, float]:
    """Every applicable binary metric of one set of scores (y = 1 for generated): the point values of
    evaluate_cell's "all" rows, without replicates."""
    generators = np.where(np.asarray(y) == 1, "gen", "real")
    rows = evaluate_cell(y, generators, score, probability=probability, val_threshold=val_threshold, n_boot=0)
    return {r["metric"]: r["value"] for r in rows if r["generator"] == "all"}


def tied_scores(seed: int, n: int = 300):
    """Labels and probability scores rounded to 1 decimal, so most scores are tied."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    score = np.clip(np.round(0.3 * y + 0.7 * rng.random(n), 1), 0, 1)
    return y, score


def eer_from_sklearn_curve(y, score):
    """The EER rule applied to sklearn's ROC points, as an independent reference."""
    fpr, tpr, _ = roc_curve(y, score, drop_intermediate=False)
    d = fpr - (1 - tpr)
    i = int(np.argmax(d >= 0))
    if d[i] == 0:
        return fpr[i]
    frac = -d[i - 1] / (d[i] - d[i - 1])
    return fpr[i - 1] + frac * (fpr[i] - fpr[i - 1])


def ece_by_loops(y, p, bins=15):
    total = 0.0
    for k in range(bins):
        upper_ok = p < (k + 1) / bins if k < bins - 1 else p <= 1
        member = (p >= k / bins) & upper_ok
        if member.any():
            total += member.sum() / len(p) * abs(y[member].mean() - p[member].mean())
    return total


# --- binary metrics against scikit-learn ------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_binary_metrics_match_sklearn_with_ties(seed):
    y, score = tied_scores(seed)
    m = binary_metrics(y, score, probability=True, val_threshold=0.65)
    pred = (score >= 0.5).astype(int)
    fpr, tpr, _ = roc_curve(y, score, drop_intermediate=False)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert m["ap"] == pytest.approx(average_precision_score(y, score), abs=1e-12)
    assert m["acc"] == pytest.approx(accuracy_score(y, pred), abs=1e-12)
    assert m["balanced_acc"] == pytest.approx(balanced_accuracy_score(y, pred), abs=1e-12)
    assert m["real_acc"] == pytest.approx(np.mean(pred[y == 0] == 0), abs=1e-12)
    assert m["fake_acc"] == pytest.approx(np.mean(pred[y == 1] == 1), abs=1e-12)
    assert m["brier"] == pytest.approx(brier_score_loss(y, score), abs=1e-12)
    assert m["tpr_at_fpr_5"] == pytest.approx(tpr[fpr <= 0.05].max(), abs=1e-12)
    assert m["tpr_at_fpr_1"] == pytest.approx(tpr[fpr <= 0.01].max(), abs=1e-12)
    assert m["eer"] == pytest.approx(eer_from_sklearn_curve(y, score), abs=1e-12)
    assert m["acc_at_val_threshold"] == pytest.approx(accuracy_score(y, score >= 0.65), abs=1e-12)
    assert m["ece"] == pytest.approx(ece_by_loops(y, score), abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_tpr_at_fpr_on_continuous_scores(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 1000)
    score = rng.normal(size=1000) + 1.5 * y
    m = binary_metrics(y, score, probability=False, val_threshold=None)
    fpr, tpr, _ = roc_curve(y, score)
    assert m["tpr_at_fpr_5"] == pytest.approx(tpr[fpr <= 0.05].max())
    assert m["tpr_at_fpr_1"] == pytest.approx(tpr[fpr <= 0.01].max())
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, score))


def test_perfect_reversed_and_constant_scores():
    y = [0, 0, 1, 1]
    perfect = binary_metrics(y, [0.1, 0.2, 0.8, 0.9], probability=True, val_threshold=None)
    assert perfect["roc_auc"] == 1 and perfect["ap"] == 1 and perfect["eer"] == 0
    assert perfect["tpr_at_fpr_1"] == 1 and perfect["acc"] == 1 and perfect["balanced_acc"] == 1
    reversed_ = binary_metrics(y, [0.9, 0.8, 0.2, 0.1], probability=True, val_threshold=None)
    assert reversed_["roc_auc"] == 0 and reversed_["eer"] == 1 and reversed_["tpr_at_fpr_5"] == 0
    assert reversed_["acc"] == 0 and reversed_["real_acc"] == 0 and reversed_["fake_acc"] == 0
    constant = binary_metrics(y, [0.5] * 4, probability=True, val_threshold=None)
    assert constant["roc_auc"] == 0.5 and constant["eer"] == 0.5 and constant["ap"] == 0.5
    assert constant["fake_acc"] == 1 and constant["real_acc"] == 0  # 0.5 >= 0.5 means generated


def test_eer_at_a_roc_point_and_interpolated():
    # ROC (0,0) (0,1/3) (0,2/3) (1/3,2/3) ...: FPR = FNR = 1/3 at a point
    at_point = binary_metrics([0, 0, 0, 1, 1, 1], [0.2, 0.3, 0.7, 0.6, 0.8, 0.9], probability=False, val_threshold=None)
    assert at_point["eer"] == pytest.approx(1 / 3)
    # a tie makes the segment (0, .5) -> (.5, 1); FPR = FNR = .25 halfway along it
    interpolated = binary_metrics([0, 0, 1, 1], [0.1, 0.5, 0.5, 0.9], probability=False, val_threshold=None)
    assert interpolated["eer"] == pytest.approx(0.25)
    assert interpolated["roc_auc"] == pytest.approx(0.875)


def test_ece_hand_computed():
    p = np.array([0.05, 0.05, 0.5, 0.55, 0.95, 1.0])
    y = np.array([0, 1, 1, 0, 1, 1])
    # bins 0, 7, 8, 14 (1.0 falls in the last bin); |sum(y - p)| per bin: .9, .5, .55, .05
    assert binary_metrics(y, p, probability=True, val_threshold=None)["ece"] == pytest.approx(2.0 / 6)
    assert binary_metrics([1, 0], [1.0, 0.0], probability=True, val_threshold=None)["ece"] == 0
    # neighbouring top bins 13 ([13/15, 14/15)) and 14 ([14/15, 1]) are separate: |0 - .9| + |1 - .95|, not |1 - 1.85|
    assert binary_metrics([0, 1], [0.9, 0.95], probability=True, val_threshold=None)["ece"] == pytest.approx(0.475)


def test_non_probability_scores_omit_threshold_and_calibration_metrics():
    m = binary_metrics([0, 1, 1], [-2.0, 3.0, 0.1], probability=False, val_threshold=None)
    assert set(m) == {"roc_auc", "ap", "tpr_at_fpr_5", "tpr_at_fpr_1", "eer"}
    m = binary_metrics([0, 1, 1], [-2.0, 3.0, 0.1], probability=False, val_threshold=0.0)
    assert m["acc_at_val_threshold"] == 1.0


def test_single_class_metrics_are_nan():
    only_fake = binary_metrics([1, 1], [0.9, 0.2], probability=True, val_threshold=0.5)
    for name in ("roc_auc", "eer", "tpr_at_fpr_5", "tpr_at_fpr_1", "real_acc", "balanced_acc"):
        assert math.isnan(only_fake[name]), name
    assert only_fake["ap"] == 1 and only_fake["fake_acc"] == 0.5 and only_fake["acc"] == 0.5
    only_real = binary_metrics([0, 0], [0.9, 0.2], probability=True, val_threshold=None)
    assert math.isnan(only_real["ap"]) and math.isnan(only_real["fake_acc"])
    assert only_real["real_acc"] == 0.5
    empty = binary_metrics([], [], probability=True, val_threshold=None)
    assert all(math.isnan(v) for v in empty.values())


@pytest.mark.parametrize("labels, generators, scores, pred, probability, message", [
    ([0, 1], ["real", "g"], [0.2, 1.5], None, True, "probability scores must lie in [0, 1]"),
    ([0, 1], ["real", "g"], [0.2, np.nan], None, False, "scores must be finite"),
    ([0, 2], ["real", "g"], [0.2, 0.3], None, False, "labels must be 0 (real) or 1 (generated)"),
    ([0, 1, 1], ["real", "g", "g"], [0.2, 0.3], None, False, "labels and scores differ in length: 3 vs 2"),
    ([0, 1], ["real"], [0.2, 0.3], None, False, "labels and generators differ in length: 2 vs 1"),
    ([0, 1], ["real", "all"], [0.2, 0.3], None, False,
     "generated images may not use the reserved generator names ['all']"),
    ([0, 1], ["real", "g"], [0.2, 0.3], ["real"], False, "labels and pred_source differ in length: 2 vs 1"),
])
def test_bad_inputs_raise_with_the_reason(labels, generators, scores, pred, probability, message):
    with pytest.raises(ValueError) as error:
        evaluate_cell(labels, generators, scores, pred, probability=probability, val_threshold=None, n_boot=0)
    assert str(error.value) == message


def test_a_score_equal_to_a_threshold_is_called_generated():
    """score >= threshold means generated, at 0.5 and at the validation threshold alike."""
    m = binary_metrics([0, 1], [0.3, 0.5], probability=True, val_threshold=0.3)
    assert m["acc"] == 1.0 and m["acc_at_val_threshold"] == 0.5  # the real at exactly 0.3 is called generated


def test_average_precision_with_one_generated_image():
    assert binary_metrics([0, 0, 1], [0.1, 0.9, 0.5], probability=False, val_threshold=None)["ap"] == 0.5


def test_default_bootstrap_and_threshold_settings():
    labels, gens, scores, _ = make_cell(seed=8)
    kwargs = dict(probability=False, val_threshold=None)
    assert evaluate_cell(labels, gens, scores, **kwargs) == evaluate_cell(labels, gens, scores, n_boot=200, seed=0,
                                                                          **kwargs)
    reals = np.arange(40) / 40
    assert threshold_at_tnr(reals) == threshold_at_tnr(reals, 0.95)


def test_bootstrap_of_a_cell_without_real_images_draws_every_generator():
    y = np.ones(6)
    w = bootstrap_weights(y, np.array(["a", "a", "a", "b", "b", "b"], dtype=object), ["a", "b"], 50, seed=1)
    assert (w[:, :3].sum(axis=1) == 3).all() and (w[:, 3:].sum(axis=1) == 3).all()


def test_weighted_batch_equals_metrics_of_repeated_images():
    """A bootstrap replicate (draw counts, zeros included) gives the metrics of the resampled data."""
    rng = np.random.default_rng(7)
    y, score = tied_scores(7, n=60)
    w = rng.integers(0, 3, size=(5, 60)).astype(float)
    batch = _binary_batch(y.astype(float), score, w, probability=True, val_threshold=0.55)
    for b in range(5):
        counts = w[b].astype(int)
        expected = binary_metrics(np.repeat(y, counts), np.repeat(score, counts), probability=True, val_threshold=0.55)
        for name, value in expected.items():
            assert batch[name][b] == pytest.approx(value, abs=1e-12), name


# --- threshold_at_tnr ---------------------------------------------------------------------------


def test_threshold_at_tnr():
    reals = np.arange(20) / 20  # 0.00 .. 0.95
    thr = threshold_at_tnr(reals, 0.95)
    assert np.mean(reals < thr) == 0.95 and reals[18] < thr < reals[19]
    assert np.mean(reals < threshold_at_tnr(reals, 1.0)) == 1.0
    assert np.mean(reals[:10] < threshold_at_tnr(reals[:10], 0.95)) == 1.0  # ceil(9.5) = 10 of 10
    ties = np.array([0.1] * 5 + [0.7] * 5)
    assert np.mean(ties < threshold_at_tnr(ties, 0.5)) == 0.5
    assert np.mean(ties < threshold_at_tnr(ties, 0.6)) == 1.0
    for bad in ([], [0.1, np.inf]):
        with pytest.raises(ValueError) as error:
            threshold_at_tnr(bad)
        assert str(error.value) == "threshold_at_tnr needs at least one real score, all finite"
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError) as error:
            threshold_at_tnr(reals, bad)
        assert str(error.value) == f"tnr must be in (0, 1], got {bad}"


def test_threshold_at_tnr_is_the_next_float64_above_a_float32_score():
    """A model's float32 scores: the threshold is the next double above the k-th score, not the next float32
    (which would also call real every float64 score in between)."""
    reals = np.array([0.1, 0.2, 0.3, 0.7], dtype=np.float32)
    threshold = threshold_at_tnr(reals, 0.75)
    assert threshold == np.nextafter(np.float64(np.float32(0.3)), np.inf)


# --- attribution --------------------------------------------------------------------------------


def test_attribution_metrics_hand_computed():
    true = ["real", "real", "sd", "sd", "mj", "mj"]
    pred = ["real", "sd", "sd", "sd", "real", "dalle"]
    labels = [0 if name == "real" else 1 for name in true]
    rows = rows_by_key(evaluate_cell(labels, true, [0.5] * 6, pred, probability=True, val_threshold=None, n_boot=0))
    assert rows[("all", "attr_acc")]["value"] == pytest.approx(0.5)
    # F1: real 1/2, sd 4/5, mj 0 ('dalle' is not a true class, so it is not averaged)
    assert rows[("all", "attr_macro_f1")]["value"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert ("sd", "attr_acc") not in rows  # attribution is reported on all the images only


def test_weighted_attribution_matches_sklearn():
    rng = np.random.default_rng(3)
    names = np.array(["real", "a", "b", "c", "x"], dtype=object)
    true = names[rng.integers(0, 4, 80)]
    pred = names[rng.integers(0, 5, 80)]
    w = rng.integers(0, 3, size=(4, 80)).astype(float)
    w[:, :4] = 1  # keep every true class present
    batch = _attribution_batch(true, pred, w)
    for b in range(4):
        assert batch["attr_acc"][b] == pytest.approx(accuracy_score(true, pred, sample_weight=w[b]))
        f1 = f1_score(true, pred, labels=sorted(set(true)), average="macro", sample_weight=w[b], zero_division=0)
        assert batch["attr_macro_f1"][b] == pytest.approx(f1)


def test_a_class_missing_from_a_replicate_scores_f1_zero():
    """A bootstrap replicate may draw no image of a class (nor predict it): its F1 is 0, as sklearn's
    zero_division=0, so the macro average still has one term per class of the full set."""
    true = np.array(["real", "real", "sd", "mj"], dtype=object)
    pred = np.array(["real", "real", "sd", "sd"], dtype=object)
    w = np.array([[1.0, 1.0, 1.0, 0.0]])  # mj not drawn, nor predicted
    batch = _attribution_batch(true, pred, w)
    assert batch["attr_macro_f1"][0] == pytest.approx((1.0 + 1.0 + 0.0) / 3)
    assert batch["attr_acc"][0] == 1.0


# --- evaluate_cell ------------------------------------------------------------------------------


def make_cell(seed=0, n_real=60, per_gen=30, gens=("sd", "mj", "dalle")):
    rng = np.random.default_rng(seed)
    generators = np.array(["real"] * n_real + [g for g in gens for _ in range(per_gen)], dtype=object)
    labels = (generators != "real").astype(int)
    shift = {"real": 0.0, "sd": 0.4, "mj": 0.2, "dalle": 0.05}
    scores = np.clip(np.round([shift[g] + 0.6 * rng.random() for g in generators], 2), 0, 1)
    all_names = np.array(["real", *gens], dtype=object)
    pred = np.where(rng.random(labels.size) < 0.6, generators, all_names[rng.integers(0, len(all_names), labels.size)])
    return labels, generators, scores, pred


def rows_by_key(rows):
    return {(r["generator"], r["metric"]): r for r in rows}


def test_evaluate_cell_rows_and_intervals():
    labels, gens, scores, pred = make_cell()
    rows = evaluate_cell(labels, gens, scores, pred, probability=True, val_threshold=0.6, n_boot=300, seed=1)
    assert all(set(r) == ROW_KEYS for r in rows)
    by_key = rows_by_key(rows)
    assert {g for g, _ in by_key} == {"all", "sd", "mj", "dalle", "mean"}
    assert {m for g, m in by_key if g == "all"} == set(METRICS)
    assert {m for g, m in by_key if g == "sd"} == {m for m, i in METRICS.items() if i.task == "binary"}
    for r in rows:
        assert r["ci_low"] <= r["value"] <= r["ci_high"], (r["generator"], r["metric"])
        assert r["higher_is_better"] == METRICS[r["metric"]].higher_is_better
        assert isinstance(r["value"], float) and isinstance(r["n"], int)
    assert by_key[("all", "roc_auc")]["n"] == 150 and by_key[("sd", "roc_auc")]["n"] == 90
    assert by_key[("mean", "eer")]["n"] == 150


def test_evaluate_cell_per_generator_values_and_mean():
    labels, gens, scores, pred = make_cell(seed=2)
    by_key = rows_by_key(evaluate_cell(labels, gens, scores, pred, probability=True, val_threshold=0.6, n_boot=50))
    expected_all = binary_metrics(labels, scores, probability=True, val_threshold=0.6)
    true = np.where(labels == 1, gens, "real")
    expected_all["attr_acc"] = accuracy_score(true, pred)
    expected_all["attr_macro_f1"] = f1_score(true, pred, labels=sorted(set(true)), average="macro", zero_division=0)
    for name, value in expected_all.items():
        assert by_key[("all", name)]["value"] == pytest.approx(value, abs=1e-12), name
    per_gen = {}
    for gen in ("sd", "mj", "dalle"):
        keep = (labels == 0) | (gens == gen)
        per_gen[gen] = binary_metrics(labels[keep], scores[keep], probability=True, val_threshold=0.6)
        for name, value in per_gen[gen].items():
            assert by_key[(gen, name)]["value"] == pytest.approx(value, abs=1e-12), (gen, name)
    for name in per_gen["sd"]:
        expected = np.mean([per_gen[g][name] for g in per_gen])
        assert by_key[("mean", name)]["value"] == pytest.approx(expected, abs=1e-12), name


def test_evaluate_cell_is_deterministic_given_seed():
    labels, gens, scores, pred = make_cell(seed=3)
    kwargs = dict(probability=True, val_threshold=None, n_boot=100)
    first = evaluate_cell(labels, gens, scores, pred, seed=5, **kwargs)
    assert pd.DataFrame(first).equals(pd.DataFrame(evaluate_cell(labels, gens, scores, pred, seed=5, **kwargs)))
    other = pd.DataFrame(evaluate_cell(labels, gens, scores, pred, seed=6, **kwargs))
    assert not pd.DataFrame(first)[["ci_low", "ci_high"]].equals(other[["ci_low", "ci_high"]])
    assert pd.DataFrame(first)["value"].equals(other["value"])


def test_bootstrap_keeps_every_group_size():
    labels, gens, _, _ = make_cell(seed=4, n_real=7, per_gen=5)
    gen_names = ["dalle", "mj", "sd"]
    w = bootstrap_weights(labels, gens, gen_names, n_boot=20, seed=0)
    assert np.all(w[:, labels == 0].sum(axis=1) == 7)
    for gen in gen_names:
        assert np.all(w[:, gens == gen].sum(axis=1) == 5)


def test_evaluate_cell_single_class_subsets():
    only_fake = evaluate_cell(
        [1, 1, 1, 1], ["a", "a", "b", "b"], [0.9, 0.2, 0.6, 0.7], probability=True, val_threshold=None, n_boot=20
    )
    by_key = rows_by_key(only_fake)
    assert math.isnan(by_key[("a", "roc_auc")]["value"]) and math.isnan(by_key[("mean", "roc_auc")]["ci_low"])
    assert by_key[("a", "fake_acc")]["value"] == 0.5 and by_key[("mean", "fake_acc")]["value"] == 0.75
    only_real = evaluate_cell([0, 0, 0], ["real"] * 3, [0.1, 0.6, 0.3], probability=True, val_threshold=0.5, n_boot=20)
    assert {r["generator"] for r in only_real} == {"all"}
    assert rows_by_key(only_real)[("all", "real_acc")]["value"] == pytest.approx(2 / 3)
    one_each = evaluate_cell([0, 1], ["real", "a"], [0.1, 0.9], probability=False, val_threshold=None, n_boot=20)
    assert rows_by_key(one_each)[("a", "roc_auc")]["ci_low"] == 1.0


def test_evaluate_cell_rejects_reserved_generator_names():
    with pytest.raises(ValueError):
        evaluate_cell([0, 1], ["real", "mean"], [0.1, 0.9], probability=False, val_threshold=None)
    with pytest.raises(ValueError):
        evaluate_cell([0, 1], ["real", "sd"], [0.1, 0.9], ["real"], probability=False, val_threshold=None)


# --- the interval is pinned to an independent computation of the replicates ---------------------


@pytest.mark.parametrize("ci", [0.95, 0.8])
def test_interval_is_the_central_ci_quantiles_of_independently_computed_replicates(ci):
    """Each replicate recomputed with sklearn from the shared bootstrap draws (an image drawn k times has
    weight k): the interval must be their (1 - ci) / 2 and (1 + ci) / 2 quantiles, for "all", for a
    generator (its images vs all reals) and for the per-replicate mean over generators."""
    labels, gens, scores, _ = make_cell(seed=6)
    n_boot, seed = 300, 9
    gen_names = sorted(set(gens[labels == 1]))
    w = bootstrap_weights(labels, gens, gen_names, n_boot, seed)
    rows = rows_by_key(evaluate_cell(labels, gens, scores, probability=False, val_threshold=None, n_boot=n_boot,
                                     seed=seed, ci=ci))

    def auc_reps(keep):
        return np.array([roc_auc_score(labels[keep], scores[keep], sample_weight=row[keep]) for row in w])

    per_gen = {g: auc_reps((labels == 0) | (gens == g)) for g in gen_names}
    expected = {"all": auc_reps(np.ones(labels.size, bool)), "sd": per_gen["sd"],
                "mean": np.mean([per_gen[g] for g in gen_names], axis=0)}
    for subset, reps in expected.items():
        low, high = np.quantile(reps, [(1 - ci) / 2, (1 + ci) / 2])
        row = rows[(subset, "roc_auc")]
        assert (row["ci_low"], row["ci_high"]) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))


def test_default_interval_is_95_percent():
    labels, gens, scores, _ = make_cell(seed=7)
    kwargs = dict(probability=False, val_threshold=None, n_boot=200, seed=3)
    assert evaluate_cell(labels, gens, scores, **kwargs) == evaluate_cell(labels, gens, scores, ci=0.95, **kwargs)


# --- TPR at a fixed FPR: a threshold whose FPR is exactly the target counts ----------------------


@pytest.mark.parametrize("n_real, name", [(20, "tpr_at_fpr_5"), (100, "tpr_at_fpr_1")])
def test_tpr_at_fpr_counts_a_threshold_whose_fpr_is_exactly_the_target(n_real, name):
    """Generated images at 0.3 and 0.9, reals at 0.1 but one (or two) at 0.5: the threshold 0.3 calls every
    generated image generated with FPR 1 / n_real, exactly the target, so TPR is 1; with two reals at 0.5 the
    FPR there is twice the target and only the threshold 0.9 (TPR 0.5) qualifies."""
    assert 1.0 / n_real == {"tpr_at_fpr_5": 0.05, "tpr_at_fpr_1": 0.01}[name]  # lands exactly in float
    y = np.r_[np.zeros(n_real), np.ones(10)]
    one_real_high = np.r_[np.full(n_real - 1, 0.1), 0.5, np.full(5, 0.3), np.full(5, 0.9)]
    assert binary_metrics(y, one_real_high, probability=False, val_threshold=None)[name] == 1.0
    two_reals_high = np.r_[np.full(n_real - 2, 0.1), 0.5, 0.5, np.full(5, 0.3), np.full(5, 0.9)]
    assert binary_metrics(y, two_reals_high, probability=False, val_threshold=None)[name] == 0.5
