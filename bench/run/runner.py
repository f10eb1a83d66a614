"""The runner: detectors x dataset x perturbations x severities -> scored cells -> result store.

Each detector is fitted once on the clean training split (cached by its config,
the training data's hash and the training seed); a decision threshold is fixed on clean
validation data; every grid cell's scores are cached by (fit, test data,
perturbation table, severity, seed). A second identical run recomputes
nothing, and a run killed at any point resumes with only the missing cells.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from tqdm.auto import tqdm

from bench.core import atomic
from bench.core.cache import Cache
from bench.core.detector import Detector, FitContext, Prediction
from bench.core.errors import BenchError
from bench.core.hashing import stable_hash
from bench.core.registries import DETECTORS, PERTURBATIONS, create_detector, load_plugins
from bench.data.dataset import Dataset, Item, limit_per_class, load_dataset
from bench.data.imageset import DecodedCache, ImageSet, PerturbedImageSet
from bench.data.split import near_duplicate_groups
from bench.nn.training import resolve_device
from bench.run.config import RunConfig
from bench.run.metrics import evaluate_cell, threshold_at_tnr
from bench.run.resample import cell_seed
from bench.run.store import write_store
from bench.weights.gate import WeightsDecision, check_detector_weights
from perturbations import param_label, param_value
from perturbations.spec import parse_perturb_spec

PERTURBATION_STAGE = "before detector preprocessing, at full resolution"
CLEAN = ("none", 0)


@dataclass
class Splits:
    train: list[Item]
    val: list[Item]
    test: list[Item]
    train_hash: str
    test_hash: str  # the test images actually evaluated (after --limit and --test-generators)
    test_dataset: Dataset
    train_dataset: Dataset


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
    fit_seconds: float = 0.0
    provenance: dict = field(default_factory=dict)
    predictions: dict[tuple[str, int], Prediction] = field(default_factory=dict)


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


def build_splits(cfg: RunConfig, cache: Cache, progress: bool) -> Splits:
    load = lambda spec: load_dataset(spec, cache, cfg.seed, cfg.workers, cfg.max_pixels, cfg.min_side, progress,
                                     cfg.allow_outside_paths)
    test_ds = load(cfg.dataset)
    train_ds = load(cfg.train_on) if cfg.train_on and cfg.train_on != cfg.dataset else test_ds
    train, val = train_ds.split("train"), train_ds.split("val")
    test = test_ds.items if train_ds is not test_ds else test_ds.split("test")

    def keep(items: list[Item], gens: list[str] | None, role: str, ds: Dataset) -> list[Item]:
        if not gens:
            return items
        unknown = sorted(set(gens) - set(ds.generators))
        if unknown:
            raise BenchError(f"{role} generator(s) {', '.join(unknown)} not in dataset {ds.name!r} "
                             f"(it has: {', '.join(ds.generators)})")
        return [it for it in items if it.label == 0 or it.generator in gens]

    train = keep(train, cfg.train_generators, "--train-generators", train_ds)
    val = keep(val, cfg.train_generators, "--train-generators", train_ds)
    test = keep(test, cfg.test_generators, "--test-generators", test_ds)
    train, val, test = (limit_per_class(x, cfg.limit, cfg.seed) for x in (train, val, test))
    for role, items in (("training", train), ("validation", val), ("test", test)):
        if not any(it.label == 0 for it in items) or not any(it.label == 1 for it in items):
            raise BenchError(f"the {role} split has no {'real' if not any(it.label == 0 for it in items) else 'generated'} "
                             "images; use a larger dataset or --limit, or give splits in the manifest")
    train_hash = stable_hash(sorted((it.sha256, it.generator, "train") for it in train)
                             + sorted((it.sha256, it.generator, "val") for it in val))
    test_hash = stable_hash(sorted((it.sha256, it.label, it.generator) for it in test))
    return Splits(train, val, test, train_hash, test_hash, test_ds, train_ds)


def weights_identity(provenance: dict) -> dict[str, str]:
    """Component -> the sha256 of the weights a detector uses ("random" for random initialisation): part of
    the fit key, so every cached fit, checkpoint and cell score keys on the exact weights it used."""
    return {name: "random" if rec.get("random") else str(rec.get("sha256"))
            for name, rec in sorted(provenance.items()) if isinstance(rec, dict)}


def bootstrap_groups(items: list[Item]):
    """Bootstrap group of each test image: near-duplicates, the manifest's group (same source image)
    and caption siblings are resampled together (:mod:`bench.run.resample`)."""
    return near_duplicate_groups([it.dhash for it in items], [it.group for it in items],
                                 [it.caption for it in items])


class Runner:
    def __init__(self, cfg: RunConfig, out_dir: Path | None, cache: Cache, progress: bool = True,
                 log: Callable[[str], None] = print):
        self.cfg, self.cache, self.progress, self.log = cfg, cache, progress, log
        self.started = datetime.now(timezone.utc)
        self.config_hash = stable_hash(cfg.to_dict(), 8)
        self.run_id = f"{self.started.strftime('%Y%m%dT%H%M%SZ')}-{self.config_hash}"
        self.out_dir = Path(out_dir) if out_dir else Path("results/runs") / self.run_id
        self.device = str(resolve_device(cfg.device))
        self.ctx = FitContext(device=self.device, seed=cfg.training_seed, workers=cfg.workers,
                              batch_size=cfg.batch_size, progress=progress, extras={"cache": cache})
        self.decoded = DecodedCache()

    # -- fitting ----------------------------------------------------------------
    def prepare(self, name: str, splits: Splits) -> DetectorRun:
        run = DetectorRun(name)
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
            run.fit_key = stable_hash([detector.config(), splits.train_hash, self.cfg.seed, self.cfg.training_seed,
                                       decision.label, weights_identity(decision.provenance)])
            cached = self.cache.load_object("fits", run.fit_key)
            if cached is None:
                started = time.perf_counter()
                train = ImageSet(splits.train, self.decoded, self.cfg.max_pixels, self.cfg.min_side)
                val = ImageSet(splits.val, self.decoded, self.cfg.max_pixels, self.cfg.min_side)
                ctx = replace(self.ctx, extras={**self.ctx.extras,
                                                "checkpoint": self.cache.path("checkpoints", run.fit_key, "pt")})
                detector.fit(train, val, ctx)
                val_pred = detector.predict(val, ctx)
                threshold = threshold_at_tnr(val_pred.score[val.labels == 0], self.cfg.val_tnr)
                cached = {"detector": detector, "val_threshold": threshold,
                          "fit_seconds": time.perf_counter() - started}
                self.cache.save_object("fits", run.fit_key, cached)
            run.detector, run.val_threshold, run.fit_seconds = (cached["detector"], cached["val_threshold"],
                                                                cached["fit_seconds"])
            run.status = "ok"
        except BenchError as exc:
            run.status, run.reason = "failed", str(exc)
        except Exception as exc:  # a broken detector must not take the other detectors' results with it
            run.status, run.reason = "failed", f"{type(exc).__name__}: {exc}"
            run.provenance["traceback"] = traceback.format_exc()
        return run

    # -- scoring ------------------------------------------------------------------
    def cell_key(self, run: DetectorRun, test_hash: str, perturbation: str, table: str, severity: int,
                 fingerprint: str = "") -> str:
        """Scores of one detector on one cell; ``fingerprint`` = the perturbation's table values and code
        version (``Perturbation.fingerprint``), so an edited table or function never serves stale scores."""
        return stable_hash([run.fit_key, test_hash, perturbation, table, severity, self.cfg.seed, fingerprint])

    def score_cells(self, runs: list[DetectorRun], test: ImageSet, grid: list[tuple[str, int]]) -> None:
        test_hash = stable_hash(test.hashes)
        bar = tqdm(total=len(grid) * len(runs), desc="cells", disable=not self.progress)
        for perturbation, severity in grid:
            images = test if perturbation == "none" else PerturbedImageSet(
                test, PERTURBATIONS.get(perturbation), severity, self.cfg.seed, self.cfg.preset)
            for run in runs:
                bar.set_postfix_str(f"{run.name} {perturbation}:{severity}")
                key = self.cell_key(run, test_hash, perturbation, images.table, severity, images.fingerprint)
                cached = self.cache.load_arrays("cells", key)
                if cached is None:
                    images.materialize(self.cfg.workers)
                    try:
                        pred = run.detector.predict(images, self.ctx)
                    except Exception as exc:
                        run.status, run.reason = "failed", f"scoring {perturbation}:{severity}: " \
                                                           f"{type(exc).__name__}: {exc}"
                        run.provenance["traceback"] = traceback.format_exc()
                        self.log(f"  failed {run.name}: {run.reason}")
                        continue
                    arrays = {"score": pred.score}
                    if pred.source is not None:
                        arrays["source"] = pred.source.astype(str)
                    self.cache.save_arrays("cells", key, **arrays)
                    cached = arrays
                run.predictions[(perturbation, severity)] = Prediction(cached["score"], cached.get("source"))
                bar.update(1)
            runs = [r for r in runs if r.status == "ok"]
        bar.close()

    # -- metrics -------------------------------------------------------------------
    def metric_rows(self, run: DetectorRun, test: ImageSet, dataset: str, groups=None) -> list[dict]:
        """Every detector of a cell is resampled with the same draws (seed: run seed and cell), whole
        ``groups`` at a time (:mod:`bench.run.resample`)."""
        rows = []
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
        splits = build_splits(self.cfg, self.cache, self.progress)
        test = ImageSet(splits.test, self.decoded, self.cfg.max_pixels, self.cfg.min_side)
        self.log(f"dataset {splits.test_dataset.name} ({splits.test_dataset.hash}): train {len(splits.train)}, "
                 f"val {len(splits.val)}, test {len(splits.test)} images; "
                 f"{len(splits.test_dataset.skips)} skipped; {len(grid)} cells x {len(names)} detectors")
        for skip in splits.test_dataset.skips[:20]:
            self.log(f"  skipped image {skip.id}: {skip.reason}")
        if len(splits.test_dataset.skips) > 20:
            self.log(f"  ... and {len(splits.test_dataset.skips) - 20} more (see run.json)")
        runs = []
        for name in names:
            self.log(f"fitting {name} ...")
            run = self.prepare(name, splits)
            if run.status != "ok":
                self.log(f"  {run.status} {name}: {run.reason}")
                if self.cfg.strict:
                    raise BenchError(f"{name} {run.status}: {run.reason} (--strict)")
            runs.append(run)
        self.score_cells([r for r in runs if r.status == "ok"], test, grid)
        dataset_name = splits.test_dataset.name
        ok = [r for r in runs if r.status == "ok"]
        groups = bootstrap_groups(splits.test)
        metric_rows = [row for r in ok for row in self.metric_rows(r, test, dataset_name, groups)]
        score_rows = [row for r in ok for row in self.score_rows(r, test, dataset_name, groups)]
        record = self.run_record(runs, splits, grid)
        write_store(self.out_dir, record, metric_rows, score_rows)
        return record

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
            "seed": self.cfg.seed, "train_seed": self.cfg.training_seed, "machine": machine_record(),
            "preset": self.cfg.preset, "profile": self.cfg.profile,
            "config": self.cfg.to_dict(), "config_hash": self.config_hash,
            "datasets": datasets, "dataset_hash": splits.test_dataset.hash, "train_hash": splits.train_hash,
            "test_hash": splits.test_hash,
            "splits": {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)},
            "perturbation_stage": PERTURBATION_STAGE, "perturbation_tables": tables,
            "grid": [list(c) for c in grid],
            "detectors": {r.name: {"status": r.status, "reason": r.reason, "weights": r.weights, "profile": r.profile,
                                   "val_threshold": r.val_threshold, "fit_seconds": round(r.fit_seconds, 3),
                                   "fit_key": r.fit_key, "provenance": r.provenance,
                                   "config": r.detector.config() if r.detector else None} for r in runs},
            "skipped_images": skipped_images,
            "n_skipped_images": len(skipped_images),
        }
