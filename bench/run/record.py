"""The run record, run.json: what a run was (config, data, code, machine, detectors), typed.

The runner builds a :class:`RunRecord`, the store writes it last (bench.run.store), and readers go through
:meth:`RunRecord.from_dict`, which checks each field's type (an edited or foreign run.json is a one-line
error, not a wrong number later) and reads every earlier format: ``record_version`` is absent from the
records written before it existed (version 1), which lack the later fields (their defaults stand in).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

from bench.core.errors import BenchError
from bench.core.registries import PERTURBATIONS
from bench.run.config import RunConfig
from bench.run.outcomes import STATUS_ORDER, DetectorRun, SeedPass
from bench.run.plan import Cell
from bench.run.splits import Splits, normalization_record
from perturbations import param_label

PERTURBATION_STAGE = "before detector preprocessing, at full resolution"

#: 2: ``record_version`` and each detector's ``outputs_probability`` (earlier reports inferred it from the
#: presence of probability metrics).
RECORD_VERSION = 2
OPTIONAL = ("train_seeds", "seed_runs", "reproduced_from")  # left out of run.json when None


@dataclass
class DetectorRecord:
    """One detector of a run: how it ended and everything that identifies its fit."""

    status: str = "pending"  # ok | skipped | failed
    reason: str = ""
    weights: str = "none"  # pretrained | trained | none | random
    profile: str = ""  # paper | fast | custom
    val_threshold: float | None = None
    fit_seconds: float = 0.0
    fit_key: str = ""
    provenance: dict = field(default_factory=dict)
    skipped_cells: dict[str, str] = field(default_factory=dict)  # "perturbation:level" -> why it was not scored
    config: dict | None = None  # Detector.config() once constructed
    outputs_probability: bool | None = None  # scores are P(generated); None in records before version 2

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if not self.skipped_cells:  # only detectors with skipped cells list them
            del data["skipped_cells"]
        return data


@dataclass
class RunRecord:
    run_id: str
    date: str = ""
    finished: str = ""
    git: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    device: str = ""
    seed: int = 0
    train_seed: int = 0
    machine: dict = field(default_factory=dict)
    preset: str = "default"
    profile: str = "paper"
    config: dict = field(default_factory=dict)
    config_hash: str = ""
    executor: str = "local"
    datasets: dict = field(default_factory=dict)
    dataset_hash: str = ""
    train_hash: str = ""
    test_hash: str = ""
    splits: dict = field(default_factory=dict)
    perturbation_stage: str = ""
    perturbation_tables: dict = field(default_factory=dict)
    grid: list = field(default_factory=list)  # [[perturbation, level], ...] in grid order
    detectors: dict[str, DetectorRecord] = field(default_factory=dict)
    normalize: dict | None = None
    audit: dict = field(default_factory=dict)
    skipped_images: list = field(default_factory=list)
    n_skipped_images: int = 0
    overlaps: list = field(default_factory=list)
    # every image rehashed (--verify-data), or the probe cache (path, size, mtime) trusted; None before this field
    data_verified: bool | None = None
    train_seeds: list[int] | None = None  # runs with several training seeds (--seeds) only
    seed_runs: list[dict] | None = None  # ... and per seed: its split, data hashes and fits
    # runs started from a run.json (bench.run.origin): that run's dataset hash beside the one read now
    reproduced_from: dict | None = None
    record_version: int = RECORD_VERSION

    def to_dict(self) -> dict[str, Any]:
        data = {"record_version": self.record_version}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "record_version" or (f.name in OPTIONAL and value is None):
                continue
            data[f.name] = {n: d.to_dict() for n, d in value.items()} if f.name == "detectors" else value
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str = "run.json") -> "RunRecord":
        """A stored record of any version; a one-line BenchError names the first field of the wrong type."""
        if not isinstance(data, dict):
            raise BenchError(f"{where} is not a bench run record (a JSON object)")
        version = data.get("record_version", 1)
        if not isinstance(version, int) or isinstance(version, bool) or version > RECORD_VERSION:
            raise BenchError(f"{where}: record_version {version!r} is newer than this bench reads "
                             f"({RECORD_VERSION}); upgrade aigi-bench")
        if not isinstance(data.get("run_id"), str):
            raise BenchError(f"{where} is not a bench run record (no run_id)")
        known = {f.name: f for f in fields(cls)}
        values = {name: value for name, value in data.items() if name in known}
        for name, value in values.items():
            _check_type(where, name, value, known[name].type)
        detectors = values.get("detectors") or {}
        values["detectors"] = {name: _detector(where, name, d) for name, d in detectors.items()}
        values["record_version"] = version
        return cls(**values)


def _detector(where: str, name: str, data: Any) -> DetectorRecord:
    if not isinstance(data, dict):
        raise BenchError(f"{where}: detectors.{name} is not an object")
    known = {f.name: f for f in fields(DetectorRecord)}
    values = {key: value for key, value in data.items() if key in known}
    for key, value in values.items():
        _check_type(where, f"detectors.{name}.{key}", value, known[key].type)
    return DetectorRecord(**values)


_JSON_TYPES: dict[str, tuple[type, ...]] = {"dict": (dict,), "list": (list,), "str": (str,), "bool": (bool,),
                                            "int": (int,), "float": (int, float)}


def _check_type(where: str, name: str, value: Any, annotation: str) -> None:
    """``value`` must be of a JSON type that the field's annotation allows (``float | None``: a number or null)."""
    allowed = [part.strip().split("[")[0] for part in annotation.split("|")]
    if value is None and "None" in allowed:
        return
    ok = any(isinstance(value, _JSON_TYPES[kind]) and (kind == "bool" or not isinstance(value, bool))
             for kind in allowed if kind in _JSON_TYPES)
    if not ok:
        raise BenchError(f"{where}: field {name} holds {type(value).__name__}, expected {annotation}: "
                         "an edited or foreign run record")


# ---------------------------------------------------------------- building a run's record


def detector_record(run: DetectorRun) -> DetectorRecord:
    return DetectorRecord(run.status, run.reason, run.weights, run.profile, run.val_threshold,
                          round(run.fit_seconds, 3), run.fit_key, run.provenance, dict(run.skipped_cells),
                          run.detector.config() if run.detector else None,
                          bool(run.detector.info.outputs_probability) if run.detector else None)


def perturbation_tables(grid: list[Cell], preset: str) -> dict[str, dict]:
    """Each perturbation of the grid: the table it read under ``preset``, its parameter and every level's label."""
    tables = {}
    for perturbation in sorted({cell.perturbation for cell in grid if not cell.clean}):
        p = PERTURBATIONS.get(perturbation)
        tables[perturbation] = {"preset": p.table_preset(preset), "param": p.param_name, "unit": p.unit,
                                "levels": {level: param_label(p, level, preset) for level in p.levels(preset)}}
    return tables


def build_record(cfg: RunConfig, identity: dict[str, str], runs: list[DetectorRun], splits: Splits, grid: list[Cell],
                 audit: dict, device: str, executor: str) -> RunRecord:
    """The record of a run's first (or only) training seed; ``identity``: its run_id, config_hash and start date."""
    from bench.run.provenance import device_description, git_state, machine_record, package_versions

    datasets = {splits.test_dataset.name: splits.test_dataset.summary()}
    if splits.train_dataset is not splits.test_dataset:
        datasets[splits.train_dataset.name] = splits.train_dataset.summary()
    skipped_images = [{"dataset": ds.name, "id": s.id, "reason": s.reason}
                      for ds in {id(splits.test_dataset): splits.test_dataset,
                                 id(splits.train_dataset): splits.train_dataset}.values() for s in ds.skips]
    return RunRecord(
        run_id=identity["run_id"], date=identity["date"],
        finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        git=git_state(), versions=package_versions(), device=device_description(device),
        seed=cfg.seed, train_seed=cfg.training_seeds[0], machine=machine_record(), preset=cfg.preset,
        profile=cfg.profile, config=cfg.to_dict(), config_hash=identity["config_hash"], executor=executor,
        datasets=datasets, dataset_hash=splits.test_dataset.hash, train_hash=splits.train_hash,
        test_hash=splits.test_hash,
        splits={"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)},
        perturbation_stage=PERTURBATION_STAGE, perturbation_tables=perturbation_tables(grid, cfg.preset),
        grid=[[cell.perturbation, cell.level] for cell in grid],
        detectors={run.name: detector_record(run) for run in runs},
        normalize=normalization_record(cfg.normalize, splits), audit=audit, skipped_images=skipped_images,
        n_skipped_images=len(skipped_images), overlaps=splits.overlaps, data_verified=cfg.verify_data)


def add_seed_runs(record: RunRecord, passes: list[SeedPass]) -> None:
    """The keys of a run with several training seeds: ``train_seeds``, and per seed (``seed_runs``) its split
    seed, data hashes, allowed overlaps and fits. Each detector's status becomes the worst over the seeds, so a
    fit that failed under one seed is not hidden."""
    for p in passes:
        for run in p.runs:
            shown = record.detectors[run.name]
            if STATUS_ORDER.get(run.status, 2) > STATUS_ORDER.get(shown.status, 2):
                shown.status, shown.reason = run.status, f"training seed {p.train_seed}: {run.reason}"
    record.train_seeds = [p.train_seed for p in passes]
    record.seed_runs = [
        {"train_seed": p.train_seed, "split_seed": p.splits.split_seed, "dataset_hash": p.splits.test_dataset.hash,
         "train_hash": p.splits.train_hash, "test_hash": p.splits.test_hash, "overlaps": p.splits.overlaps,
         "detectors": {r.name: {"status": r.status, "reason": r.reason, "train_seed": r.train_seed,
                                "fit_key": r.fit_key, "val_threshold": r.val_threshold,
                                "fit_seconds": round(r.fit_seconds, 3)} for r in p.runs}}
        for p in passes]
