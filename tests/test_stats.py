"""Paired statistics (DeLong, paired bootstrap, Holm), the group-aware bootstrap and the robustness
summaries, on inputs small enough to check by hand or against an independent computation."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from bench.report.summaries import normalised_area, robustness_summary
from bench.run.metrics import evaluate_cell
from bench.run.resample import bootstrap_weights, cell_seed
from bench.run.stats import contrast_test, delong_covariance, delong_test, holm, paired_bootstrap, seed_differences


# ---------------------------------------------------------------- DeLong


def _brute_force_delong(y, scores):
    """DeLong et al. (1988) written out with O(m n) placement values: psi(x, z) = 1, 1/2, 0."""
    y = np.asarray(y).astype(bool)
    k = scores.shape[0]
    m, n = y.sum(), (~y).sum()
    v10 = np.zeros((k, m))
    v01 = np.zeros((k, n))
    for r in range(k):
        pos, neg = scores[r, y], scores[r, ~y]
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        v10[r], v01[r] = psi.mean(axis=1), psi.mean(axis=0)
    aucs = v10.mean(axis=1)
    s10 = (v10 - aucs[:, None]) @ (v10 - aucs[:, None]).T / (m - 1)
    s01 = (v01 - aucs[:, None]) @ (v01 - aucs[:, None]).T / (n - 1)
    return aucs, s10 / m + s01 / n


def _correlated_scores(n=120, seed=3):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    shared = rng.normal(size=n)
    a = np.round(shared + 1.2 * y + 0.6 * rng.normal(size=n), 1)  # rounding makes ties
    b = np.round(shared + 0.6 * y + 0.6 * rng.normal(size=n), 1)
    return y, a, b


def test_delong_matches_brute_force_placements_with_ties():
    y, a, b = _correlated_scores()
    aucs, cov = delong_covariance(y, np.vstack([a, b]))
    ref_aucs, ref_cov = _brute_force_delong(y, np.vstack([a, b]))
    np.testing.assert_allclose(aucs, ref_aucs, rtol=0, atol=1e-12)
    np.testing.assert_allclose(cov, ref_cov, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(aucs, [roc_auc_score(y, a), roc_auc_score(y, b)], atol=1e-12)


def test_delong_hand_computed_example():
    # positives 0.9, 0.6; negatives 0.5, 0.7, 0.1. Placements of the positives (share of negatives
    # below): 1, 2/3; of the negatives (share of positives above): 1, 1/2, 1. AUC = 5/6.
    # var = var(1, 2/3) / 2 + var(1, 1/2, 1) / 3 = (1/18) / 2 + (1/12) / 3 = 1/36 + 1/36 = 1/18.
    aucs, cov = delong_covariance([1, 1, 0, 0, 0], [[0.9, 0.6, 0.5, 0.7, 0.1]])
    assert aucs[0] == pytest.approx(5 / 6)
    assert cov[0, 0] == pytest.approx(1 / 18)


def test_delong_se_agrees_with_the_paired_bootstrap():
    y, a, b = _correlated_scores(n=300, seed=7)
    test = delong_test(y, a, b)
    w = bootstrap_weights(y, np.where(y == 1, "gen", "real"), ["gen"], 2000, seed=1)
    diffs = [roc_auc_score(y, a, sample_weight=row) - roc_auc_score(y, b, sample_weight=row) for row in w[:400]]
    assert test.diff == pytest.approx(roc_auc_score(y, a) - roc_auc_score(y, b))
    assert np.std(diffs, ddof=1) == pytest.approx(test.se, rel=0.2)
    assert test.p < 0.05 and test.ci_low > 0


@pytest.mark.parametrize("ci", [0.95, 0.9])
def test_delong_p_value_and_interval_are_the_two_sided_normal_ones(ci):
    """z = diff / se with se from the brute-force covariance: p = 2 * sf(|z|) and the interval
    diff -+ z_{(1 + ci) / 2} se, pinned to the formula (not only to "significant")."""
    y, a, b = _correlated_scores(n=80, seed=11)
    aucs, cov = _brute_force_delong(y, np.vstack([a, b]))
    diff = aucs[0] - aucs[1]
    se = np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    test = delong_test(y, a, b, ci=ci)
    assert 0.001 < test.p < 0.5  # a p-value that halving or doubling would move visibly
    assert test.se == pytest.approx(se, rel=1e-10)
    assert test.p == pytest.approx(2 * norm.sf(abs(diff) / se), rel=1e-10)
    half = norm.ppf((1 + ci) / 2) * se
    assert (test.ci_low, test.ci_high) == (pytest.approx(diff - half, rel=1e-10), pytest.approx(diff + half, rel=1e-10))
    assert (test.value_a, test.value_b) == (pytest.approx(aucs[0]), pytest.approx(aucs[1]))


def test_delong_default_interval_is_95_percent():
    y, a, b = _correlated_scores(n=80, seed=11)
    assert delong_test(y, a, b) == delong_test(y, a, b, ci=0.95)


def test_delong_identical_scores_give_no_difference():
    y, a, _ = _correlated_scores()
    test = delong_test(y, a, a)
    assert test.diff == 0 and test.p == 1.0 and test.se == 0


# ---------------------------------------------------------------- paired bootstrap and Holm


def test_paired_bootstrap_of_auc_is_the_replicate_difference():
    y, a, b = _correlated_scores()
    w = bootstrap_weights(y, np.where(y == 1, "gen", "real"), ["gen"], 300, seed=4)
    result = paired_bootstrap(y, a, b, w, "roc_auc", probability=False)
    diffs = np.array([roc_auc_score(y, a, sample_weight=r) - roc_auc_score(y, b, sample_weight=r) for r in w])
    assert result.diff == pytest.approx(roc_auc_score(y, a) - roc_auc_score(y, b))
    assert (result.ci_low, result.ci_high) == pytest.approx(tuple(np.quantile(diffs, [0.025, 0.975])))
    assert result.p == pytest.approx(min(1.0, 2 * min(np.mean(diffs <= 0), np.mean(diffs >= 0))))


def test_paired_bootstrap_unknown_metric_for_non_probabilities():
    y, a, b = _correlated_scores()
    with pytest.raises(ValueError, match="acc"):
        paired_bootstrap(y, a, b, np.ones((2, y.size)), "acc", probability=False)


def test_holm_hand_computed():
    # sorted 0.01, 0.02, 0.04, 0.5 -> 4*0.01, 3*0.02, max(2*0.04, .06), max(1*0.5, .08)
    np.testing.assert_allclose(holm([0.04, 0.01, 0.5, 0.02]), [0.08, 0.04, 0.5, 0.06])
    out = holm([0.3, np.nan, 0.9])
    assert np.isnan(out[1]) and out[0] == pytest.approx(0.6) and out[2] == pytest.approx(0.9)
    assert holm([0.6, 0.7]).tolist() == [1.0, 1.0]


# ---------------------------------------------------------------- group-aware bootstrap


def test_group_bootstrap_equals_image_bootstrap_for_singleton_groups():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 50)
    gens = np.where(y == 1, rng.choice(["sd", "gan"], 50), "real")
    names = sorted(set(gens[y == 1]))
    naive = bootstrap_weights(y, gens, names, 100, seed=9)
    grouped = bootstrap_weights(y, gens, names, 100, seed=9, groups=[f"g{i}" for i in range(50)][::-1])
    np.testing.assert_array_equal(naive, grouped)
    assert (naive.sum(axis=1) == 50).all()


def test_duplicated_groups_widen_the_interval():
    rng = np.random.default_rng(1)
    n_groups, copies = 40, 5
    y0 = np.repeat([0, 1], n_groups // 2)
    s0 = rng.normal(size=n_groups) + 0.8 * y0
    y, s = np.repeat(y0, copies), np.repeat(s0, copies)  # every image duplicated 5 times
    gens = np.where(y == 1, "sd", "real")
    groups = np.repeat(np.arange(n_groups), copies)
    kw = dict(probability=False, val_threshold=None, n_boot=400, seed=2)
    naive = {r["metric"]: r for r in evaluate_cell(y, gens, s, **kw) if r["generator"] == "all"}
    grouped = {r["metric"]: r for r in evaluate_cell(y, gens, s, groups=groups, **kw) if r["generator"] == "all"}
    width = lambda r: r["ci_high"] - r["ci_low"]
    assert grouped["roc_auc"]["value"] == naive["roc_auc"]["value"]
    assert width(grouped["roc_auc"]) > 1.5 * width(naive["roc_auc"])


def test_group_bootstrap_draws_whole_groups_and_mixed_groups_together():
    y = np.array([0, 0, 1, 1, 0, 1])
    gens = np.array(["real", "real", "sd", "sd", "real", "sd"])
    groups = ["a", "a", "b", "b", "c", "c"]  # c: a real image and its caption sibling
    w = bootstrap_weights(y, gens, ["sd"], 200, seed=0, groups=groups)
    assert (w[:, 0] == w[:, 1]).all() and (w[:, 2] == w[:, 3]).all() and (w[:, 4] == w[:, 5]).all()
    assert (w[:, 4] == 1).all()  # the only mixed group is always drawn once


def test_cell_seed_does_not_depend_on_the_detector():
    assert cell_seed(0, "jpeg", 2) == cell_seed(0, "jpeg", 2) != cell_seed(0, "jpeg", 3) != cell_seed(1, "jpeg", 2)


# ---------------------------------------------------------------- robustness summaries


def test_normalised_area_hand_computed():
    # levels 0, 1, 2, 4 with values 1, .8, .6, .5: (.9 + .7 + 2 * .55) / 4 = 0.675
    assert normalised_area([0, 1, 2, 4], [1.0, 0.8, 0.6, 0.5]) == pytest.approx(0.675)
    assert normalised_area([0, 1], [0.9, 0.7]) == pytest.approx(0.8)
    assert np.isnan(normalised_area([0], [1.0]))


def _cells(rows):
    return pd.DataFrame(rows, columns=["detector", "perturbation", "severity", "value"])


def test_robustness_summary_hand_computed():
    cells = _cells([
        ("a", "none", 0, 0.9), ("a", "jpeg", 1, 0.8), ("a", "jpeg", 2, 0.6), ("a", "blur", 1, 0.7),
        ("r", "none", 0, 0.8), ("r", "jpeg", 1, 0.6), ("r", "jpeg", 2, 0.4), ("r", "blur", 1, 0.5),
    ])
    out = robustness_summary(cells, higher_is_better=True, reference="r")
    # a: nAUC jpeg = (.85 + .7) / 2 = .775, blur = .8, overall .7875; relative = .7 / .9; worst .6
    assert out.loc["a", "nauc:jpeg"] == pytest.approx(0.775)
    assert out.loc["a", "nauc"] == pytest.approx(0.7875)
    assert out.loc["a", "relative"] == pytest.approx(0.7 / 0.9)
    assert out.loc["a", "worst"] == pytest.approx(0.6)
    # CE jpeg = (.2 + .4) / (.4 + .6) = .6, blur = .3 / .5 = .6 -> mCE .6; the reference has mCE 1
    assert out.loc["a", "ce:jpeg"] == pytest.approx(0.6) and out.loc["a", "mce"] == pytest.approx(0.6)
    assert out.loc["r", "mce"] == pytest.approx(1.0)


def test_robustness_summary_lower_is_better():
    cells = _cells([("a", "none", 0, 0.1), ("a", "jpeg", 1, 0.2), ("a", "jpeg", 2, 0.4),
                    ("r", "none", 0, 0.2), ("r", "jpeg", 1, 0.3), ("r", "jpeg", 2, 0.5)])
    out = robustness_summary(cells, higher_is_better=False, reference="r")
    assert out.loc["a", "worst"] == pytest.approx(0.4)
    assert out.loc["a", "mce"] == pytest.approx(0.6 / 0.8)  # the error is the value itself
    assert "mce" not in robustness_summary(cells, higher_is_better=False).columns


def test_overall_nauc_is_nan_when_a_perturbation_is_missing():
    """A detector without blur cells must not look better by averaging only the perturbations it has."""
    cells = _cells([
        ("a", "none", 0, 0.9), ("a", "jpeg", 1, 0.8), ("a", "blur", 1, 0.7),
        ("b", "none", 0, 0.9), ("b", "jpeg", 1, 0.8),
    ])
    out = robustness_summary(cells, higher_is_better=True)
    assert out.loc["b", "nauc:jpeg"] == pytest.approx(0.85) and np.isnan(out.loc["b", "nauc:blur"])
    assert np.isnan(out.loc["b", "nauc"])
    assert out.loc["a", "nauc"] == pytest.approx((0.85 + 0.8) / 2)


def test_corruption_error_counts_only_the_levels_the_reference_has():
    """CE = sum_s E_s / sum_s E_s(reference) over the reference's levels: a level the reference lacks
    (jpeg 3 here) adds nothing to the numerator."""
    cells = _cells([
        ("a", "none", 0, 0.9), ("a", "jpeg", 1, 0.8), ("a", "jpeg", 2, 0.6), ("a", "jpeg", 3, 0.1),
        ("r", "none", 0, 0.8), ("r", "jpeg", 1, 0.6), ("r", "jpeg", 2, 0.4),
    ])
    out = robustness_summary(cells, higher_is_better=True, reference="r")
    assert out.loc["a", "ce:jpeg"] == pytest.approx((0.2 + 0.4) / (0.4 + 0.6))
    assert out.loc["a", "mce"] == pytest.approx(0.6)


def test_corruption_error_of_a_detector_missing_a_perturbation_is_nan():
    cells = _cells([
        ("a", "none", 0, 0.9), ("a", "jpeg", 1, 0.8),
        ("r", "none", 0, 0.8), ("r", "jpeg", 1, 0.6), ("r", "blur", 1, 0.5),
    ])
    out = robustness_summary(cells, higher_is_better=True, reference="r")
    assert out.loc["a", "ce:jpeg"] == pytest.approx(0.5) and np.isnan(out.loc["a", "ce:blur"])
    assert np.isnan(out.loc["a", "mce"]) and out.loc["r", "mce"] == pytest.approx(1.0)


def test_level_zero_cells_of_a_perturbation_are_clean_not_perturbed():
    """A grid may list jpeg:0 (the identity); it is no perturbed cell for relative or worst."""
    cells = _cells([("a", "none", 0, 0.9), ("a", "jpeg", 0, 0.1), ("a", "jpeg", 1, 0.8), ("a", "jpeg", 2, 0.6)])
    out = robustness_summary(cells, higher_is_better=True)
    assert out.loc["a", "worst"] == pytest.approx(0.6)
    assert out.loc["a", "relative"] == pytest.approx(0.7 / 0.9)


def test_cell_seed_is_pinned():
    """The bootstrap seed of a cell decides every published interval: a change of formula changes them all."""
    assert cell_seed(0, "jpeg", 3) == 0xCA900891
    assert cell_seed(0, "jpeg", 3) != cell_seed(0, "jpeg", 2) != cell_seed(1, "jpeg", 2)


def test_seed_differences_per_seed_with_thresholds():
    """One difference per training seed: each seed's metric of a minus b on all the images."""
    y = np.array([0, 0, 0, 1, 1, 1])
    a = np.array([[0.1, 0.2, 0.3, 0.8, 0.9, 0.25], [0.1, 0.2, 0.3, 0.8, 0.9, 0.95]])
    b = np.array([[0.6, 0.2, 0.3, 0.1, 0.9, 0.95], [0.1, 0.2, 0.3, 0.8, 0.9, 0.95]])
    auc = seed_differences(y, a, b, "roc_auc", probability=True)
    assert auc.tolist() == pytest.approx([roc_auc_score(y, a[0]) - roc_auc_score(y, b[0]), 0.0])
    acc = seed_differences(y, a, b, "acc_at_val_threshold", probability=True, thresholds=([0.5, 0.85], [0.5, 0.5]))
    # seed 0: a at 0.5 gets 5/6, b at 0.5 gets 4/6; seed 1: a at 0.85 gets 5/6, b at 0.5 gets 6/6
    assert acc.tolist() == pytest.approx([1 / 6, -1 / 6])
    natural = seed_differences(y, a, b, "acc", probability=True)  # at 0.5: seed 0 5/6 vs 4/6, seed 1 6/6 vs 6/6
    assert natural.tolist() == pytest.approx([1 / 6, 0.0])
    single = seed_differences(y, a[0], b[0], "ap", probability=False)
    assert single.shape == (1,)


def test_normalised_area_sorts_the_levels_and_divides_by_the_span():
    assert normalised_area([2, 0, 1], [0.6, 1.0, 0.8]) == pytest.approx((0.9 + 0.7) / 2)
    assert normalised_area([1, 3], [0.8, 0.4]) == pytest.approx(0.6)  # the mean of the curve over [1, 3]


def test_summary_index_is_named_and_an_unknown_reference_is_a_key_error():
    cells = _cells([("a", "none", 0, 0.9), ("a", "jpeg", 1, 0.8)])
    assert robustness_summary(cells, higher_is_better=True).index.name == "detector"
    with pytest.raises(KeyError) as error:
        robustness_summary(cells, higher_is_better=True, reference="r")
    assert error.value.args == ("r",)


def test_corruption_error_against_a_flawless_reference_is_nan():
    """A reference with no error at any level gives no denominator: CE is undefined, not infinite."""
    cells = _cells([("a", "none", 0, 0.9), ("a", "jpeg", 1, 0.8), ("r", "none", 0, 1.0), ("r", "jpeg", 1, 1.0)])
    out = robustness_summary(cells, higher_is_better=True, reference="r")
    assert np.isnan(out.loc["a", "ce:jpeg"]) and np.isnan(out.loc["a", "mce"])


# ---------------------------------------------------------------- edge cases of the paired statistics


def _nan_difference(result) -> bool:
    return all(isinstance(v, float) and np.isnan(v) for v in (result.ci_low, result.ci_high, result.p))


def test_paired_bootstrap_without_replicates_gives_the_values_and_no_interval():
    y, a, b = _correlated_scores()
    result = paired_bootstrap(y, a, b, np.zeros((0, y.size)), "roc_auc", probability=False)
    assert (result.value_a, result.value_b) == (pytest.approx(roc_auc_score(y, a)), pytest.approx(roc_auc_score(y, b)))
    assert result.diff == pytest.approx(roc_auc_score(y, a) - roc_auc_score(y, b)) and _nan_difference(result)
    one = paired_bootstrap(y, a, b, np.ones((1, y.size)), "roc_auc", probability=False)  # one replicate: an interval
    assert one.ci_low == one.ci_high == pytest.approx(one.diff) and one.p == (0.0 if one.diff else 1.0)


def test_paired_bootstrap_of_an_undefined_metric_is_nan_throughout():
    y = np.ones(6)  # no real image: AUC undefined
    result = paired_bootstrap(y, np.linspace(0, 1, 6), np.linspace(1, 0, 6), np.ones((3, 6)), "roc_auc",
                              probability=False)
    assert all(isinstance(v, float) and np.isnan(v) for v in (result.value_a, result.value_b, result.diff))
    assert _nan_difference(result)


def test_paired_bootstrap_p_value_counts_ties_at_zero_on_both_sides():
    """Replicates whose difference is exactly 0 count for both tails: identical detectors give p = 1 (not 2), and
    a difference that is 0 in most replicates is far from significant."""
    y, a, _ = _correlated_scores()
    w = bootstrap_weights(y, np.where(y == 1, "gen", "real"), ["gen"], 200, seed=2)
    assert paired_bootstrap(y, a, a, w, "roc_auc", probability=False).p == 1.0
    b = a.copy()
    b[np.flatnonzero(y == 1)[0]] -= 5.0  # one generated image loses its rank in b only
    diffs = np.array([roc_auc_score(y, a, sample_weight=r) - roc_auc_score(y, b, sample_weight=r) for r in w])
    diffs[np.abs(diffs) < 1e-12] = 0.0  # replicates that did not draw the image: equal AUCs up to float noise
    assert (diffs == 0).mean() > 0.3 and (diffs > 0).any() and not (diffs < 0).any()
    expected = min(1.0, 2 * min(np.mean(diffs <= 0), np.mean(diffs >= 0)))
    assert 0.5 < expected < 1  # the ties decide it: without them p would be 0; a factor 3 would make it 1
    assert paired_bootstrap(y, a, b, w, "roc_auc", probability=False).p == pytest.approx(expected)
    assert paired_bootstrap(y, b, a, w, "roc_auc", probability=False).p == pytest.approx(expected)  # both tails


def test_paired_bootstrap_averages_per_seed_rows_with_their_own_thresholds():
    y = np.array([0, 0, 0, 1, 1, 1])
    a = np.array([[0.1, 0.2, 0.6, 0.7, 0.8, 0.9], [0.1, 0.2, 0.3, 0.7, 0.8, 0.4]])
    b = np.array([[0.1, 0.2, 0.3, 0.7, 0.8, 0.9], [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]])
    result = paired_bootstrap(y, a, b, np.zeros((0, 6)), "acc_at_val_threshold", probability=True,
                              thresholds=([0.5, 0.35], [0.5, 0.5]))
    # a: seed 0 at 0.5 calls the real 0.6 generated (5/6); seed 1 at 0.35 calls the fake 0.4 generated (6/6)
    assert result.value_a == pytest.approx((5 / 6 + 1) / 2) and result.value_b == 1.0
    natural = paired_bootstrap(y, a[0], b[0], np.zeros((0, 6)), "acc", probability=True)
    assert natural.value_a == pytest.approx(5 / 6)
    with pytest.raises(ValueError) as error:
        paired_bootstrap(y, a[0], b[0], np.zeros((0, 6)), "acc", probability=False)
    assert str(error.value) == ("metric 'acc' is not computed for these detectors (available: roc_auc, ap, "
                                "tpr_at_fpr_5, tpr_at_fpr_1, eer)")


def test_delong_needs_two_images_of_each_class():
    for y in ([1, 0, 0, 0], [1, 1, 0, 1], [1, 1, 0, 0, 0]):
        m, n = sum(y), len(y) - sum(y)
        if m >= 2 and n >= 2:
            assert delong_covariance(y, [np.arange(len(y))])[0].shape == (1,)
            continue
        with pytest.raises(ValueError) as error:
            delong_covariance(y, [np.arange(len(y))])
        assert str(error.value) == f"DeLong needs at least two images of each class, got {m} generated and {n} real"


def test_delong_placements_of_the_negatives():
    """Negatives' placements (share of positives above them) enter the variance: pinned by hand on a case where
    the negatives' term is all of it (every positive outscores every negative but one)."""
    # positives 0.9, 0.8; negatives 0.1, 0.2, 0.85: V10 = (1, 2/3), V01 = (1, 1, 1/2); AUC 5/6
    aucs, cov = delong_covariance([1, 1, 0, 0, 0], [[0.9, 0.8, 0.1, 0.2, 0.85]])
    assert aucs[0] == pytest.approx(5 / 6)
    assert cov[0, 0] == pytest.approx(np.var([1, 2 / 3], ddof=1) / 2 + np.var([1, 1, 0.5], ddof=1) / 3)


def test_delong_over_several_seeds_tests_the_mean_difference():
    y, a, b = _correlated_scores()
    a2, b2 = np.vstack([a, a + 0.05 * y]), np.vstack([b, b])
    aucs, cov = _brute_force_delong(y, np.vstack([a2, b2]))
    weights = np.array([0.5, 0.5, -0.5, -0.5])
    test = delong_test(y, a2, b2)
    assert test.diff == pytest.approx(weights @ aucs)
    assert test.se == pytest.approx(np.sqrt(weights @ cov @ weights))
    assert test.value_a == pytest.approx(aucs[:2].mean()) and test.value_b == pytest.approx(aucs[2:].mean())


def test_contrast_without_variance_is_certain():
    """se = 0: a zero contrast has p = 1, any other p = 0; the interval collapses on the value."""
    aucs, cov = np.array([0.9, 0.7]), np.zeros((2, 2))
    differ = contrast_test(aucs, cov, np.array([1.0, -1.0]))
    assert differ.p == 0.0 and differ.diff == pytest.approx(0.2) and differ.ci_low == differ.ci_high == differ.diff
    same = contrast_test(np.array([0.7, 0.7]), cov, np.array([1.0, -1.0]))
    assert same.p == 1.0 and same.diff == 0.0
    tiny = contrast_test(np.array([0.7 + 5e-13, 0.7]), cov, np.array([1.0, -1.0]))
    assert tiny.p == 1.0  # below 1e-12: float noise, no difference
    small = contrast_test(np.array([0.7 + 1e-6, 0.7]), cov, np.array([1.0, -1.0]))
    assert small.p == 0.0
    barely = contrast_test(aucs, np.diag([1e-24, 0.0]) * 1.0000001, np.array([1.0, -1.0]))
    assert barely.se == pytest.approx(1e-12, rel=1e-6) and barely.p < 1e-100  # se just above the floor: a z-test


def test_delong_takes_two_images_of_each_class():
    aucs, _ = delong_covariance([1, 1, 0, 0], [[0.9, 0.4, 0.5, 0.1]])
    assert aucs[0] == pytest.approx(0.75)


def test_paired_bootstrap_reports_both_values_on_all_the_images():
    y, a, b = _correlated_scores()
    w = bootstrap_weights(y, np.where(y == 1, "gen", "real"), ["gen"], 50, seed=4)
    result = paired_bootstrap(y, a, b, w, "roc_auc", probability=False)
    assert result.value_a == pytest.approx(roc_auc_score(y, a), abs=1e-12)
    assert result.value_b == pytest.approx(roc_auc_score(y, b), abs=1e-12)
    assert isinstance(result.value_a, float) and isinstance(result.value_b, float)
