"""The runner: detectors x dataset x perturbations x severities -> scored cells -> result store.

Each detector is fitted once on the clean training split (cached by its config,
the training data's hash and the training seed); a decision threshold is fixed on clean
validation data; every grid cell's scores are cached by (fit, test data,
perturbation table, severity, seed). A second identical run recomputes
nothing, and a run killed at any point resumes with only the missing cells.

With several training seeds (``--seeds``) the grid runs once per seed: each training
detector is fitted and scored per seed, a training-free one once (when the split is
fixed) and its rows repeated under every seed; every row carries its ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from tqdm.auto import tqdm

from bench.core import atomic
from bench.core.cache import Cache
from bench.core.detector import DEFAULT_BATCH_SIZE, Detector, FitContext, Prediction
from bench.core.errors import BenchError
from bench.core.hashing import stable_hash
from bench.core.registries import DETECTORS, PERTURBATIONS, create_detector, load_plugins
from bench.data.imageset import DecodedCache, ImageSet
from bench.nn.training import resolve_device
from bench.run.attacks import CellImages, check_surrogate, transfer_surrogates
from bench.run.config import RunConfig
from bench.run.executors import make_executor
from bench.run.metrics import evaluate_cell
from bench.run.resample import cell_seed
from bench.run.run_audit import run_audit
from bench.run.splits import Splits, bootstrap_groups, build_splits, normalization_record
from bench.run.store import write_store
from bench.run.stream import Failure
from bench.run.work import AttackJob, CellJob, FitJob
from bench.weights.gate import WeightsDecision, check_detector_weights
from perturbations import param_label, param_value
from perturbations.spec import parse_perturb_spec

PERTURBATION_STAGE = "before detector preprocessing, at full resolution"
CLEAN = ("none", 0)


@dataclass
class DetectorRun:
    name: str
    status: str = "pending"  # ok | skipped | failed
    reason: str = ""
    weights: str = "none"  # pretrained | trained | none | random
    profile: str = ""  # paper | fast | custom (detector_params override), once constructed
    detector: Detector | None = None
    fit_key: str = ""
    val_threshold: float | None = None
    skipped_cells: dict[str, str] = field(default_factory=dict)  # "perturbation:severity" -> why it was not scored
    fit_seconds: float = 0.0
    train_seed: int = 0
    provenance: dict = field(default_factory=dict)
    predictions: dict[tuple[str, int], Prediction] = field(default_factory=dict)


@dataclass
class SeedPass:
    """What one training seed of a run produced."""

    train_seed: int
    splits: Splits
    runs: list[DetectorRun]
    metric_rows: list[dict]
    score_rows: list[dict]


STATUS_ORDER = {"ok": 0, "skipped": 1, "failed": 2}


def trains(name: str) -> bool:
    """Whether a detector's fit depends on a training seed (registry ``trains``; unknown counts as yes)."""
    return bool(DETECTORS.entry(name).meta.get("trains", True))


def expand_detectors(patterns: list[str]) -> list[str]:
    """'all' means every registered detector except the test_* ones; wildcards and names as given."""
    load_plugins()
    out: list[str] = []
    for pattern in patterns:
        names = [n for n in DETECTORS.names() if not DETECTORS.entry(n).meta.get("test")] if pattern == "all" \
            else DETECTORS.resolve([pattern])
        out.extend(n for n in names if n not in out)
    if not out:
        raise BenchError("no detectors selected")
    return out


def make_grid(spec: str, preset: str) -> list[tuple[str, int]]:
    cells = [CLEAN]
    for name, levels in parse_perturb_spec(spec, preset):
        cells.extend((name, level) for level in levels)
    return cells


def weights_identity(provenance: dict) -> dict[str, str]:
    """Component -> the sha256 of the weights a detector uses ("random" for random initialisation): part of
    the fit key, so every cached fit, checkpoint and cell score keys on the exact weights it used."""
    return {name: "random" if rec.get("random") else str(rec.get("sha256"))
            for name, rec in sorted(provenance.items()) if isinstance(rec, dict)}


class Runner:
    def __init__(self, cfg: RunConfig, out_dir: Path | None, cache: Cache, progress: bool = True,
                 log: Callable[[str], None] = print, audit: bool = False, executor=None):
        self.cfg, self.cache, self.progress, self.log = cfg, cache, progress, log
        self.audit = audit  # the shortcut audit of the evaluated data at the start (bench.run.run_audit)
        self.audit_block: dict = {"skipped": "not requested (--no-audit)"}
        self.executor = executor or make_executor("local")
        self.started = datetime.now(timezone.utc)
        self.config_hash = stable_hash(cfg.to_dict(), 8)
        self.run_id = f"{self.started.strftime('%Y%m%dT%H%M%SZ')}-{self.config_hash}"
        self.out_dir = Path(out_dir) if out_dir else Path("results/runs") / self.run_id
        self.device = str(resolve_device(cfg.device))
        self.ctx = FitContext(device=self.device, seed=cfg.training_seed, workers=cfg.workers,
                              batch_size=cfg.batch_size or DEFAULT_BATCH_SIZE, progress=progress,
                              extras={"cache": cache})  # per detector: bench.run.work.detector_ctx
        self.decoded = DecodedCache()
        self.surrogates: dict = {}  # transfer attacks' surrogate detectors (prepare_surrogates)

    # -- fitting ----------------------------------------------------------------
    def prepare(self, name: str, splits: Splits, train_seed: int | None = None) -> tuple[DetectorRun, FitJob | None]:
        """The run of one detector with ``train_seed`` (default: the run's training seed) and its cached fit,
        or the job that fits it (None when skipped or failed)."""
        run = DetectorRun(name, train_seed=self.cfg.training_seed if train_seed is None else train_seed)
        entry = DETECTORS.entry(name)
        decision: WeightsDecision = check_detector_weights(name, entry.meta, self.cfg.weights,
                                                                 self.cfg.random_weights)
        run.provenance = decision.provenance
        if decision.skip_reason:
            run.status, run.reason = "skipped", decision.skip_reason
            return run, None
        run.weights = decision.label
        try:
            detector: Detector = create_detector(name, self.cfg.profile, **self.cfg.detector_params.get(name, {}))
            run.profile = detector.profile
            detector.weights_provenance = decision.provenance
            run.fit_key = stable_hash([detector.config(), splits.train_hash, self.cfg.seed, run.train_seed,
                                       decision.label, weights_identity(decision.provenance)])
            cached = self.cache.load_object("fits", run.fit_key)
        except BenchError as exc:
            self.record_failure(run, Failure(str(exc)))
            return run, None
        except Exception as exc:  # a broken detector must not take the other detectors' results with it
            self.record_failure(run, Failure.of(exc))
            return run, None
        if cached is None:
            checkpoint = self.cache.path("checkpoints", run.fit_key, "pt")
            return run, FitJob(name, detector, splits.train, splits.val, run.train_seed, checkpoint)
        self.take_fit(run, cached)
        return run, None

    def take_fit(self, run: DetectorRun, fitted: dict) -> None:
        run.detector, run.val_threshold, run.fit_seconds = (fitted["detector"], fitted["val_threshold"],
                                                            fitted["fit_seconds"])
        run.status = "ok"

    @staticmethod
    def record_failure(run: DetectorRun, failure: Failure, context: str = "") -> None:
        run.status, run.reason = "failed", context + failure.reason
        if failure.traceback:
            run.provenance["traceback"] = failure.traceback

    def fit_all(self, names: list[str], splits: Splits, train_seeds: dict[str, int | None],
                multi_seed: bool = False) -> dict[str, DetectorRun]:
        """Every detector's run, by name: cached fits loaded, missing ones fitted by the executor (each with
        its training seed, ``train_seeds[name]``; None = the run's) and cached as they finish."""
        runs, jobs = {}, []
        for name in names:
            seed_note = f" (training seed {train_seeds[name]})" if multi_seed and train_seeds[name] is not None else ""
            self.log(f"fitting {name}{seed_note} ...")
            run, job = self.prepare(name, splits, train_seeds[name])
            runs[name] = run
            if job is not None:
                jobs.append(job)
            else:
                self.check_status(run)
        for job, outcome in self.executor.fit(jobs, self.cfg, self.ctx, self.decoded):
            run = runs[job.name]
            if isinstance(outcome, Failure):
                self.record_failure(run, outcome)
            else:
                self.cache.save_object("fits", run.fit_key, outcome)
                self.take_fit(run, outcome)
            self.check_status(run)
        return runs

    def check_status(self, run: DetectorRun) -> None:
        if run.status != "ok":
            self.log(f"  {run.status} {run.name}: {run.reason}")
            if self.cfg.strict:
                raise BenchError(f"{run.name} {run.status}: {run.reason} (--strict)")

    def prepare_surrogates(self, grid: list[tuple[str, int]], runs: list[DetectorRun], splits: Splits):
        """Surrogate name -> (fitted detector, fit key) for the grid's transfer attacks: a detector of the run,
        or one fitted here for the purpose (and not scored)."""
        surrogates = {}
        for name in transfer_surrogates(grid, PERTURBATIONS.get):
            run = next((r for r in runs if r.name == name), None) or self.fit_all([name], splits, {name: None})[name]
            check_surrogate(name, run.detector, run.status, run.reason)
            surrogates[name] = (run.detector, run.fit_key)
        return surrogates

    # -- scoring ------------------------------------------------------------------
    def cell_key(self, run: DetectorRun, test_hash: str, perturbation: str, table: str, severity: int,
                 fingerprint: str = "") -> str:
        """Scores of one detector on one cell; ``fingerprint`` = the perturbation's table values and code
        version (``Perturbation.fingerprint``), so an edited table or function never serves stale scores."""
        return stable_hash([run.fit_key, test_hash, perturbation, table, severity, self.cfg.seed, fingerprint])

    def score_cells(self, runs: list[DetectorRun], test: ImageSet, grid: list[tuple[str, int]]) -> None:
        """Cached cells are read back; the executor scores the rest and each cell is cached as it arrives,
        so an interrupted run resumes with only the missing (detector, cell) pairs."""
        test_hash = stable_hash(test.hashes)
        bar = tqdm(total=len(grid) * len(runs), desc="cells", disable=not self.progress)
        by_name = {run.name: run for run in runs}
        jobs, keys, seeds = {}, {}, {}
        attacks: dict[int, dict[tuple[str, int], list[DetectorRun]]] = {}  # training seed -> cell -> runs
        for cell in grid:
            perturbation, severity = cell
            cell_sets = CellImages(test, None if perturbation == "none" else PERTURBATIONS.get(perturbation), severity,
                                   self.cfg.seed, self.cfg.preset, self.surrogates)
            missing = []
            for run in runs:
                images = cell_sets.for_detector(run.detector, run.fit_key)
                if isinstance(images, str):  # e.g. a white-box attack on a non-differentiable detector
                    if not any(k.startswith(f"{perturbation}:") for k in run.skipped_cells):
                        self.log(f"  skipped {run.name} on {perturbation}: {images}")
                    run.skipped_cells[f"{perturbation}:{severity}"] = images
                    bar.update(1)
                    continue
                key = self.cell_key(run, test_hash, perturbation, images.table, severity, images.fingerprint)
                cached = self.cache.load_arrays("cells", key)
                if cached is None and cell_sets.attack:
                    attacks.setdefault(run.train_seed, {}).setdefault(cell, []).append(run)
                    keys[(run.name, cell)] = key
                elif cached is None:
                    missing.append(run.detector)
                    keys[(run.name, cell)] = key
                    seeds[run.name] = run.train_seed
                else:
                    run.predictions[cell] = Prediction(cached["score"], cached.get("source"))
                    bar.update(1)
            for seed in sorted({seeds[d.name] for d in missing}):
                jobs.setdefault(seed, []).append(CellJob(cell, [d for d in missing if seeds[d.name] == seed]))
        for seed, seed_jobs in jobs.items():  # one training seed per executor call: its context carries the seed
            for job, detector, outcome in self.executor.score(seed_jobs, test, self.cfg, replace(self.ctx, seed=seed)):
                run = by_name[detector.name]
                bar.set_postfix_str(f"{run.name} {job.cell[0]}:{job.cell[1]}")
                if run.status != "ok":
                    continue
                self.take_cell(run, job.cell, keys[(run.name, job.cell)], outcome)
                bar.update(1)
        for seed, cells in attacks.items():
            attack_jobs = [AttackJob(cell, [r.detector for r in cell_runs], [r.fit_key for r in cell_runs],
                                     self.cell_surrogates(cell)) for cell, cell_runs in cells.items()]
            for job, detector, outcome in self.executor.attack(attack_jobs, test, self.cfg,
                                                               replace(self.ctx, seed=seed)):
                run = by_name[detector.name]
                bar.set_postfix_str(f"{run.name} {job.cell[0]}:{job.cell[1]}")
                if run.status == "ok":
                    self.take_cell(run, job.cell, keys[(run.name, job.cell)], outcome)
                bar.update(1)
        bar.close()
        for run in runs:  # grid order, whichever order the executor finished the cells in
            run.predictions = {cell: run.predictions[cell] for cell in grid if cell in run.predictions}

    def cell_surrogates(self, cell: tuple[str, int]) -> dict:
        """The surrogate a transfer cell is crafted on ({name: (detector, fit key)}), {} for other cells."""
        surrogate = getattr(PERTURBATIONS.get(cell[0]), "surrogate", None) if cell[0] != "none" else None
        return {surrogate: self.surrogates[surrogate]} if surrogate is not None else {}

    def take_cell(self, run: DetectorRun, cell: tuple[str, int], key: str, outcome: Prediction | Failure) -> None:
        """Cache one scored cell and keep its prediction, or record why it failed."""
        if isinstance(outcome, Failure):
            self.record_failure(run, outcome, f"scoring {cell[0]}:{cell[1]}: ")
            self.log(f"  failed {run.name}: {run.reason}")
            return
        arrays = {"score": outcome.score}
        if outcome.source is not None:
            arrays["source"] = outcome.source.astype(str)
        self.cache.save_arrays("cells", key, **arrays)
        run.predictions[cell] = Prediction(arrays["score"], arrays.get("source"))

    # -- metrics -------------------------------------------------------------------
    def metric_rows(self, run: DetectorRun, test: ImageSet, dataset: str, groups=None) -> list[dict]:
        """Every detector of a cell is resampled with the same draws (seed: run seed and cell), whole
        ``groups`` at a time (:mod:`bench.run.resample`)."""
        rows = []
        if not run.predictions:  # skipped, or failed before its first cell
            return rows
        detector = run.detector
        probability = detector.info.outputs_probability
        classes = set(getattr(detector, "classes", []) or [])
        for (perturbation, severity), pred in run.predictions.items():
            source = pred.source if pred.source is not None and set(test.generators) <= classes else None
            for row in evaluate_cell(test.labels, test.generators, pred.score, source, probability=probability,
                                     val_threshold=run.val_threshold, n_boot=self.cfg.bootstrap,
                                     seed=cell_seed(self.cfg.seed, perturbation, severity), groups=groups):
                rows.append({"detector": run.name, "weights": run.weights, "profile": run.profile, "dataset": dataset,
                             "perturbation": perturbation, "severity": severity,
                             "param": param_value(perturbation, severity, self.cfg.preset),
                             "param_label": param_label(perturbation, severity, self.cfg.preset), **row})
        return rows

    def score_rows(self, run: DetectorRun, test: ImageSet, dataset: str, groups=None) -> list[dict]:
        rows = []
        for (perturbation, severity), pred in run.predictions.items():
            for i in range(len(test)):
                rows.append({"detector": run.name, "dataset": dataset, "image_id": test.ids[i],
                             "sha256": test.hashes[i], "label": int(test.labels[i]),
                             "generator": test.generators[i], "perturbation": perturbation, "severity": severity,
                             "score": float(pred.score[i]),
                             "pred_source": None if pred.source is None else str(pred.source[i]),
                             "group": None if groups is None else int(groups[i])})
        return rows

    # -- the whole run ---------------------------------------------------------------
    def run(self) -> dict:
        atomic.ensure_writable_dir(self.out_dir, "output directory (--out)")
        atomic.ensure_writable_dir(self.cache.root, "cache directory (--cache-dir)")
        load_plugins()
        names = expand_detectors(self.cfg.detectors)
        grid = make_grid(self.cfg.perturb, self.cfg.preset)
        once: dict[str, tuple[DetectorRun, list[dict], list[dict]]] = {}
        passes = [self.run_seed(train_seed, names, grid, once) for train_seed in self.cfg.training_seeds]
        record = self.run_record(passes[0].runs, passes[0].splits, grid)
        if len(passes) > 1:
            record.update(seed_records(passes, record))
        write_store(self.out_dir, record, [row for p in passes for row in p.metric_rows],
                    [row for p in passes for row in p.score_rows])
        return record

    def run_seed(self, train_seed: int, names: list[str], grid: list[tuple[str, int]],
                 once: dict[str, tuple[DetectorRun, list[dict], list[dict]]]) -> SeedPass:
        """One training seed: splits, fits, scores and rows (each row's ``seed`` = ``train_seed``).

        A training-free detector on a fixed split is fitted and scored at the first seed only (``once``
        keeps its run and rows) and its rows are repeated under the later seeds."""
        multi = len(self.cfg.training_seeds) > 1
        splits = build_splits(self.cfg, self.cache, self.progress, self.cfg.split_seed(train_seed))
        test = ImageSet(splits.test, self.decoded, self.cfg.max_pixels, self.cfg.min_side)
        seed_note = f" [training seed {train_seed}, split seed {splits.split_seed}]" if multi else ""
        self.log(f"dataset {splits.test_dataset.name} ({splits.test_dataset.hash}): train {len(splits.train)}, "
                 f"val {len(splits.val)}, test {len(splits.test)} images; "
                 f"{len(splits.test_dataset.skips)} skipped; {len(grid)} cells x {len(names)} detectors{seed_note}")
        for skip in splits.test_dataset.skips[:20]:
            self.log(f"  skipped image {skip.id}: {skip.reason}")
        if len(splits.test_dataset.skips) > 20:
            self.log(f"  ... and {len(splits.test_dataset.skips) - 20} more (see run.json)")
        if self.audit:
            self.audit_block = run_audit(splits.test_dataset, self.cfg.normalize, self.cache, self.cfg.seed,
                                         self.cfg.workers, self.cfg.bootstrap, self.log)
        for overlap in splits.overlaps[:20]:
            self.log(f"  allowed overlap ({overlap['kind']}): {overlap['files']}")
        fitted = self.fit_all([n for n in names if n not in once], splits,
                              {n: train_seed if trains(n) else None for n in names}, multi)
        runs = [once[name][0] if name in once else fitted[name] for name in names]
        self.surrogates = self.prepare_surrogates(grid, runs, splits)
        self.score_cells([r for r in runs if r.status == "ok" and r.name not in once], test, grid)
        dataset_name = splits.test_dataset.name
        groups = bootstrap_groups(splits.test)
        metric_rows, score_rows = [], []
        for run in runs:
            if run.name in once:
                _, metrics, scores = once[run.name]
            else:
                # a detector that failed on a later cell keeps the rows of the cells it finished
                metrics = self.metric_rows(run, test, dataset_name, groups)
                scores = self.score_rows(run, test, dataset_name, groups)
                if not trains(run.name) and not self.cfg.vary_split:
                    once[run.name] = (run, metrics, scores)
            metric_rows += [{**row, "seed": train_seed} for row in metrics]
            score_rows += [{**row, "seed": train_seed} for row in scores]
        return SeedPass(train_seed, splits, runs, metric_rows, score_rows)

    def run_record(self, runs: list[DetectorRun], splits: Splits, grid: list[tuple[str, int]]) -> dict:
        from bench.run.provenance import device_description, git_state, machine_record, package_versions

        datasets = {splits.test_dataset.name: splits.test_dataset.summary()}
        if splits.train_dataset is not splits.test_dataset:
            datasets[splits.train_dataset.name] = splits.train_dataset.summary()
        skipped_images = [{"dataset": ds.name, "id": s.id, "reason": s.reason}
                          for ds in {id(splits.test_dataset): splits.test_dataset,
                                     id(splits.train_dataset): splits.train_dataset}.values() for s in ds.skips]
        tables = {}
        for perturbation in sorted({p for p, _ in grid if p != "none"}):
            p = PERTURBATIONS.get(perturbation)
            tables[perturbation] = {"preset": p.table_preset(self.cfg.preset), "param": p.param_name,
                                    "unit": p.unit, "levels": {level: param_label(perturbation, level, self.cfg.preset)
                                                               for level in p.levels(self.cfg.preset)}}
        return {
            "run_id": self.run_id,
            "date": self.started.isoformat(timespec="seconds"),
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "git": git_state(), "versions": package_versions(), "device": device_description(self.device),
            "seed": self.cfg.seed, "train_seed": self.cfg.training_seeds[0], "machine": machine_record(),
            "preset": self.cfg.preset, "profile": self.cfg.profile,
            "config": self.cfg.to_dict(), "config_hash": self.config_hash, "executor": self.executor.name,
            "datasets": datasets, "dataset_hash": splits.test_dataset.hash, "train_hash": splits.train_hash,
            "test_hash": splits.test_hash,
            "splits": {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)},
            "perturbation_stage": PERTURBATION_STAGE, "perturbation_tables": tables,
            "grid": [list(c) for c in grid],
            "detectors": {r.name: {"status": r.status, "reason": r.reason, "weights": r.weights, "profile": r.profile,
                                   "val_threshold": r.val_threshold, "fit_seconds": round(r.fit_seconds, 3),
                                   "fit_key": r.fit_key, "provenance": r.provenance,
                                   **({"skipped_cells": r.skipped_cells} if r.skipped_cells else {}),
                                   "config": r.detector.config() if r.detector else None} for r in runs},
            "normalize": normalization_record(self.cfg.normalize, splits),
            "audit": self.audit_block,
            "skipped_images": skipped_images,
            "n_skipped_images": len(skipped_images),
            "overlaps": splits.overlaps,
        }


def seed_records(passes: list[SeedPass], record: dict) -> dict:
    """run.json keys of a run with several training seeds: ``train_seeds``, and per seed (``seed_runs``) its
    split seed, data hashes, allowed overlaps and fits. Each detector's status in ``record`` becomes (in
    place) the worst over the seeds, so a fit that failed under one seed is not hidden."""
    detectors = record["detectors"]
    for p in passes:
        for run in p.runs:
            if STATUS_ORDER.get(run.status, 2) > STATUS_ORDER.get(detectors[run.name]["status"], 2):
                detectors[run.name].update(status=run.status, reason=f"training seed {p.train_seed}: {run.reason}")
    return {"train_seeds": [p.train_seed for p in passes], "seed_runs": [
        {"train_seed": p.train_seed, "split_seed": p.splits.split_seed, "dataset_hash": p.splits.test_dataset.hash,
         "train_hash": p.splits.train_hash, "test_hash": p.splits.test_hash, "overlaps": p.splits.overlaps,
         "detectors": {r.name: {"status": r.status, "reason": r.reason, "train_seed": r.train_seed,
                                "fit_key": r.fit_key, "val_threshold": r.val_threshold,
                                "fit_seconds": round(r.fit_seconds, 3)} for r in p.runs}}
        for p in passes]}
