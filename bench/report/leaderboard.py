"""Leaderboards from the result store: one frame per dataset (clean value with its CI, the mean
over severities of each perturbation, the mean over every perturbed cell), rendered as Markdown,
LaTeX (booktabs) and HTML, each with a provenance header.

A run with several training seeds (``bench run --seeds``) gets every column per seed, then its mean
over the seeds, and the spread over the seeds (sd, min-max) of the clean and mean perturbed values
next to the bootstrap interval, which measures test-set sampling only.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import pandas as pd
from tabulate import tabulate

from bench.core.errors import BenchError
from bench.report.audit_section import shortcut_warning
from bench.report.escape import (html_code, html_text, latex_comment, latex_text, markdown_code,
                                 markdown_text)
from bench.report.figures import ALL_GENERATORS, CLEAN
from bench.report.runs import SEED, drop_random, seeds_of
from bench.report.summaries import robustness_summary


MEAN_PERTURBED = "mean_perturbed"
SUMMARY_COLUMNS = ("nauc", "relative", "worst", "mce")  # bench.report.summaries, after MEAN_PERTURBED
FRAME_FIXED = ["detector", "weights", "clean", "clean_ci_low", "clean_ci_high"]
LEGEND = (
    "Clean: value ± half-width of the 95% bootstrap CI. "
    "Perturbation columns: mean over severities ≥ 1. Mean perturbed: mean over every perturbed cell."
)
SUMMARY_LEGEND = (
    " nAUC: area under the metric-vs-severity curve normalised by the highest level, mean over perturbations."
    " Relative: mean perturbed / clean. Worst: the worst perturbed cell."
)
SEED_SPREAD = ("clean", MEAN_PERTURBED)  # columns whose spread over training seeds is shown
SEED_LEGEND = (" With {n} training seeds ({seeds}): every value is the mean over the seeds of the per-seed value"
               " (summaries too), ± the mean half-width of the per-seed bootstrap CI; 'seeds' columns: sd over the"
               " seeds (min–max); a training-free detector is the same under every seed.")
MCE_LEGEND = (" mCE: corruption error (1 - value; the value for lower-is-better metrics) summed over the levels,"
              " relative to {ref}, mean over perturbations.")
EMPTY_LEGEND = "No detector besides random-weight ones (sanity checks); pass --include-random to list them."


# ---------------------------------------------------------------- leaderboard frame


def _only_dataset(cells: pd.DataFrame, dataset: str | None) -> str:
    datasets = sorted(cells["dataset"].unique())
    if dataset is None and len(datasets) == 1:
        return datasets[0]
    if dataset in datasets:
        return dataset
    raise BenchError(f"choose a dataset: the results hold {', '.join(datasets) or 'none'} (got {dataset!r})")


def _metric_rows(results_df: pd.DataFrame, metric: str) -> pd.DataFrame:
    cells = results_df[(results_df["metric"] == metric) & (results_df["generator"] == ALL_GENERATORS)]
    if cells.empty:
        available = ", ".join(sorted(results_df["metric"].unique())) or "none"
        raise BenchError(f"no {metric!r} results; available metrics: {available}")
    return cells


def _aggregate(cells: pd.DataFrame) -> pd.DataFrame:
    """Per detector: weights, clean value and CI, mean per perturbation, mean over all perturbed cells."""
    weights = cells.groupby("detector")["weights"].first()
    clean = cells[cells["perturbation"] == CLEAN].set_index("detector")[["value", "ci_low", "ci_high"]]
    parts = [weights, clean.set_axis(["clean", "clean_ci_low", "clean_ci_high"], axis=1)]
    perturbed = cells[(cells["perturbation"] != CLEAN) & (cells["severity"] > 0)]
    if not perturbed.empty:
        per_perturbation = perturbed.pivot_table(index="detector", columns="perturbation", values="value")
        per_perturbation.columns.name = None
        parts += [per_perturbation, perturbed.groupby("detector")["value"].mean().rename(MEAN_PERTURBED)]
    return pd.concat(parts, axis=1).rename_axis("detector").reset_index()


def leaderboard_frame(
    results_df: pd.DataFrame, metric: str = "roc_auc", dataset: str | None = None, include_random: bool = False,
    reference_detector: str | None = None,
) -> pd.DataFrame:
    """One row per detector, best clean value first (ties: name).

    Columns: detector, weights, clean, clean_ci_low, clean_ci_high, one column
    per perturbation (mean over its severities > 0), ``mean_perturbed``
    (mean over every perturbed cell) and the robustness summaries ``nauc``,
    ``relative``, ``worst`` and, with ``reference_detector``, ``mce``
    (:mod:`bench.report.summaries`). Only the ``generator == "all"`` rows
    count. ``attrs`` carries metric, dataset, higher_is_better and the reference for the renderers.
    """
    cells = _metric_rows(results_df, metric)
    dataset = _only_dataset(cells, dataset)
    cells = cells[cells["dataset"] == dataset]
    higher_is_better = bool(cells["higher_is_better"].iloc[0])
    if not include_random:
        cells = drop_random(cells)  # may leave no row: a run of random-weight detectors only
    if reference_detector is not None and reference_detector not in set(cells["detector"]):
        known = ", ".join(sorted(cells["detector"].unique())) or "none"
        raise BenchError(f"--reference-detector {reference_detector!r} has no {metric!r} results on {dataset!r} "
                         f"(detectors: {known})")
    seeds = seeds_of(cells)
    if seeds:
        frame = _over_seeds([_seed_frame(cells[cells[SEED] == s], higher_is_better, reference_detector).assign(seed=s)
                             for s in seeds])
    else:
        frame = _seed_frame(cells, higher_is_better, reference_detector)
    frame = frame.sort_values(
        ["clean", "detector"], ascending=[not higher_is_better, True], na_position="last", ignore_index=True
    )
    frame.attrs = {"metric": metric, "dataset": dataset, "higher_is_better": higher_is_better,
                   "reference": reference_detector, **({"seeds": seeds} if len(seeds) > 1 else {})}
    return frame


def _seed_frame(cells: pd.DataFrame, higher_is_better: bool, reference_detector: str | None) -> pd.DataFrame:
    """The leaderboard columns of one training seed's cells (or of a single-seed run)."""
    summary = robustness_summary(cells, higher_is_better, reference_detector)
    summary = summary[[c for c in SUMMARY_COLUMNS if c in summary.columns]]
    return _aggregate(cells).join(summary, on="detector")


def _over_seeds(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Per detector the mean over seeds of every column, and for SEED_SPREAD columns the sample sd, min and
    max over the seeds (``COLUMN_sd``, ``COLUMN_min``, ``COLUMN_max``) and ``n_seeds``."""
    stacked = pd.concat(frames, ignore_index=True)
    by_detector = stacked.groupby("detector", sort=True)
    values = [c for c in stacked.columns if c not in ("detector", "weights", SEED)]
    parts = [by_detector["weights"].first(), by_detector[values].mean(), by_detector[SEED].nunique().rename("n_seeds")]
    for column in (c for c in SEED_SPREAD if c in stacked.columns):
        spread = by_detector[column].agg(["std", "min", "max"]).fillna({"std": 0.0})
        parts.append(spread.set_axis([f"{column}_sd", f"{column}_min", f"{column}_max"], axis=1))
    return pd.concat(parts, axis=1).rename_axis("detector").reset_index()


# ---------------------------------------------------------------- rendering


def _fmt(value: float, missing: str) -> str:
    return missing if pd.isna(value) else f"{value:.3f}"


def _clean_cell(row: pd.Series, pm: str, missing: str) -> str:
    half_width = (row["clean_ci_high"] - row["clean_ci_low"]) / 2
    value = _fmt(row["clean"], missing)
    return value if pd.isna(half_width) or pd.isna(row["clean"]) else f"{value} {pm} {half_width:.3f}"


def _table(
    frame: pd.DataFrame, arrows: tuple[str, str], pm: str, missing: str, escape: Callable[[str], str]
) -> tuple[list[str], list[list[str]]]:
    """Headers and display cells, shared by every output format; ``arrows`` = (lower, higher) is better."""
    arrow = arrows[frame.attrs["higher_is_better"]]
    spread = [f"{c}_{s}" for c in SEED_SPREAD for s in ("sd", "min", "max")] + ["n_seeds"]
    value_columns = [c for c in frame.columns if c not in FRAME_FIXED and c not in spread]
    names = {MEAN_PERTURBED: "Mean perturbed", "nauc": "nAUC", "relative": "Relative", "worst": "Worst",
             "mce": "mCE"}
    column_arrow = {"mce": arrows[False]}  # a corruption error: lower is better whatever the metric
    headers = ["Detector", "Weights", f"Clean {arrow}"] + [
        f"{escape(names.get(c, c))} {column_arrow.get(c, arrow)}" for c in value_columns
    ]
    rows = [
        [escape(row["detector"]), escape(row["weights"]), _clean_cell(row, pm, missing)]
        + [_fmt(row[c], missing) for c in value_columns]
        for _, row in frame.iterrows()
    ]
    for column in (c for c in reversed(SEED_SPREAD) if f"{c}_sd" in frame.columns):
        at = 3 if column == "clean" else 3 + value_columns.index(column) + 1
        headers.insert(at, f"{names.get(column, 'Clean')} seeds: sd (min–max)")
        for row, (_, values) in zip(rows, frame.iterrows()):
            row.insert(at, _spread_cell(values, column, missing))
    return headers, rows


def _spread_cell(row: pd.Series, column: str, missing: str) -> str:
    """'0.004 (0.905–0.918)': the sd over the training seeds and their range."""
    if pd.isna(row[f"{column}_sd"]):
        return missing
    return f"{row[f'{column}_sd']:.3f} ({_fmt(row[f'{column}_min'], missing)}–{_fmt(row[f'{column}_max'], missing)})"


def _legend(frame: pd.DataFrame, text: Callable[[str], str]) -> str:
    """The legend line; ``text`` escapes the names in it for the output format."""
    if not len(frame):
        return EMPTY_LEGEND
    legend = LEGEND + (SUMMARY_LEGEND if "nauc" in frame.columns else "")
    legend += MCE_LEGEND.format(ref=text(frame.attrs["reference"])) if "mce" in frame.columns else ""
    seeds = frame.attrs.get("seeds") or []
    return legend + (SEED_LEGEND.format(n=len(seeds), seeds=", ".join(map(str, seeds))) if len(seeds) > 1 else "")


def _join(singular: str, plural: str, values: Sequence[Any], code: Callable[[str], str]) -> str:
    """'seed: 0' / 'seeds: 0, 1' / 'seed: unknown'."""
    if not values:
        return f"{singular}: unknown"
    return f"{plural if len(values) > 1 else singular}: " + ", ".join(code(str(v)) for v in values)


def _contributing_runs(frame: pd.DataFrame, results_df: pd.DataFrame) -> list[str]:
    attrs = frame.attrs
    rows = results_df[(results_df["dataset"] == attrs["dataset"]) & (results_df["metric"] == attrs["metric"])]
    return sorted(rows["run_id"].astype(str).unique())


def _provenance(frame: pd.DataFrame, results_df: pd.DataFrame, run_records: list[dict[str, Any]],
                code: Callable[[str], str], text: Callable[[str], str]) -> str:
    """Which data (name + hash), weights, seed and run the table came from, in one line; ``code`` and ``text``
    escape a name for the output format (bench.report.escape), as code or as text."""
    dataset = frame.attrs["dataset"]
    run_ids = _contributing_runs(frame, results_df)
    records = [r for r in run_records if str(r.get("run_id")) in run_ids]
    hashes = sorted({str(h) for r in records if (h := ((r.get("datasets") or {}).get(dataset) or {}).get("hash"))})
    seeds = sorted({r["seed"] for r in records if r.get("seed") is not None})
    train_seeds = sorted({s for r in records for s in (r.get("train_seeds") or [r.get("train_seed", r.get("seed"))])
                          if s is not None})
    direction = "higher" if frame.attrs["higher_is_better"] else "lower"
    protocols = sorted({text(p) for r in records if (p := _protocol(r.get("config") or {}))})
    profiles = [text(note) for note in _profile_note(frame, results_df)]
    return "; ".join(
        [
            f"{text(frame.attrs['metric'])} ({direction} is better) on dataset {code(dataset)}",
            *profiles,
            _join("dataset hash", "dataset hashes", hashes, code),
            *protocols,
            _join("weights", "weights", sorted(frame["weights"].astype(str).unique()), text),
            _join("seed", "seeds", seeds, text),
            *([_join("training seed", "training seeds", train_seeds, text)] if train_seeds != seeds else []),
            _join("run", "runs", run_ids, code),
        ]
    )


def _profile_note(frame: pd.DataFrame, results_df: pd.DataFrame) -> list[str]:
    """Detectors shown with settings other than their authors' ("paper" profile), by profile; [] when none."""
    if "profile" not in results_df.columns:
        return []
    shown = results_df[results_df["detector"].isin(frame["detector"])
                       & (results_df["dataset"] == frame.attrs["dataset"])]
    shown = shown.dropna(subset=["profile"])
    by_profile = shown.groupby(shown["profile"].astype(str))["detector"].unique()
    return [f"NOT the paper settings: {profile} profile for {', '.join(sorted(map(str, names)))}"
            for profile, names in sorted(by_profile.items()) if profile != "paper"]


def _protocol(config: dict[str, Any]) -> str:
    """The generalisation protocol of a run in words, or "" for the plain within-dataset split."""
    parts = [f"generators {','.join(config['generators'])} only"] if config.get("generators") else []
    if config.get("train_on") and config.get("train_on") != config.get("dataset"):
        parts.append(f"trained on {config['train_on']}")
    if config.get("train_generators"):
        parts.append(f"trained on generators {','.join(config['train_generators'])}")
    if config.get("test_generators"):
        parts.append(f"tested on generators {','.join(config['test_generators'])}")
    if config.get("normalize"):
        parts.append(f"images normalised: {config['normalize']}")
    return ", ".join(parts)


def _warning(frame: pd.DataFrame, results_df: pd.DataFrame, run_records: list[dict[str, Any]]) -> str:
    """The shortcut warning of the contributing runs' audits (bench.report.audit_section), or ""."""
    run_ids = _contributing_runs(frame, results_df)
    return shortcut_warning([r for r in run_records if str(r.get("run_id")) in run_ids], frame.attrs["dataset"])


def leaderboard_markdown(frame: pd.DataFrame, results_df: pd.DataFrame, run_records: list[dict[str, Any]]) -> str:
    """Shortcut warning (when the audit found one), provenance line, pipe table (tabulate), legend line."""
    headers, rows = _table(frame, ("↓", "↑"), "±", "–", markdown_text)
    table = tabulate(rows, headers=headers, tablefmt="pipe", disable_numparse=True, colalign=_alignment(headers))
    warning = _warning(frame, results_df, run_records)
    head = f"**{markdown_text(warning)}**\n\n" if warning else ""
    provenance = _provenance(frame, results_df, run_records, markdown_code, markdown_text)
    return f"{head}{provenance}\n\n{table}\n\n{_legend(frame, markdown_text)}\n"


def _alignment(headers: list[str]) -> tuple[str, ...]:
    return ("left", "left") + ("right",) * (len(headers) - 2)


def leaderboard_latex(frame: pd.DataFrame, results_df: pd.DataFrame, run_records: list[dict[str, Any]]) -> str:
    """A booktabs tabular to ``\\input`` into a table environment; provenance and legend as comments."""
    headers, rows = _table(frame, (r"$\downarrow$", r"$\uparrow$"), r"$\pm$", "--", latex_text)
    warning = _warning(frame, results_df, run_records)
    lines = [  # a comment holds one line whatever the names hold: nothing can leave it
        *([f"% {latex_comment(warning)}"] if warning else []),
        f"% {latex_comment(_provenance(frame, results_df, run_records, str, str))}",
        f"% {latex_comment(_legend(frame, str))}",
        r"\begin{tabular}{ll" + "r" * (len(headers) - 2) + "}",
        r"\toprule",
        " & ".join(headers) + r" \\",
        r"\midrule",
        *(" & ".join(row) + r" \\" for row in rows),
        r"\bottomrule",
        r"\end{tabular}",
    ]
    return "\n".join(lines) + "\n"


def leaderboard_html(frame: pd.DataFrame, results_df: pd.DataFrame, run_records: list[dict[str, Any]]) -> str:
    """An HTML fragment (provenance, table, legend) for report.html and leaderboard.html."""
    headers, rows = _table(frame, ("↓", "↑"), "±", "–", str)  # tabulate's html format escapes every cell
    table = tabulate(rows, headers=headers, tablefmt="html", disable_numparse=True, colalign=_alignment(headers))
    provenance = _provenance(frame, results_df, run_records, html_code, html_text)
    warning = _warning(frame, results_df, run_records)
    head = f'<p class="warning">{html_text(warning)}</p>\n' if warning else ""
    legend = html_text(_legend(frame, str))
    return f'{head}<p class="provenance">{provenance}</p>\n{table}\n<p class="note">{legend}</p>'
