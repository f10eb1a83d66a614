"""Paired comparisons of detectors from the per-image scores of a run (``scores.parquet``).

``bench compare-detectors RUN A B``: per cell (perturbation x severity) the difference ``A - B`` of one
metric with its 95% interval and p-value (DeLong for ``roc_auc``, the paired bootstrap otherwise, on the
very draws the run used for its intervals: :mod:`bench.run.resample`), and Holm's correction across the
cells tested. The report's pairwise table: per pair of detectors, the mean over perturbed cells of the
AUC difference, tested with DeLong's covariance of all those AUCs (they share the images), Holm-corrected
across the pairs of the table.

Several training seeds (``bench run --seeds``) on one split: every test is of the mean over the seeds of
the per-seed difference, paired per seed (the seeds' scores are on the same images, so DeLong's covariance
of all their AUCs and the bootstrap replicates, each averaged over the seeds, stay exact). This is the
test-set uncertainty of these trained seeds; the spread over seeds is the leaderboard's. A run that drew
a split per seed (``--vary-split``) is compared one seed at a time (``--seed``).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from tabulate import tabulate

from bench.core.errors import BenchError
from bench.report.escape import markdown_code, markdown_text
from bench.report.runs import SEED, seeds_of
from bench.run.metrics import METRICS, MEAN
from bench.run.resample import bootstrap_weights, cell_seed
from bench.run.stats import contrast_test, delong_covariance, delong_test, holm, paired_bootstrap, seed_differences

ALPHA = 0.05
DEFAULT_BOOT = 200


@dataclass
class CellScores:
    """The scores of several detectors on one cell, aligned image by image."""

    image_ids: list
    labels: np.ndarray
    generators: np.ndarray
    groups: np.ndarray | None
    scores: dict[str, np.ndarray]


def cell_scores(scores: pd.DataFrame, detectors: list[str], perturbation: str, severity: int) -> CellScores | None:
    """Aligned by image_id in the order of the first detector (the run's test order); None when a detector
    has no scores on the cell or the detectors scored other images."""
    cell = scores[(scores["perturbation"] == perturbation) & (scores["severity"] == severity)]
    parts = [cell[cell["detector"] == d] for d in detectors]
    if any(p.empty for p in parts):
        return None
    first = parts[0]
    ids = list(first["image_id"])
    aligned = []
    for part in parts:
        indexed = part.set_index("image_id")
        if set(indexed.index) != set(ids) or indexed.index.has_duplicates:
            raise BenchError(f"{perturbation}:{severity}: the detectors scored different images; "
                             "compare detectors of one run")
        aligned.append(indexed.loc[ids, "score"].to_numpy(np.float64))
    group = first["group"] if "group" in first.columns else pd.Series(dtype=float)
    groups = None if group.isna().any() or group.empty else group.to_numpy()
    return CellScores(ids, first["label"].to_numpy(np.int64), first["generator"].to_numpy(object), groups,
                      dict(zip(detectors, aligned)))


def seed_cell_scores(by_seed: dict[int, pd.DataFrame], detectors: list[str], perturbation: str,
                     severity: int) -> list[CellScores] | None:
    """``cell_scores`` of every training seed (``by_seed``: the scores of each seed), all on the first
    seed's images in its order; None when a detector lacks a seed's scores on the cell."""
    cells = [cell_scores(part, detectors, perturbation, severity) for part in by_seed.values()]
    if any(c is None for c in cells):
        return None
    for c in cells[1:]:
        if c.image_ids != cells[0].image_ids:
            raise BenchError(f"{perturbation}:{severity}: the training seeds scored different images "
                             "(a split per seed); compare one seed at a time (--seed S)")
    return cells


def scores_by_seed(scores: pd.DataFrame, record: dict[str, Any], seed: int | None) -> dict[int, pd.DataFrame]:
    """The scores of each training seed to compare: ``seed`` alone when given, else every seed of a run
    whose split was the same under every seed."""
    seeds = seeds_of(scores)
    if not seeds:  # one training draw per detector
        if seed is not None and SEED in scores.columns and seed not in set(scores[SEED]):
            raise BenchError(f"no training seed {seed} in this run (it has: "
                             f"{', '.join(map(str, sorted(set(scores[SEED]))))})")
        return {0: scores}
    if seed is not None:
        if seed not in seeds:
            raise BenchError(f"no training seed {seed} in this run (it has: {', '.join(map(str, seeds))})")
        seeds = [seed]
    elif len(seeds) > 1 and (record.get("config") or {}).get("vary_split"):
        raise BenchError(f"the run drew a split per training seed (--vary-split): compare one seed at a time "
                         f"(--seed S, one of {', '.join(map(str, seeds))})")
    return {s: scores[scores[SEED] == s] for s in seeds}


def _seed_thresholds(record: dict[str, Any], detector: str, seeds: list[int]) -> list[float | None]:
    """The validation threshold of ``detector`` under each training seed (run.json's ``seed_runs``)."""
    default = ((record.get("detectors") or {}).get(detector) or {}).get("val_threshold")
    per_seed = {run.get("train_seed"): ((run.get("detectors") or {}).get(detector) or {}).get("val_threshold")
                for run in record.get("seed_runs") or []}
    return [per_seed.get(s, default) for s in seeds]


def _outputs_probability(record: dict[str, Any], results: pd.DataFrame, detector: str) -> bool:
    """Whether ``detector``'s scores are probabilities: run.json says so since record version 2; earlier
    stores hold probability metrics (acc, ece, ...) only for such detectors."""
    declared = ((record.get("detectors") or {}).get(detector) or {}).get("outputs_probability")
    if declared is not None:
        return bool(declared)
    return bool(((results["detector"] == detector) & (results["metric"] == "acc")).any())


def _run_settings(record: dict[str, Any], results: pd.DataFrame, a: str, b: str,
                  seeds: list[int]) -> tuple[int, int, dict, bool]:
    config = record.get("config") or {}
    seed = int(record.get("seed", config.get("seed", 0)) or 0)
    n_boot = int(config.get("bootstrap", DEFAULT_BOOT))
    thresholds = {d: _seed_thresholds(record, d, seeds) for d in (a, b)}
    probability = all(_outputs_probability(record, results, d) for d in (a, b))
    return seed, n_boot, thresholds, probability


def compare_detectors(results: pd.DataFrame, scores: pd.DataFrame, record: dict[str, Any], a: str, b: str,
                      metric: str = "roc_auc", generator: str = "all", seed: int | None = None) -> pd.DataFrame:
    """One row per cell both detectors scored: value_a, value_b, diff, ci_low, ci_high, p, p_holm,
    significant (p_holm <= 0.05), plus se (DeLong) and boot_low / boot_high for ``roc_auc``. With several
    training seeds, each value is the mean over the seeds (module docstring); ``seed`` picks one."""
    if metric not in METRICS or METRICS[metric].task != "binary":
        binary = ", ".join(n for n, info in METRICS.items() if info.task == "binary")
        raise BenchError(f"unknown or non-binary metric {metric!r} (one of: {binary})")
    if generator == MEAN:
        raise BenchError("--generator mean is not a set of images; give 'all' or a generator name")
    known = sorted(scores["detector"].unique())
    for d in (a, b):
        if d not in known:
            raise BenchError(f"detector {d!r} has no scores in this run (it has: {', '.join(known) or 'none'})")
    if a == b:
        raise BenchError("give two different detectors")
    by_seed = scores_by_seed(scores, record, seed)
    seed, n_boot, thresholds, probability = _run_settings(record, results, a, b, list(by_seed))
    labels = results.drop_duplicates(["perturbation", "severity"]).set_index(["perturbation", "severity"])
    rows = []
    for (perturbation, severity), _ in scores.groupby(["perturbation", "severity"], sort=False):
        seed_cells = seed_cell_scores(by_seed, [a, b], perturbation, int(severity))
        if seed_cells is None:
            continue
        cell = seed_cells[0]
        y, gens = cell.labels, cell.generators
        gen_names = sorted(set(gens[y == 1]))
        if generator != "all" and generator not in gen_names:
            raise BenchError(f"no generator {generator!r} in the scores (it has: {', '.join(gen_names)})")
        w = bootstrap_weights(y, gens, gen_names, n_boot, cell_seed(seed, perturbation, int(severity)), cell.groups)
        cols = np.ones(y.size, bool) if generator == "all" else (y == 0) | (gens == generator)
        sa = np.vstack([c.scores[a][cols] for c in seed_cells])
        sb = np.vstack([c.scores[b][cols] for c in seed_cells])
        boot = paired_bootstrap(y[cols], sa, sb, w[:, cols], metric, probability=probability,
                                thresholds=(thresholds[a], thresholds[b]))
        row = {"perturbation": perturbation, "severity": int(severity),
               "param_label": labels["param_label"].get((perturbation, severity), ""), "n": int(cols.sum())}
        if metric == "roc_auc" and min((y[cols] == 1).sum(), (y[cols] == 0).sum()) >= 2:
            test = delong_test(y[cols], sa, sb)
            row.update(vars(test), boot_low=boot.ci_low, boot_high=boot.ci_high)
        else:
            row.update({k: v for k, v in vars(boot).items() if k != "se"})
        if len(seed_cells) > 1:
            per_seed = seed_differences(y[cols], sa, sb, metric, probability=probability,
                                        thresholds=(thresholds[a], thresholds[b]))
            row.update(diff_sd=float(np.std(per_seed, ddof=1)), diff_min=float(per_seed.min()),
                       diff_max=float(per_seed.max()))
        rows.append(row)
    if not rows:
        raise BenchError(f"{a} and {b} share no scored cell")
    frame = pd.DataFrame(rows).sort_values(["perturbation", "severity"], key=_clean_first, ignore_index=True)
    frame["p_holm"] = holm(frame["p"])
    frame["significant"] = frame["p_holm"] <= ALPHA
    frame.attrs = {"a": a, "b": b, "metric": metric, "generator": generator, "n_boot": n_boot,
                   "seeds": list(by_seed)}
    return frame


def _clean_first(column: pd.Series) -> pd.Series:
    return column.map(lambda v: "" if v == "none" else v) if column.name == "perturbation" else column


def _p(value: float) -> str:
    return "–" if pd.isna(value) else ("<0.001" if value < 0.001 else f"{value:.3f}")


def format_comparison(frame: pd.DataFrame) -> str:
    """A plain-text table and a summary line."""
    attrs = frame.attrs
    a, b, metric = attrs["a"], attrs["b"], attrs["metric"]
    delong = "se" in frame.columns
    headers = ["cell", "n", a, b, "diff (A-B)", "95% CI", "p", "p (Holm)", ""]
    if delong:
        headers.insert(6, "bootstrap CI")
    spread = "diff_sd" in frame.columns  # several training seeds: the per-seed difference's sd (min–max)
    if spread:
        headers.insert(5, "diff seeds: sd (min–max)")
    rows = []
    for _, r in frame.iterrows():
        cell = "clean" if r["perturbation"] == "none" else f"{r['perturbation']}:{r['severity']} ({r['param_label']})"
        ci = f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"
        line = [cell, r["n"], f"{r['value_a']:.3f}", f"{r['value_b']:.3f}", f"{r['diff']:+.3f}", ci,
                _p(r["p"]), _p(r["p_holm"]), "*" if r["significant"] else ""]
        if delong:
            line.insert(6, "–" if pd.isna(r.get("boot_low")) else f"[{r['boot_low']:+.3f}, {r['boot_high']:+.3f}]")
        if spread:
            line.insert(5, f"{r['diff_sd']:.3f} ({r['diff_min']:+.3f}–{r['diff_max']:+.3f})")
        rows.append(line)
    method = "DeLong (CI: diff ± 1.96 se)" if delong else f"paired bootstrap ({attrs['n_boot']} replicates)"
    better = int((frame["significant"] & (frame["diff"] > 0)).sum())
    worse = int((frame["significant"] & (frame["diff"] < 0)).sum())
    direction = "higher" if METRICS[metric].higher_is_better else "lower"
    seeds = attrs.get("seeds") or []
    over = (f"mean over training seeds {', '.join(map(str, seeds))} (paired per seed; 'diff seeds': the per-seed "
            "difference's sd and range); " if len(seeds) > 1 else "")
    summary = (f"{metric} ({direction} is better), generator {attrs['generator']}, A = {a}, B = {b}; {over}test: {method}; "
               f"Holm over {frame['p'].notna().sum()} cells at alpha {ALPHA}: A - B significantly > 0 in {better}, "
               f"< 0 in {worse}, not significant in {len(frame) - better - worse} (* = significant)")
    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True) + "\n\n" + summary


# ---------------------------------------------------------------- the report's pairwise table


def pairwise_auc(scores: pd.DataFrame, detectors: list[str]) -> pd.DataFrame | None:
    """Detector x detector: mean over the perturbed cells both scored (and the training seeds) of
    ``AUC(row) - AUC(column)``; ``attrs["p_holm"]`` holds the Holm-adjusted DeLong p-values (same shape).
    None without perturbed cells. A run with a split per seed is tabled on its first seed."""
    cells = sorted({(p, int(s)) for p, s in zip(scores["perturbation"], scores["severity"]) if s > 0})
    by_seed = {s: scores[scores[SEED] == s] for s in seeds_of(scores)} or {0: scores}
    images = [set(part["image_id"]) for part in by_seed.values()]
    if any(i != images[0] for i in images[1:]):
        by_seed = dict(list(by_seed.items())[:1])
    diff = pd.DataFrame(np.nan, index=detectors, columns=detectors)
    pvals: dict[tuple[str, str], float] = {}
    for a, b in combinations(detectors, 2):
        blocks = [c for p, s in cells for c in (seed_cell_scores(by_seed, [a, b], p, s) or [])]
        blocks = [c for c in blocks if min((c.labels == 1).sum(), (c.labels == 0).sum()) >= 2]
        if not blocks or any(not np.array_equal(c.labels, blocks[0].labels) for c in blocks):
            continue
        stacked = np.vstack([c.scores[d] for c in blocks for d in (a, b)])
        aucs, cov = delong_covariance(blocks[0].labels, stacked)
        weights = np.tile([1.0, -1.0], len(blocks)) / len(blocks)
        test = contrast_test(aucs, cov, weights)
        diff.loc[a, b], diff.loc[b, a] = test.diff, -test.diff
        pvals[(a, b)] = test.p
    if not pvals:
        return None
    adjusted = dict(zip(pvals, holm(list(pvals.values()))))
    p_holm = pd.DataFrame(np.nan, index=detectors, columns=detectors)
    for (a, b), p in adjusted.items():
        p_holm.loc[a, b] = p_holm.loc[b, a] = p
    diff.attrs = {"p_holm": p_holm}
    return diff


PAIRWISE_LEGEND = ("Mean over perturbed cells of AUC(row) − AUC(column); * = significant at 0.05 after Holm's "
                   "correction across the pairs (DeLong's test of the mean difference, images shared by all cells).")


def _pairwise_rows(diff: pd.DataFrame) -> list[list[str]]:
    p_holm = diff.attrs["p_holm"]
    return [[d] + ["" if a == d else ("–" if pd.isna(diff.loc[d, a]) else
                   f"{diff.loc[d, a]:+.3f}{'*' if p_holm.loc[d, a] <= ALPHA else ''}") for a in diff.columns]
            for d in diff.index]


def pairwise_markdown(diff: pd.DataFrame, dataset: str) -> str:
    rows = [[markdown_text(row[0]), *row[1:]] for row in _pairwise_rows(diff)]
    table = tabulate(rows, headers=["row − column", *map(markdown_text, diff.columns)], tablefmt="pipe",
                     disable_numparse=True)
    return f"Pairwise roc_auc on dataset {markdown_code(dataset)}\n\n{table}\n\n{PAIRWISE_LEGEND}\n"


def pairwise_html(diff: pd.DataFrame, dataset: str) -> str:
    table = tabulate(_pairwise_rows(diff), headers=["row − column", *diff.columns], tablefmt="html",
                     disable_numparse=True)
    return (f"<h3>Pairwise roc_auc ({html.escape(dataset)})</h3>\n{table}\n"
            f'<p class="note">{html.escape(PAIRWISE_LEGEND)}</p>')
