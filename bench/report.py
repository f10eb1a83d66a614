"""Reports generated from the result store: leaderboards (Markdown, LaTeX, HTML), figures, report.html.

Everything presented is computed from ``results.parquet``, ``scores.parquet``
and ``run.json`` (see ``bench.schema``); nothing is hand-edited, so a report
can always be regenerated from a run or a stored reference.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import pandas as pd
from matplotlib.figure import Figure
from tabulate import tabulate

from bench import atomic
from bench.errors import BenchError
from bench.figures import (
    ALL_GENERATORS,
    CLEAN,
    attribution_detectors,
    detector_colors,
    plot_confusion_matrix,
    plot_generator_heatmap,
    plot_robustness_curves,
    save_figure,
)
from bench.report_html import Section, html_page, render_report
from bench.schema import LEADERBOARD_MD, RESULT_COLUMNS, RESULTS_PARQUET, RUN_JSON, SCORE_COLUMNS, SCORES_PARQUET

log = logging.getLogger(__name__)

# A cell of the grid: what identifies one number across runs (run_id and weights excluded).
CELL_KEYS = ["detector", "dataset", "generator", "perturbation", "severity", "metric"]
SCORE_KEYS = ["detector", "dataset", "image_id", "perturbation", "severity"]
RANDOM_WEIGHTS = "random"
CURVE_METRICS = ("roc_auc", "acc_at_val_threshold")
LEADERBOARD_TEX = "leaderboard.tex"
LEADERBOARD_HTML = "leaderboard.html"
REPORT_HTML = "report.html"
FIGURES_DIR = "figures"
MEAN_PERTURBED = "mean_perturbed"
FRAME_FIXED = ["detector", "weights", "clean", "clean_ci_low", "clean_ci_high"]
LEGEND = (
    "Clean: value ± half-width of the 95% bootstrap CI. "
    "Perturbation columns: mean over severities ≥ 1. Mean perturbed: mean over every perturbed cell."
)
EMPTY_LEGEND = "No detector besides random-weight ones (sanity checks); pass --include-random to list them."


# ---------------------------------------------------------------- loading


def read_run(run_dir: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """One run or reference directory. A reference keeps no scores: an empty scores table stands in.

    run.json is written last (bench.store), so a directory without it is an unfinished run.
    """
    run_dir = Path(run_dir)
    for required in (RESULTS_PARQUET, RUN_JSON):
        if not (run_dir / required).is_file():
            raise BenchError(f"{run_dir}: no {required}; expected a finished run directory or a stored reference")
    results = pd.read_parquet(run_dir / RESULTS_PARQUET)
    scores_path = run_dir / SCORES_PARQUET
    scores = pd.read_parquet(scores_path) if scores_path.is_file() else pd.DataFrame(columns=SCORE_COLUMNS)
    record = json.loads((run_dir / RUN_JSON).read_text(encoding="utf-8"))
    return results, scores, record


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    """Concatenate, skipping empty tables (pandas would otherwise guess their dtypes)."""
    non_empty = [frame for frame in frames if not frame.empty]
    return pd.concat(non_empty, ignore_index=True) if non_empty else pd.DataFrame(columns=columns)


def _keep_last(frame: pd.DataFrame, keys: list[str], what: str) -> pd.DataFrame:
    """When runs overlap, the later run given wins; say so, since the earlier numbers disappear."""
    duplicated = frame.duplicated(keys, keep="last")
    if duplicated.any():
        log.warning("%d %s appear in more than one run; keeping those of the later run", int(duplicated.sum()), what)
    return frame[~duplicated].reset_index(drop=True)


def load_runs(run_dirs: Iterable[str | os.PathLike]) -> tuple[pd.DataFrame, pd.DataFrame, list[dict[str, Any]]]:
    """Merge several runs (e.g. one per detector) into one results table, one scores table and their records."""
    loaded = [read_run(run_dir) for run_dir in run_dirs]
    if not loaded:
        raise BenchError("no run directory given")
    results = _keep_last(_concat([r for r, _, _ in loaded], RESULT_COLUMNS), CELL_KEYS, "result cells")
    scores = _keep_last(_concat([s for _, s, _ in loaded], SCORE_COLUMNS), SCORE_KEYS, "scores")
    return results, scores, [record for _, _, record in loaded]


def drop_random(results_df: pd.DataFrame) -> pd.DataFrame:
    """Random-weight detectors are sanity checks (chance level), not contenders."""
    return results_df[results_df["weights"] != RANDOM_WEIGHTS]


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
    results_df: pd.DataFrame, metric: str = "roc_auc", dataset: str | None = None, include_random: bool = False
) -> pd.DataFrame:
    """One row per detector, best clean value first (ties: name).

    Columns: detector, weights, clean, clean_ci_low, clean_ci_high, one column
    per perturbation (mean over its severities > 0) and ``mean_perturbed``
    (mean over every perturbed cell). Only the ``generator == "all"`` rows
    count. ``attrs`` carries metric, dataset and higher_is_better for the renderers.
    """
    cells = _metric_rows(results_df, metric)
    dataset = _only_dataset(cells, dataset)
    cells = cells[cells["dataset"] == dataset]
    higher_is_better = bool(cells["higher_is_better"].iloc[0])
    if not include_random:
        cells = drop_random(cells)  # may leave no row: a run of random-weight detectors only
    frame = _aggregate(cells).sort_values(
        ["clean", "detector"], ascending=[not higher_is_better, True], na_position="last", ignore_index=True
    )
    frame.attrs = {"metric": metric, "dataset": dataset, "higher_is_better": higher_is_better}
    return frame


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
    value_columns = [c for c in frame.columns if c not in FRAME_FIXED]
    names = {MEAN_PERTURBED: "Mean perturbed"}
    headers = ["Detector", "Weights", f"Clean {arrow}"] + [f"{escape(names.get(c, c))} {arrow}" for c in value_columns]
    rows = [
        [escape(row["detector"]), escape(row["weights"]), _clean_cell(row, pm, missing)]
        + [_fmt(row[c], missing) for c in value_columns]
        for _, row in frame.iterrows()
    ]
    return headers, rows


def _legend(frame: pd.DataFrame) -> str:
    return LEGEND if len(frame) else EMPTY_LEGEND


def _join(singular: str, plural: str, values: Sequence[Any], code: Callable[[str], str]) -> str:
    """'seed: 0' / 'seeds: 0, 1' / 'seed: unknown'."""
    if not values:
        return f"{singular}: unknown"
    return f"{plural if len(values) > 1 else singular}: " + ", ".join(code(str(v)) for v in values)


def _contributing_runs(frame: pd.DataFrame, results_df: pd.DataFrame) -> list[str]:
    attrs = frame.attrs
    rows = results_df[(results_df["dataset"] == attrs["dataset"]) & (results_df["metric"] == attrs["metric"])]
    return sorted(rows["run_id"].astype(str).unique())


def _provenance(
    frame: pd.DataFrame, results_df: pd.DataFrame, run_records: list[dict[str, Any]], code: Callable[[str], str]
) -> str:
    """Which data (name + hash), weights, seed and run the table came from, in one line."""
    dataset = frame.attrs["dataset"]
    run_ids = _contributing_runs(frame, results_df)
    records = [r for r in run_records if str(r.get("run_id")) in run_ids]
    hashes = sorted({str(h) for r in records if (h := ((r.get("datasets") or {}).get(dataset) or {}).get("hash"))})
    seeds = sorted({r["seed"] for r in records if r.get("seed") is not None})
    direction = "higher" if frame.attrs["higher_is_better"] else "lower"
    protocols = sorted({p for r in records if (p := _protocol(r.get("config") or {}))})
    return "; ".join(
        [
            f"{frame.attrs['metric']} ({direction} is better) on dataset {code(dataset)}",
            _join("dataset hash", "dataset hashes", hashes, code),
            *protocols,
            _join("weights", "weights", sorted(frame["weights"].astype(str).unique()), str),
            _join("seed", "seeds", seeds, str),
            _join("run", "runs", run_ids, code),
        ]
    )


def _protocol(config: dict[str, Any]) -> str:
    """The generalisation protocol of a run in words, or "" for the plain within-dataset split."""
    parts = []
    if config.get("train_on") and config.get("train_on") != config.get("dataset"):
        parts.append(f"trained on {config['train_on']}")
    if config.get("train_generators"):
        parts.append(f"trained on generators {','.join(config['train_generators'])}")
    if config.get("test_generators"):
        parts.append(f"tested on generators {','.join(config['test_generators'])}")
    return ", ".join(parts)


def leaderboard_markdown(frame: pd.DataFrame, results_df: pd.DataFrame, run_records: list[dict[str, Any]]) -> str:
    """Provenance line, pipe table (tabulate), legend line."""
    headers, rows = _table(frame, ("↓", "↑"), "±", "–", str)
    table = tabulate(rows, headers=headers, tablefmt="pipe", disable_numparse=True, colalign=_alignment(headers))
    return f"{_provenance(frame, results_df, run_records, lambda s: f'`{s}`')}\n\n{table}\n\n{_legend(frame)}\n"


def _alignment(headers: list[str]) -> tuple[str, ...]:
    return ("left", "left") + ("right",) * (len(headers) - 2)


_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
    "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(char, char) for char in text)


def leaderboard_latex(frame: pd.DataFrame, results_df: pd.DataFrame, run_records: list[dict[str, Any]]) -> str:
    """A booktabs tabular to ``\\input`` into a table environment; provenance and legend as comments."""
    headers, rows = _table(frame, (r"$\downarrow$", r"$\uparrow$"), r"$\pm$", "--", latex_escape)
    lines = [
        f"% {_provenance(frame, results_df, run_records, str)}",
        f"% {_legend(frame)}",
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
    headers, rows = _table(frame, ("↓", "↑"), "±", "–", str)
    table = tabulate(rows, headers=headers, tablefmt="html", disable_numparse=True, colalign=_alignment(headers))
    provenance = _provenance(frame, results_df, run_records, lambda s: f"<code>{html.escape(s)}</code>")
    return f'<p class="provenance">{provenance}</p>\n{table}\n<p class="note">{html.escape(_legend(frame))}</p>'


# ---------------------------------------------------------------- write_report


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def _curve_metrics(results_df: pd.DataFrame, metric: str) -> list[str]:
    present = set(results_df["metric"])
    return [metric] + [m for m in CURVE_METRICS if m != metric and m in present]


@dataclass
class _Figures:
    """One dataset's saved figures as (caption, [png, pdf]) and notes on what was skipped."""

    directory: Path
    saved: list[tuple[str, list[Path]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, stem: str, caption: str, fig: Figure) -> None:
        self.saved.append((caption, save_figure(fig, self.directory / stem)))

    def add_or_note(self, stem: str, caption: str, fig: Figure | None, note: str) -> None:
        """Save ``fig``, or note why it is absent when there was nothing to draw."""
        if fig is None:
            self.notes.append(note)
        else:
            self.add(stem, caption, fig)


def _write_figures(
    results_df: pd.DataFrame, scores_df: pd.DataFrame, fig_dir: Path, metric: str, colors: dict[str, str]
) -> _Figures:
    """Draw and save one dataset's figures: curves, per-generator heatmap, confusion matrices."""
    figures = _Figures(fig_dir)
    for m in _curve_metrics(results_df, metric):
        fig = plot_robustness_curves(results_df, m, colors)
        note = f"no perturbed cells for {m}: curves skipped"
        figures.add_or_note(f"curves_{m}", f"Robustness curves: {m} vs severity", fig, note)
    heatmap = plot_generator_heatmap(results_df, metric)
    note = "no per-generator results: heatmap skipped"
    figures.add_or_note(f"generators_{metric}", f"Per-generator {metric}", heatmap, note)
    attribution = attribution_detectors(scores_df)
    if not attribution:
        figures.notes.append("no attribution detector with scores: no confusion matrices")
    for detector in attribution:
        fig = plot_confusion_matrix(scores_df, detector)
        figures.add(f"confusion_{_slug(detector)}", f"Confusion matrix: {detector}, clean", fig)
    return figures


def _leaderboard_frames(results_df: pd.DataFrame, metric: str, include_random: bool) -> dict[str, pd.DataFrame]:
    """One leaderboard per dataset, in name order."""
    datasets = sorted(results_df["dataset"].unique())
    return {ds: leaderboard_frame(results_df, metric, ds, include_random) for ds in datasets}


def _leaderboard_texts(
    frames: dict[str, pd.DataFrame], results_df: pd.DataFrame, run_records: list[dict[str, Any]]
) -> dict[str, str]:
    """File name -> text of leaderboard.md, .tex and .html, one block per dataset."""
    return {
        LEADERBOARD_MD: "<!-- Generated by `bench report`; do not edit by hand. -->\n\n"
        + "\n".join(leaderboard_markdown(frame, results_df, run_records) for frame in frames.values()),
        LEADERBOARD_TEX: "% Generated by `bench report`; do not edit by hand.\n"
        + "\n".join(leaderboard_latex(frame, results_df, run_records) for frame in frames.values()),
        LEADERBOARD_HTML: html_page(
            "Leaderboard", "\n".join(leaderboard_html(frame, results_df, run_records) for frame in frames.values())
        ),
    }


def _write_texts(out_dir: Path, texts: dict[str, str]) -> list[Path]:
    for name, text in texts.items():
        atomic.write_text(out_dir / name, text)
    return [out_dir / name for name in texts]


def _out_dir(run_dirs: Sequence[str | os.PathLike], out_dir: str | os.PathLike | None) -> Path:
    return Path(out_dir) if out_dir is not None else Path(run_dirs[0])


def write_leaderboards(
    run_dirs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike | None = None,
    metric: str = "roc_auc",
    include_random: bool = False,
) -> list[Path]:
    """Write leaderboard.md, .tex and .html only (no figures): cheap enough for the end of every run."""
    results, _, records = load_runs(run_dirs)
    texts = _leaderboard_texts(_leaderboard_frames(results, metric, include_random), results, records)
    return _write_texts(_out_dir(run_dirs, out_dir), texts)


def write_report(
    run_dirs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike | None = None,
    metric: str = "roc_auc",
    include_random: bool = False,
) -> list[Path]:
    """Write the leaderboards, figures/ and report.html into ``out_dir`` (default: the first run dir).

    One leaderboard and one set of figures per dataset. Parts without data
    (no perturbed cell, no attribution detector, ...) are skipped with a note
    in report.html. Returns the written paths.
    """
    results, scores, records = load_runs(run_dirs)
    shown = results if include_random else drop_random(results)
    scores = scores[scores["detector"].isin(shown["detector"].unique())]
    out = _out_dir(run_dirs, out_dir)
    colors = detector_colors(shown["detector"].unique())
    frames = _leaderboard_frames(results, metric, include_random)
    figures = {
        ds: _write_figures(shown[shown["dataset"] == ds], scores[scores["dataset"] == ds],
                           out / FIGURES_DIR / _slug(ds), metric, colors)
        for ds in frames
    }
    notes = [f"{ds}: {note}" for ds, dataset_figures in figures.items() for note in dataset_figures.notes]
    for note in notes:
        log.info("report: %s", note)
    pngs = {ds: [(caption, png) for caption, (png, _pdf) in figures[ds].saved] for ds in frames}
    sections = [Section(ds, leaderboard_html(frame, results, records), pngs[ds]) for ds, frame in frames.items()]
    leaderboards = _write_texts(out, _leaderboard_texts(frames, results, records))
    saved = [path for dataset_figures in figures.values() for _, paths in dataset_figures.saved for path in paths]
    return leaderboards + saved + _write_texts(out, {REPORT_HTML: render_report(sections, records, notes)})
