"""A run's configuration: what the CLI flags, a YAML file, and run.json's "config" all describe.

``bench run --config FILE`` accepts a YAML file with these keys, and the
``config`` object stored in a run's run.json can be fed back the same way to
reproduce that run. Flags given on the command line override the file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from bench.core.errors import BenchError


@dataclass
class RunConfig:
    detectors: list[str] = field(default_factory=lambda: ["all"])
    dataset: str = "demo"
    train_on: str | None = None  # train on this dataset, evaluate on `dataset` (cross-dataset protocol)
    train_generators: list[str] | None = None  # hold generators out: train on these (plus real) ...
    test_generators: list[str] | None = None  # ... and test on these (plus real)
    perturb: str = "jpeg,blur,noise"
    preset: str = "default"
    seed: int = 0
    # Training randomness alone (model init, shuffling, augmentation, dropout); None = ``seed``. Split,
    # perturbations and bootstrap keep following ``seed``, so runs that differ only here measure how much
    # a detector's numbers depend on its training draw (bench baseline save --band).
    train_seed: int | None = None
    limit: int | None = None  # images per generator class and split, for smoke runs
    device: str = "auto"
    workers: int = 2
    batch_size: int = 32
    bootstrap: int = 200  # bootstrap replicates for the 95% intervals
    val_tnr: float = 0.95  # the validation threshold keeps this share of clean real images below it
    max_pixels: int = 64_000_000
    min_side: int = 16
    detector_params: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-detector keyword overrides
    weights: dict[str, str] = field(default_factory=dict)  # weight component -> local path overrides
    random_weights: bool = False
    strict: bool = False

    @property
    def training_seed(self) -> int:
        return self.seed if self.train_seed is None else self.train_seed

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise BenchError(f"unknown config key(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        cfg = cls(**data)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if isinstance(self.detectors, str):
            self.detectors = [d.strip() for d in self.detectors.split(",") if d.strip()]
        for name in ("train_generators", "test_generators"):
            value = getattr(self, name)
            if isinstance(value, str):
                setattr(self, name, [g.strip() for g in value.split(",") if g.strip()])
        if self.limit is not None and self.limit < 1:
            raise BenchError("limit must be a positive number of images per class")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise BenchError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.train_seed is not None and (not isinstance(self.train_seed, int) or self.train_seed < 0):
            raise BenchError(f"train_seed must be a non-negative integer, got {self.train_seed!r}")
        if self.bootstrap < 0:
            raise BenchError("bootstrap must be >= 0")
        if not 0.5 <= self.val_tnr < 1:
            raise BenchError("val_tnr must be in [0.5, 1)")


def load_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML run config, or a run.json whose "config" object is used."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise BenchError(f"cannot read config {p}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise BenchError(f"config {p} is not valid YAML: {exc}") from None
    if isinstance(data, dict) and "config" in data and "run_id" in data:
        data = data["config"]  # a run.json (JSON is YAML)
    if not isinstance(data, dict):
        raise BenchError(f"config {p} must be a mapping of keys to values")
    return data
