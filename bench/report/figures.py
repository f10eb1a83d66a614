"""Figures generated from the result store: robustness curves, per-generator heatmaps, confusion matrices.

Each plotting function takes the store's long tables for one dataset and
returns a matplotlib ``Figure`` (or ``None`` when there is nothing to draw),
so callers and tests can inspect it before ``save_figure`` writes PNG and PDF.
Figures are drawn on the Agg canvas without pyplot: no global figure state,
works headless. Seaborn's "paper" context keeps every text >= 7 pt at the
width of a paper column (about 3.3 in per panel).

With several training seeds (a ``seed`` column with more than one value) a curve is the mean over
the seeds, its light band the mean bootstrap interval and its darker band the range over the seeds.
"""

from __future__ import annotations

import hashlib
import io
import math
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bench.core.atomic import write_bytes

CLEAN = "none"  # the perturbation name of the clean cell, shared by every perturbation's curve
ALL_GENERATORS = "all"
MEAN_GENERATOR = "mean"
REAL = "real"
SEED = "seed"
PANEL_WIDTH_IN = 3.3
PANEL_HEIGHT_IN = 2.4
MAX_COLUMNS = 3
PNG_DPI = 200
ANNOT_PT = 7
# A fixed palette: a detector keeps its colour whichever figure, report or machine draws it.
PALETTE: list[str] = sns.color_palette("tab10").as_hex() + sns.color_palette("Dark2").as_hex()


def _hash_slot(name: str) -> int:
    """Palette slot from a hash of the name; hashlib, because Python's hash() is salted per process."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big") % len(PALETTE)


def _free_slot(start: int, used: set[int]) -> int:
    """First free slot from ``start`` on; ``start`` itself when every colour is taken."""
    for step in range(len(PALETTE)):
        slot = (start + step) % len(PALETTE)
        if slot not in used:
            return slot
    return start


def detector_colors(names: Iterable[str]) -> dict[str, str]:
    """A stable colour per detector name.

    The colour comes from a hash of the name, so adding or removing a detector
    does not repaint the others. Within one set, a clash moves the later name
    (in sorted order) to the next free colour, so the result does not depend on
    the order of ``names``.
    """
    colors: dict[str, str] = {}
    used: set[int] = set()
    for name in sorted(set(names)):
        slot = _free_slot(_hash_slot(name), used)
        used.add(slot)
        colors[name] = PALETTE[slot]
    return colors


@contextmanager
def _style() -> Iterator[None]:
    """Seaborn styling scoped to the figure being built; rcParams are read when artists are created."""
    with sns.axes_style("whitegrid"), sns.plotting_context("paper"):
        yield


def _new_figure(width_in: float, height_in: float) -> Figure:
    fig = Figure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, stem: Path) -> list[Path]:
    """Write ``stem``.png (raster, for HTML) and ``stem``.pdf (vector, for papers).

    Each is rendered in memory and then written atomically: a full disk is the OSError of our write (one
    line from the CLI), never a half-finished PDF writer failing in its own cleanup (AttributeError,
    zlib.error)."""
    paths = []
    for fmt, dpi in (("png", PNG_DPI), ("pdf", None)):
        path = Path(stem).with_name(f"{Path(stem).name}.{fmt}")  # not with_suffix: names hold dots
        rendered = io.BytesIO()
        fig.savefig(rendered, format=fmt, dpi=dpi)
        write_bytes(path, rendered.getvalue())
        paths.append(path)
    return paths


def _direction_arrow(cells: pd.DataFrame) -> str:
    return "↑" if bool(cells["higher_is_better"].iloc[0]) else "↓"


def _metric_cells(results_df: pd.DataFrame, metric: str, generator: str | None = ALL_GENERATORS) -> pd.DataFrame:
    cells = results_df[results_df["metric"] == metric]
    return cells if generator is None else cells[cells["generator"] == generator]


def _is_perturbed(cells: pd.DataFrame) -> pd.Series:
    return (cells["perturbation"] != CLEAN) & (cells["severity"] > 0)


def _curve(cells: pd.DataFrame, perturbation: str) -> pd.DataFrame:
    """A perturbation's curve: the shared clean cell as severity 0, then its own severities."""
    own = cells[(cells["perturbation"] == perturbation) & (cells["severity"] > 0)]
    clean = cells[cells["perturbation"] == CLEAN]
    return pd.concat([clean, own]).sort_values("severity")


def _plot_curve_panel(ax: Axes, curve: pd.DataFrame, title: str, colors: dict[str, str]) -> None:
    """Levels are evenly spaced whatever their severity numbers, so a sparse pick (1, 8) keeps labels apart."""
    ticks = curve.drop_duplicates("severity")
    position = {severity: index for index, severity in enumerate(ticks["severity"])}
    for detector, rows in curve.groupby("detector", sort=True):
        levels = rows.groupby("severity", sort=True)
        mean = levels[["value", "ci_low", "ci_high"]].mean()  # one row per level unless there are seeds
        x = mean.index.map(position)
        color = colors[detector]
        ax.plot(x, mean["value"], marker="o", markersize=3, color=color, label=detector)
        ax.fill_between(x, mean["ci_low"], mean["ci_high"], color=color, alpha=0.2, linewidth=0)
        low, high = levels["value"].min(), levels["value"].max()
        if SEED in rows.columns and rows[SEED].nunique() > 1 and (high - low).max() > 0:  # a training-free one: none
            ax.fill_between(x, low, high, color=color, alpha=0.45, linewidth=0)
    ax.set_xticks(range(len(ticks)), ticks["param_label"].tolist(), rotation=30, ha="right")
    ax.set_title(title)


def _add_detector_legend(fig: Figure, detectors: list[str], colors: dict[str, str]) -> None:
    """One legend for all panels, listing every detector even if a panel lacks its line."""
    handles = [Line2D([], [], color=colors[name], marker="o", markersize=3, label=name) for name in detectors]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), MAX_COLUMNS), frameon=False)


def plot_robustness_curves(
    results_df: pd.DataFrame, metric: str = "roc_auc", colors: dict[str, str] | None = None
) -> Figure | None:
    """Metric vs severity, one panel per perturbation, one line (with CI band) per detector.

    ``results_df`` holds one dataset. Returns None when there is no perturbed
    cell to draw (a clean-only run) or the metric is absent.
    """
    cells = _metric_cells(results_df, metric)
    perturbations = sorted(cells.loc[_is_perturbed(cells), "perturbation"].unique())
    if not perturbations:
        return None
    colors = colors or detector_colors(cells["detector"])
    ncols = min(len(perturbations), MAX_COLUMNS)
    nrows = math.ceil(len(perturbations) / ncols)
    with _style():
        fig = _new_figure(PANEL_WIDTH_IN * ncols, PANEL_HEIGHT_IN * nrows + 0.5)
        for index, perturbation in enumerate(perturbations):
            ax = fig.add_subplot(nrows, ncols, index + 1)
            _plot_curve_panel(ax, _curve(cells, perturbation), perturbation, colors)
            if index % ncols == 0:
                ax.set_ylabel(f"{metric} {_direction_arrow(cells)}")
        _add_detector_legend(fig, sorted(cells["detector"].unique()), colors)
    return fig


def _generator_order(generators: Iterable[str]) -> list[str]:
    """Named generators alphabetically, then the mean over generators last."""
    names = sorted(set(generators) - {MEAN_GENERATOR})
    return names + ([MEAN_GENERATOR] if MEAN_GENERATOR in set(generators) else [])


def _worst_cells(perturbed: pd.DataFrame, higher_is_better: bool) -> pd.DataFrame:
    values = perturbed.groupby(["detector", "generator"])["value"]
    worst = values.min() if higher_is_better else values.max()
    return worst.unstack("generator")


def plot_generator_heatmap(results_df: pd.DataFrame, metric: str = "roc_auc") -> Figure | None:
    """Detector x generator: the clean value and the worst perturbed cell, on one shared colour scale.

    ``results_df`` holds one dataset. Returns None without per-generator rows.
    """
    cells = _metric_cells(results_df, metric, generator=None)
    cells = cells[cells["generator"] != ALL_GENERATORS]
    if SEED in cells.columns:  # several training seeds: their mean per cell
        keys = ["detector", "generator", "perturbation", "severity", "higher_is_better"]
        cells = cells.groupby(keys, as_index=False, sort=False)["value"].mean()
    if not set(cells["generator"]) - {MEAN_GENERATOR}:
        return None
    higher_is_better = bool(cells["higher_is_better"].iloc[0])
    clean = cells[cells["perturbation"] == CLEAN].pivot(index="detector", columns="generator", values="value")
    panels = [("clean", clean)]
    perturbed = cells[_is_perturbed(cells)]
    if not perturbed.empty:
        panels.append(("worst perturbed cell", _worst_cells(perturbed, higher_is_better)))
    order = _generator_order(cells["generator"])
    panels = [(title, grid.reindex(columns=order)) for title, grid in panels]
    values = np.concatenate([grid.to_numpy(dtype=float).ravel() for _, grid in panels])
    vmin, vmax = float(np.nanmin(values)), float(np.nanmax(values))
    n_detectors = cells["detector"].nunique()
    with _style():
        # Height: a row per detector plus room for the title and the (possibly long) generator names.
        fig = _new_figure(PANEL_WIDTH_IN * len(panels), 1.2 + 0.3 * n_detectors + 0.1 * max(map(len, order)))
        for index, (title, grid) in enumerate(panels):
            ax = fig.add_subplot(1, len(panels), index + 1)
            sns.heatmap(
                grid, ax=ax, annot=True, fmt=".2f", vmin=vmin, vmax=vmax,
                cmap="viridis" if higher_is_better else "viridis_r",
                cbar=index == len(panels) - 1, annot_kws={"size": ANNOT_PT},
            )
            ax.set_title(f"{metric} {_direction_arrow(cells)}, {title}")
            ax.set_xlabel("generator")
            ax.set_ylabel("detector" if index == 0 else "")
            if index:
                ax.tick_params(labelleft=False)
    return fig


def _clean_scores(scores_df: pd.DataFrame) -> pd.DataFrame:
    return scores_df[(scores_df["perturbation"] == CLEAN) & (scores_df["severity"] == 0)]


def attribution_detectors(scores_df: pd.DataFrame) -> list[str]:
    """Detectors that predicted a source on the clean cell."""
    clean = _clean_scores(scores_df)
    return sorted(clean.loc[clean["pred_source"].notna(), "detector"].unique())


def _source_order(sources: Iterable[str]) -> list[str]:
    """"real" first, then the generators alphabetically."""
    names = set(sources)
    return ([REAL] if REAL in names else []) + sorted(names - {REAL})


def plot_confusion_matrix(scores_df: pd.DataFrame, detector: str) -> Figure:
    """True source vs predicted source of one attribution detector on the clean cell.

    Cells are coloured by the row fraction (recall per source) and annotated
    with counts. Real images count as source "real" whatever their generator field holds.
    """
    clean = _clean_scores(scores_df)
    clean = clean[(clean["detector"] == detector) & clean["pred_source"].notna()]
    true = clean["generator"].where(clean["label"] == 1, REAL).rename("true source")
    pred = clean["pred_source"].astype(str).rename("predicted source")
    order = _source_order(set(true) | set(pred))
    counts = pd.crosstab(true, pred).reindex(index=order, columns=order, fill_value=0)
    fractions = counts.div(counts.sum(axis=1).replace(0, 1), axis=0)
    size = max(PANEL_WIDTH_IN, 0.45 * len(order) + 1.5)
    with _style():
        fig = _new_figure(size, size * 0.85)
        ax = fig.add_subplot(1, 1, 1)
        sns.heatmap(
            fractions, ax=ax, annot=counts, fmt="d", vmin=0, vmax=1, cmap="Blues",
            cbar_kws={"label": "fraction of true source"}, annot_kws={"size": ANNOT_PT},
        )
        ax.set_title(f"{detector} (clean)")
        ax.tick_params(axis="x", labelrotation=45)
        ax.tick_params(axis="y", labelrotation=0)
    return fig
