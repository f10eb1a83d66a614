"""``bench reproduce``: run a detector's published protocol and set the paper's numbers beside ours.

A reproduction is two files in ``configs/reproduce/``: ``NAME.yaml``, a run config (``bench run
--config`` reads it too) naming one detector, and ``NAME.published.yaml``, the published numbers as
data with their source (paper, table, or the authors' repository file and commit). Without the second
file the reproduction still runs, and says that the numbers are not yet transcribed.

Published tables report each generator against its own real images (ForenSynths' test set gives every
generator its own ``0_real``), while a run's per-generator rows share one real set. So each generator
is its own run, restricted with ``generators: [NAME]`` (bench.data.generators): its ``all`` row then
holds exactly that generator's fakes and reals. Fits and cells are cached, so the detector is fitted
(or its released weights loaded) once for all of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import yaml

from bench.core.csv_files import write_csv
from bench.core.cache import Cache
from bench.core.errors import BenchError
from bench.core.registry import unknown_name_message
from bench.run.config import RunConfig, load_config_file
from bench.run.metrics import ALL, METRICS
from bench.run.runner import Runner
from bench.run.schema import RESULTS_PARQUET

REPRODUCE_DIR = Path(__file__).resolve().parents[2] / "configs" / "reproduce"
PUBLISHED_SUFFIX = ".published.yaml"
UNITS = {"percent": 100.0, "fraction": 1.0}
NOT_TRANSCRIBED = "published numbers: not yet transcribed"
COMPARISON_CSV = "reproduce.csv"
SHOWN_UNPUBLISHED = ("roc_auc", "ap", "acc")  # what a reproduction without published numbers prints


@dataclass(frozen=True)
class Published:
    """A paper's numbers for one detector: ``values[(generator, metric)]`` in the paper's ``unit``."""

    title: str
    paper: str
    source: str
    unit: str
    values: dict[tuple[str, str], float]
    rows: dict[str, str] = field(default_factory=dict)  # our generator name -> the table's row label

    @property
    def generators(self) -> list[str]:
        return list(dict.fromkeys(gen for gen, _ in self.values))


@dataclass(frozen=True)
class Reproduction:
    name: str
    config: dict[str, Any]
    published: Published | None

    @property
    def detector(self) -> str:
        return self.config["detectors"][0]


def _published(path: Path) -> Published:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    required = ("title", "paper", "source", "unit", "metrics", "generators")
    if not isinstance(data, dict) or any(key not in data for key in required):
        raise BenchError(f"{path}: expected the keys {', '.join(required)}")
    if data["unit"] not in UNITS:
        raise BenchError(f"{path}: unit must be {' or '.join(UNITS)}, got {data['unit']!r}")
    metrics = list(data["metrics"])
    for metric in metrics:
        if metric not in METRICS:
            raise BenchError(f"{path}: {unknown_name_message('metric', metric, sorted(METRICS))}")
    values: dict[tuple[str, str], float] = {}
    rows: dict[str, str] = {}
    for gen, entry in (data["generators"] or {}).items():
        if not isinstance(entry, dict) or "row" not in entry:
            raise BenchError(f"{path}: generator {gen!r} needs its table row label ('row') and its numbers")
        rows[gen] = str(entry["row"])
        for metric in metrics:
            if not isinstance(entry.get(metric), (int, float)) or isinstance(entry.get(metric), bool):
                raise BenchError(f"{path}: generator {gen!r} has no number for {metric}")
            values[(gen, metric)] = float(entry[metric])
    return Published(str(data["title"]), str(data["paper"]), str(data["source"]), data["unit"], values, rows)


def load_reproduction(name: str, folder: Path = REPRODUCE_DIR) -> Reproduction:
    config_path = folder / f"{name}.yaml"
    if not config_path.is_file():
        raise BenchError(unknown_name_message("reproduction", name, reproduction_names(folder)))
    config = load_config_file(config_path)
    detectors = config.get("detectors")
    if not isinstance(detectors, list) or len(detectors) != 1:
        raise BenchError(f"{config_path}: a reproduction names exactly one detector, got {detectors!r}")
    published_path = folder / f"{name}{PUBLISHED_SUFFIX}"
    return Reproduction(name, config, _published(published_path) if published_path.is_file() else None)


def reproduction_names(folder: Path = REPRODUCE_DIR) -> list[str]:
    return sorted(p.name[: -len(".yaml")] for p in folder.glob("*.yaml") if not p.name.endswith(PUBLISHED_SUFFIX))


def list_lines(folder: Path = REPRODUCE_DIR) -> list[str]:
    """``bench reproduce --list``: each reproduction, what it runs and the table it checks."""
    lines = []
    for name in reproduction_names(folder):
        repro = load_reproduction(name, folder)
        where = repro.config.get("dataset", "demo")
        if repro.config.get("train_on"):
            where += f" (threshold data: {repro.config['train_on']})"
        lines.append(f"{name}: {repro.detector} on {where}")
        pub = repro.published
        if pub is None:
            lines.append(f"  {NOT_TRANSCRIBED}")
            continue
        metrics = sorted({metric for _, metric in pub.values})
        lines += [f"  {pub.title}: {len(pub.generators)} generators x {', '.join(metrics)}",
                  f"  paper: {pub.paper}", f"  source: {pub.source}"]
    return lines


def run_config(repro: Reproduction, overrides: dict[str, Any], generator: str | None) -> RunConfig:
    data = {**repro.config, **{k: v for k, v in overrides.items() if v is not None}}
    if generator is not None:
        data["generators"] = [generator]
    return RunConfig.from_dict(data)


def measured_rows(out: Path, detector: str, generator: str | None) -> pd.DataFrame:
    """The clean cell's rows of one generator (``generator``'s own run: its ``all`` row), or of every
    generator of a whole-dataset run."""
    df = pd.read_parquet(out / RESULTS_PARQUET)
    df = df[(df["detector"] == detector) & (df["perturbation"] == "none")]
    if generator is not None:
        return df[df["generator"] == ALL].assign(generator=generator)
    return df[df["generator"] != ALL]


def compare(published: Published | None, measured: pd.DataFrame) -> pd.DataFrame:
    """One row per (generator, metric): published, measured with its 95% CI (in the published unit),
    the difference and whether the published value lies inside the CI."""
    scale = UNITS[published.unit] if published else 1.0
    keys = list(published.values) if published else \
        [(g, m) for g, m in measured[["generator", "metric"]].itertuples(index=False) if m in SHOWN_UNPUBLISHED]
    index = {(g, m): r for g, m, r in zip(measured["generator"], measured["metric"], measured.itertuples())}
    out = []
    for gen, metric in keys:
        row = index.get((gen, metric))
        value, low, high = ((row.value * scale, row.ci_low * scale, row.ci_high * scale) if row is not None
                            else (math.nan,) * 3)
        paper = published.values[(gen, metric)] if published else math.nan
        out.append({"generator": gen, "metric": metric, "published": paper, "measured": value,
                    "ci_low": low, "ci_high": high, "difference": value - paper,
                    "within_ci": bool(low <= paper <= high) if not math.isnan(paper + low + high) else None,
                    "n": int(row.n) if row is not None else 0})
    return pd.DataFrame(out, columns=["generator", "metric", "published", "measured", "ci_low", "ci_high",
                                      "difference", "within_ci", "n"])


def reproduce(repro: Reproduction, overrides: dict[str, Any], out: Path, cache: Cache, progress: bool = True,
              log: Callable[[str], None] = print) -> pd.DataFrame:
    """Run the reproduction (one run per published generator, or one run when nothing is published) and
    write the comparison to ``out/reproduce.csv``."""
    gens: list[str | None] = list(repro.published.generators) if repro.published else [None]
    parts = []
    for gen in gens:
        run_out = out / (gen or "all")
        log(f"{repro.name}: {repro.detector} on {gen or 'every generator'}")
        record = Runner(run_config(repro, overrides, gen), run_out, cache, progress, log).run()
        status = record.detectors[repro.detector]
        if status.status != "ok":
            raise BenchError(f"{repro.name}: {repro.detector} {status.status}: {status.reason}")
        parts.append(measured_rows(run_out, repro.detector, gen))
    table = compare(repro.published, pd.concat(parts, ignore_index=True))
    write_csv(out / COMPARISON_CSV, table)
    return table


def format_comparison(repro: Reproduction, table: pd.DataFrame) -> str:
    from tabulate import tabulate

    pub = repro.published
    head = [f"{repro.name}: {repro.detector}"]
    head += [f"published: {pub.title}", f"  paper: {pub.paper}", f"  source: {pub.source}",
             f"  unit: {pub.unit}; measured = value [95% bootstrap CI] on the clean images"] if pub else \
        [f"{NOT_TRANSCRIBED}; measured values (each generator against the run's shared reals)"]

    def num(x: float) -> str:
        return "n/a" if math.isnan(x) else f"{x:.1f}" if pub and pub.unit == "percent" else f"{x:.3f}"

    body = [[r.generator + (f" ({pub.rows[r.generator]})" if pub else ""), r.metric, num(r.published),
             f"{num(r.measured)} [{num(r.ci_low)}, {num(r.ci_high)}]", num(r.difference),
             {True: "yes", False: "NO", None: "-"}[r.within_ci], r.n] for r in table.itertuples()]
    lines = head + ["", tabulate(body, headers=["generator (table row)", "metric", "published", "measured",
                                                "difference", "published in CI", "n"],
                                 disable_numparse=True)]
    if pub:
        inside = int(table["within_ci"].eq(True).sum())
        lines.append(f"\n{inside} of {len(table)} published numbers lie within the measured 95% CI")
    return "\n".join(lines)
