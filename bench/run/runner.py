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

from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from tqdm.auto import tqdm

from bench.core import atomic
from bench.core.cache import Cache
from bench.core.detector import DEFAULT_BATCH_SIZE, Detector, FitContext, Prediction
from bench.core.errors import BenchError
from bench.core.hashing import stable_hash
from bench.core.registries import DETECTORS, create_detector, load_plugins
from bench.data.imageset import DecodedCache, ImageSet
from bench.nn.training import resolve_device
from bench.run.attacks import CellImages, check_surrogate, surrogate_of, transfer_surrogates
from bench.run.config import RunConfig
from bench.run.executors import make_executor
from bench.run.outcomes import CellTask, DetectorRun, SeedPass
from bench.run.origin import compare_data
from bench.run.plan import Cell, compile_execution, compile_grid
from bench.run.record import RunRecord, add_seed_runs, build_record
from bench.run.rows import metric_rows, score_rows
from bench.run.run_audit import run_audit
from bench.run.splits import Splits, bootstrap_groups, build_splits
from bench.run.store import write_store
from bench.run.timings import FIT, SCORE, record_timing
from bench.run.stream import Failure
from bench.run.work import AttackJob, CellJob, FitJob
from bench.weights.gate import WeightsDecision, check_detector_weights


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


def weights_identity(provenance: dict) -> dict[str, str]:
    """Component -> the sha256 of the weights a detector uses ("random" for random initialisation): part of
    the fit key, so every cached fit, checkpoint and cell score keys on the exact weights it used."""
    return {name: "random" if rec.get("random") else str(rec.get("sha256"))
            for name, rec in sorted(provenance.items()) if isinstance(rec, dict)}


class Runner:
    def __init__(self, cfg: RunConfig, out_dir: Path | None, cache: Cache, progress: bool = True,
                 log: Callable[[str], None] = print, audit: bool = False, executor=None, origin: dict | None = None):
        self.cfg, self.cache, self.progress, self.log = cfg, cache, progress, log
        self.origin = origin  # the run whose run.json gave the config (bench.run.origin), or None
        self.reproduced_from: dict | None = None
        self.audit = audit  # the shortcut audit of the evaluated data at the start (bench.run.run_audit)
        self.audit_block: dict = {"skipped": "not requested (--no-audit)"}
        self.executor = executor or make_executor("local")
        self.settings = compile_execution(cfg)
        self.started = datetime.now(timezone.utc)
        self.config_hash = stable_hash(cfg.to_dict(), 8)
        self.run_id = f"{self.started.strftime('%Y%m%dT%H%M%SZ')}-{self.config_hash}"
        self.out_dir = Path(out_dir) if out_dir else Path("results/runs") / self.run_id
        self.device = str(resolve_device(cfg.device))
        self.ctx = FitContext(device=self.device, seed=cfg.training_seed, workers=cfg.workers,
                              batch_size=cfg.batch_size or DEFAULT_BATCH_SIZE, progress=progress,
                              cache=cache)  # per detector: bench.run.work.detector_ctx
        self.decoded = DecodedCache()
        self.surrogates: dict = {}  # transfer attacks' surrogate detectors (prepare_surrogates)

    # -- fitting ----------------------------------------------------------------
    def identify(self, name: str, splits: Splits, train_seed: int | None = None) -> DetectorRun:
        """The run of one detector with ``train_seed`` (default: the run's training seed): its weights decision,
        the constructed (unfitted) detector and its fit key; status "skipped" or "failed" when it has none."""
        run = DetectorRun(name, train_seed=self.cfg.training_seed if train_seed is None else train_seed)
        entry = DETECTORS.entry(name)
        decision: WeightsDecision = check_detector_weights(name, entry.meta, self.cfg.weights,
                                                                 self.cfg.random_weights)
        run.provenance = decision.provenance
        if decision.skip_reason:
            run.status, run.reason = "skipped", decision.skip_reason
            return run
        run.weights = decision.label
        try:
            detector: Detector = create_detector(name, self.cfg.profile, **self.cfg.detector_params.get(name, {}))
            run.profile = detector.profile
            detector.weights_provenance = decision.provenance
            run.fit_key = stable_hash([detector.config(), splits.train_hash, self.cfg.seed, run.train_seed,
                                       decision.label, weights_identity(decision.provenance)])
            run.detector = detector
        except BenchError as exc:
            self.record_failure(run, Failure(str(exc)))
        except Exception as exc:  # a broken detector must not take the other detectors' results with it
            self.record_failure(run, Failure.of(exc))
        return run

    def prepare(self, name: str, splits: Splits, train_seed: int | None = None) -> tuple[DetectorRun, FitJob | None]:
        """The run of one detector (:meth:`identify`) with its cached fit, or the job that fits it (None when
        skipped or failed)."""
        run = self.identify(name, splits, train_seed)
        if run.status != "pending":
            return run, None
        try:
            cached = self.cache.load_object("fits", run.fit_key)
        except Exception as exc:
            self.record_failure(run, Failure.of(exc))
            return run, None
        if cached is None:
            checkpoint = self.cache.path("checkpoints", run.fit_key, "pt")
            return run, FitJob(name, run.detector, splits.train, splits.val, run.train_seed, checkpoint)
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
        for job, outcome in self.executor.fit(jobs, self.settings, self.ctx, self.decoded):
            run = runs[job.name]
            if isinstance(outcome, Failure):
                self.record_failure(run, outcome)
            else:
                self.cache.save_object("fits", run.fit_key, outcome)
                self.take_fit(run, outcome)
                record_timing(self.cache, run.detector.config(), self.device, FIT, outcome["fit_seconds"],
                              len(job.train) + len(job.val))
            self.check_status(run)
        return runs

    def check_status(self, run: DetectorRun) -> None:
        if run.status != "ok":
            self.log(f"  {run.status} {run.name}: {run.reason}")
            if self.cfg.strict:
                raise BenchError(f"{run.name} {run.status}: {run.reason} (--strict)")

    def prepare_surrogates(self, grid: list[Cell], runs: list[DetectorRun], splits: Splits):
        """Surrogate name -> (fitted detector, fit key) for the grid's transfer attacks: a detector of the run,
        or one fitted here for the purpose (and not scored)."""
        surrogates = {}
        for name in transfer_surrogates(grid):
            run = next((r for r in runs if r.name == name), None) or self.fit_all([name], splits, {name: None})[name]
            check_surrogate(name, run.detector, run.status, run.reason)
            surrogates[name] = (run.detector, run.fit_key)
        return surrogates

    # -- scoring ------------------------------------------------------------------
    def cell_key(self, run: DetectorRun, test_hash: str, cell: Cell, images: ImageSet) -> str:
        """Scores of one detector on one cell; the fingerprint of the cell's ``images`` (the perturbation's
        table values and code version, ``Perturbation.fingerprint``, and an attack's target) keeps an edited
        table or function, or another surrogate, from serving stale scores."""
        return stable_hash([run.fit_key, test_hash, cell.perturbation, cell.table, cell.level, self.cfg.seed,
                            images.fingerprint])

    def cell_tasks(self, runs: list[DetectorRun], test: ImageSet, grid: list[Cell]) -> list[CellTask]:
        """Every (detector, cell) of the grid, in grid order: its cache key, or why it cannot be scored there."""
        test_hash = stable_hash(test.hashes)
        tasks = []
        for cell in grid:
            cell_sets = CellImages(test, cell, self.settings.seed, self.surrogates)
            for run in runs:
                images = cell_sets.for_detector(run.detector, run.fit_key)
                if isinstance(images, str):  # e.g. a white-box attack on a non-differentiable detector
                    tasks.append(CellTask(run, cell, skip=images))
                else:
                    tasks.append(CellTask(run, cell, self.cell_key(run, test_hash, cell, images), cell_sets.attack))
        return tasks

    def score_cells(self, runs: list[DetectorRun], test: ImageSet, grid: list[Cell]) -> None:
        """Cached cells are read back; the executor scores the rest and each cell is cached as it arrives,
        so an interrupted run resumes with only the missing (detector, cell) pairs."""
        bar = tqdm(total=len(grid) * len(runs), desc="cells", disable=not self.progress)
        by_name = {run.name: run for run in runs}
        keys: dict[tuple[str, Cell], str] = {}
        plain: dict[int, dict[Cell, list[Detector]]] = {}  # training seed -> cell -> detectors lacking it
        attacks: dict[int, dict[Cell, list[DetectorRun]]] = {}  # training seed -> adversarial cell -> runs
        for task in self.cell_tasks(runs, test, grid):
            run, cell = task.run, task.cell
            if task.skip:
                if not any(k.startswith(f"{cell.perturbation}:") for k in run.skipped_cells):
                    self.log(f"  skipped {run.name} on {cell.perturbation}: {task.skip}")
                run.skipped_cells[cell.key] = task.skip
                bar.update(1)
                continue
            cached = self.cache.load_arrays("cells", task.key)
            if cached is not None:
                run.predictions[cell] = Prediction(cached["score"], cached.get("source"))
                bar.update(1)
                continue
            keys[(run.name, cell)] = task.key
            if task.attack:
                attacks.setdefault(run.train_seed, {}).setdefault(cell, []).append(run)
            else:
                plain.setdefault(run.train_seed, {}).setdefault(cell, []).append(run.detector)
        spent_before = dict(self.executor.seconds)
        scored: dict[str, int] = {}  # images each detector scored in this call
        for seed, cells in plain.items():  # one training seed per executor call: its context carries the seed
            jobs = [CellJob(cell, detectors) for cell, detectors in cells.items()]
            for job, detector, outcome in self.executor.score(jobs, test, self.settings, replace(self.ctx, seed=seed)):
                run = by_name[detector.name]
                bar.set_postfix_str(f"{run.name} {job.cell.key}")
                if run.status != "ok":
                    continue
                self.take_cell(run, job.cell, keys[(run.name, job.cell)], outcome)
                scored[run.name] = scored.get(run.name, 0) + len(test)
                bar.update(1)
        for seed, cells in attacks.items():
            attack_jobs = [AttackJob(cell, [r.detector for r in cell_runs], [r.fit_key for r in cell_runs],
                                     self.cell_surrogates(cell)) for cell, cell_runs in cells.items()]
            for job, detector, outcome in self.executor.attack(attack_jobs, test, self.settings,
                                                               replace(self.ctx, seed=seed)):
                run = by_name[detector.name]
                bar.set_postfix_str(f"{run.name} {job.cell.key}")
                if run.status == "ok":
                    self.take_cell(run, job.cell, keys[(run.name, job.cell)], outcome)
                    scored[run.name] = scored.get(run.name, 0) + len(test)
                bar.update(1)
        bar.close()
        for name, images in scored.items():
            seconds = self.executor.seconds.get(name, 0.0) - spent_before.get(name, 0.0)
            if seconds > 0 and by_name[name].status == "ok":
                record_timing(self.cache, by_name[name].detector.config(), self.device, SCORE, seconds, images)
        for run in runs:  # grid order, whichever order the executor finished the cells in
            run.predictions = {cell: run.predictions[cell] for cell in grid if cell in run.predictions}

    def cell_surrogates(self, cell: Cell) -> dict:
        """The surrogate a transfer cell is crafted on ({name: (detector, fit key)}), {} for other cells."""
        surrogate = surrogate_of(cell)
        return {surrogate: self.surrogates[surrogate]} if surrogate is not None else {}

    def take_cell(self, run: DetectorRun, cell: Cell, key: str, outcome: Prediction | Failure) -> None:
        """Cache one scored cell and keep its prediction, or record why it failed."""
        if isinstance(outcome, Failure):
            self.record_failure(run, outcome, f"scoring {cell.key}: ")
            self.log(f"  failed {run.name}: {run.reason}")
            return
        arrays = {"score": outcome.score}
        if outcome.source is not None:
            arrays["source"] = outcome.source.astype(str)
        self.cache.save_arrays("cells", key, **arrays)
        run.predictions[cell] = Prediction(arrays["score"], arrays.get("source"))

    # -- the whole run ---------------------------------------------------------------
    def run(self) -> RunRecord:
        atomic.ensure_writable_dir(self.out_dir, "output directory (--out)")
        atomic.ensure_writable_dir(self.cache.root, "cache directory (--cache-dir)")
        load_plugins()
        names = expand_detectors(self.cfg.detectors)
        grid = compile_grid(self.cfg.perturb, self.cfg.preset)
        once: dict[str, tuple[DetectorRun, list[dict], list[dict]]] = {}
        passes = [self.run_seed(train_seed, names, grid, once) for train_seed in self.cfg.training_seeds]
        identity = {"run_id": self.run_id, "config_hash": self.config_hash,
                    "date": self.started.isoformat(timespec="seconds")}
        record = build_record(self.cfg, identity, passes[0].runs, passes[0].splits, grid, self.audit_block,
                              self.device, self.executor.name)
        record.reproduced_from = self.reproduced_from
        if len(passes) > 1:
            add_seed_runs(record, passes)
        removed = write_store(self.out_dir, record, [row for p in passes for row in p.metric_rows],
                              [row for p in passes for row in p.score_rows])
        if removed:
            self.log(f"removed {len(removed)} file(s) a previous run left in {self.out_dir} (figures, report, "
                     "leaderboards, results)")
        return record

    def run_seed(self, train_seed: int, names: list[str], grid: list[Cell],
                 once: dict[str, tuple[DetectorRun, list[dict], list[dict]]]) -> SeedPass:
        """One training seed: splits, fits, scores and rows (each row's ``seed`` = ``train_seed``).

        A training-free detector on a fixed split is fitted and scored at the first seed only (``once``
        keeps its run and rows) and its rows are repeated under the later seeds."""
        multi = len(self.cfg.training_seeds) > 1
        splits = build_splits(self.cfg, self.cache, self.progress, self.cfg.split_seed(train_seed))
        test = self.settings.limits.image_set(splits.test, self.decoded)
        seed_note = f" [training seed {train_seed}, split seed {splits.split_seed}]" if multi else ""
        self.log(f"dataset {splits.test_dataset.name} ({splits.test_dataset.hash}): train {len(splits.train)}, "
                 f"val {len(splits.val)}, test {len(splits.test)} images; "
                 f"{len(splits.test_dataset.skips)} skipped; {len(grid)} cells x {len(names)} detectors{seed_note}")
        if self.origin is not None and self.reproduced_from is None:
            self.reproduced_from, warning = compare_data(self.origin, self.cfg, splits.test_dataset.hash)
            if warning:
                self.log(warning)
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
        metrics_out, scores_out = [], []
        for run in runs:
            if run.name in once:
                _, metrics, scores = once[run.name]
            else:
                # a detector that failed on a later cell keeps the rows of the cells it finished
                metrics = metric_rows(run, test, dataset_name, self.cfg.seed, self.cfg.bootstrap, groups)
                scores = score_rows(run, test, dataset_name, groups)
                if not trains(run.name) and not self.cfg.vary_split:
                    once[run.name] = (run, metrics, scores)
            metrics_out += [{**row, "seed": train_seed} for row in metrics]
            scores_out += [{**row, "seed": train_seed} for row in scores]
        return SeedPass(train_seed, splits, runs, metrics_out, scores_out)
