"""The plan of a run, before any work (``bench plan``, ``bench run --dry-run``): the data it reads, the fits and
cells it needs, which of them the cache already holds, and how long the rest should take on this machine.

Planning runs what a run runs before its first fit (the dataset probe, the split, each detector's
construction, fit key and cell keys) and then only asks the cache what it has: nothing is fitted or scored.
Estimates come from the timing records of earlier runs on this machine (bench.run.timings); a detector
that never ran here is "unknown", and the plan says how to make a long CPU run short.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.core.errors import BenchError
from bench.core.registries import DETECTORS
from bench.run.attacks import transfer_surrogates
from bench.run.outcomes import CellTask, DetectorRun
from bench.run.plan import Cell, compile_grid
from bench.run.runner import Runner, expand_detectors, trains
from bench.run.splits import build_splits
from bench.run.timings import FIT, SCORE, load_timing

#: A CPU run whose estimate exceeds this gets the advice to shorten it (--profile fast, --limit).
LONG_RUN_S = 3600


@dataclass
class DetectorPlan:
    name: str
    train_seed: int
    status: str  # pending (will run) | skipped | failed (before any work)
    reason: str = ""
    profile: str = ""
    weights: str = ""
    fit_cached: bool = False
    cells_cached: int = 0
    cells_missing: int = 0
    cells_skipped: int = 0
    fit_s: float | None = None  # the estimate of what is missing; None: no timing recorded here
    score_s: float | None = None
    gpu: str = "optional"

    @property
    def estimate_s(self) -> float | None:
        if self.status != "pending":
            return 0.0
        if self.fit_s is None or self.score_s is None:
            return None
        return self.fit_s + self.score_s


@dataclass
class RunPlan:
    dataset: str
    dataset_hash: str
    images: dict[str, int]  # train / val / test
    grid: list[Cell]
    device: str
    profile: str
    detectors: list[DetectorPlan] = field(default_factory=list)


def plan_run(runner: Runner) -> RunPlan:
    """The plan of ``runner``'s run; reads (and fills) only the probe cache, writes no output."""
    cfg = runner.cfg
    names = expand_detectors(cfg.detectors)
    grid = compile_grid(cfg.perturb, cfg.preset)
    plan = None
    planned_once: set[str] = set()  # training-free detectors on a fixed split run once
    for train_seed in cfg.training_seeds:
        splits = build_splits(cfg, runner.cache, runner.progress, cfg.split_seed(train_seed))
        test = runner.settings.limits.image_set(splits.test, runner.decoded)
        if plan is None:
            plan = RunPlan(splits.test_dataset.name, splits.test_dataset.hash,
                           {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)}, grid,
                           runner.device, cfg.profile)
        todo = [n for n in names if n not in planned_once]
        runs = [runner.identify(name, splits, train_seed if trains(name) else None) for name in todo]
        runner.surrogates = {}
        for name in transfer_surrogates(grid):  # as the run would, a surrogate that cannot be built ends the plan
            surrogate = next((r for r in runs if r.name == name), None) or runner.identify(name, splits)
            if surrogate.detector is None:
                raise BenchError(f"transfer:{name}: the surrogate detector {name} is {surrogate.status}: "
                                 f"{surrogate.reason}")
            runner.surrogates[name] = (surrogate.detector, surrogate.fit_key)
        tasks = runner.cell_tasks([r for r in runs if r.status == "pending"], test, grid)
        for run in runs:
            plan.detectors.append(detector_plan(runner, run, [t for t in tasks if t.run is run],
                                                len(splits.train) + len(splits.val), len(test)))
            if not trains(run.name) and not cfg.vary_split:
                planned_once.add(run.name)
    return plan


def detector_plan(runner: Runner, run: DetectorRun, tasks: list[CellTask], fit_images: int,
                  test_images: int) -> DetectorPlan:
    out = DetectorPlan(run.name, run.train_seed, run.status, run.reason, run.profile, run.weights,
                       gpu=str(DETECTORS.entry(run.name).meta.get("gpu", "optional")))
    if run.status != "pending":
        return out
    out.fit_cached = runner.cache.has("fits", run.fit_key, "pkl")
    for task in tasks:
        if task.skip:
            out.cells_skipped += 1
        elif runner.cache.has("cells", task.key, "npz"):
            out.cells_cached += 1
        else:
            out.cells_missing += 1
    timing = load_timing(runner.cache, run.detector.config(), runner.device)
    out.fit_s = 0.0 if out.fit_cached else (timing[FIT] * fit_images if FIT in timing else None)
    out.score_s = 0.0 if not out.cells_missing else (
        timing[SCORE] * test_images * out.cells_missing if SCORE in timing else None)
    return out


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def plan_text(plan: RunPlan) -> str:
    """The plan as ``bench plan`` prints it: a header, one row per detector (and training seed), advice."""
    from tabulate import tabulate

    seeds = len({d.train_seed for d in plan.detectors}) > 1
    rows = []
    for d in plan.detectors:
        fit = "-" if d.status != "pending" else ("cached" if d.fit_cached else f"to fit ({duration(d.fit_s)})")
        cells = "-" if d.status != "pending" else (f"{d.cells_cached} cached, {d.cells_missing} to score"
                                                   + (f", {d.cells_skipped} skipped" if d.cells_skipped else ""))
        scoring = "-" if d.status != "pending" else duration(d.score_s)
        status = d.status if d.status != "pending" else "runs"
        rows.append([d.name, *([d.train_seed] if seeds else []), status if not d.reason else f"{status}: {d.reason}",
                     d.profile or "-", fit, cells, scoring, duration(d.estimate_s)])
    headers = ["detector", *(["seed"] if seeds else []), "status", "profile", "fit", "cells", "scoring", "total"]
    known = [d.estimate_s for d in plan.detectors if d.estimate_s is not None]
    unknown = [d for d in plan.detectors if d.estimate_s is None]
    lines = [f"plan: dataset {plan.dataset} ({plan.dataset_hash}): train {plan.images['train']}, val "
             f"{plan.images['val']}, test {plan.images['test']} images; {len(plan.grid)} cells "
             f"({', '.join(c.key for c in plan.grid)}); device {plan.device}; profile {plan.profile}",
             "", tabulate(rows, headers=headers), "",
             f"estimate on this machine: {duration(sum(known))}"
             + (f" plus {len(unknown)} detector(s) never timed here ({', '.join(d.name for d in unknown)})"
                if unknown else "") + " (from the timings of earlier runs in this cache)"]
    if plan.device == "cpu":
        long = sum(known) > LONG_RUN_S
        gpu_unknown = [d.name for d in unknown if d.gpu == "recommended" and d.profile == "paper"]
        if long or gpu_unknown:
            why = (f"this run should take about {duration(sum(known))} on this CPU" if long else
                   f"{', '.join(gpu_unknown)} recommend a GPU and have never run here")
            lines.append(f"note: {why}; for a smoke run use --profile fast and --limit N (e.g. --limit 10)")
    return "\n".join(lines)
