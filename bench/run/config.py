"""A run's configuration: what the CLI flags, a YAML file, and run.json's "config" all describe.

``bench run --config FILE`` accepts a YAML file with these keys, and the
``config`` object stored in a run's run.json can be fed back the same way to
reproduce that run. Flags given on the command line override the file.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from bench.core.detector import PROFILES
from bench.core.detector_params import check_detector_params
from bench.core.errors import BenchError
from bench.core.presets import PRESETS
from bench.data.normalize import canonical_spec


@dataclass
class RunConfig:
    detectors: list[str] = field(default_factory=lambda: ["all"])
    dataset: str = "demo"
    train_on: str | None = None  # train on this dataset, evaluate on `dataset` (cross-dataset protocol)
    generators: list[str] | None = None  # keep only these generators of `dataset` (plus their reals)
    train_generators: list[str] | None = None  # hold generators out: train on these (plus real) ...
    test_generators: list[str] | None = None  # ... and test on these (plus real)
    perturb: str = "jpeg,blur,noise"
    preset: str = "default"
    profile: str = "paper"  # detector settings: "paper" (the authors') or "fast" (CPU smoke runs; bench.core.detector)
    seed: int = 0
    # Training randomness alone (model init, shuffling, augmentation, dropout); None = ``seed``. Split,
    # perturbations and bootstrap keep following ``seed``, so runs that differ only here measure how much
    # a detector's numbers depend on its training draw (bench baseline save --band).
    train_seed: int | None = None
    # Several training seeds in one run (bench run --seeds 0,1,2): every training detector is fitted once per
    # seed, training-free ones once; results carry a ``seed`` column. None = the one training seed above.
    seeds: list[int] | None = None
    vary_split: bool = False  # with seeds: redraw the split (and --limit's choice) with each training seed too
    allow_overlap: bool = False  # run although given splits or --train-on data overlap (recorded in run.json)
    # Rows sharing a caption or prompt stay in one split; off only to reproduce a split made before that rule.
    caption_groups: bool = True
    limit: int | None = None  # images per generator class and split, for smoke runs
    device: str = "auto"
    workers: int = 2  # preparation processes of the scoring stream (0: in-process); threads elsewhere
    batch_size: int | None = None  # scoring batch size; None: each detector's own (bench.run.work.detector_ctx)
    bootstrap: int = 200  # bootstrap replicates for the 95% intervals
    val_tnr: float = 0.95  # the validation threshold keeps this share of clean real images below it
    max_pixels: int = 64_000_000
    min_side: int = 16
    detector_params: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-detector keyword overrides
    weights: dict[str, str] = field(default_factory=dict)  # weight component -> local path overrides
    random_weights: bool = False
    strict: bool = False
    allow_outside_paths: bool = False  # read manifest paths that resolve outside the dataset folder
    normalize: str | None = None  # e.g. "size:512,jpeg:95": every image rewritten alike first (bench.data.normalize)
    # --plugin files (absolute paths) and modules whose detectors, perturbations or datasets the run uses
    # (bench.core.plugins; the CLI loads them before this config is checked)
    plugins: list[str] = field(default_factory=list)

    @property
    def training_seed(self) -> int:
        return self.seed if self.train_seed is None else self.train_seed

    @property
    def training_seeds(self) -> list[int]:
        """The training seeds of the run, in the order given."""
        return list(self.seeds) if self.seeds else [self.training_seed]

    def split_seed(self, training_seed: int) -> int:
        """The split follows the run seed, or the training seed with ``vary_split``."""
        return training_seed if self.vary_split else self.seed

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(key) for key in set(data) - known)
        if unknown:
            raise BenchError(f"unknown config key(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        cfg = cls(**data)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Check every field's type and range (bench.run.config.FIELD_RULES); one BenchError names the first bad one."""
        for name in STR_LISTS:
            value = getattr(self, name)
            if isinstance(value, str):
                setattr(self, name, [g.strip() for g in value.split(",") if g.strip()])
        if isinstance(self.seeds, str):  # "0,1,2" in YAML, as on the command line
            parts = [v.strip() for v in self.seeds.split(",") if v.strip()]
            self.seeds = [int(v) for v in parts] if all(v.isdecimal() for v in parts) else self.seeds
        for f in fields(self):
            _check_field(f.name, getattr(self, f.name))
        if not self.detectors:
            raise BenchError("detectors: give at least one detector name or pattern")
        if self.normalize is not None:
            self.normalize = None if self.normalize.strip().lower() == "none" else canonical_spec(self.normalize)
        if self.seeds is not None:
            if not self.seeds or len(set(self.seeds)) != len(self.seeds):
                raise BenchError(f"seeds: give distinct training seeds, got {self.seeds}")
            if self.train_seed is not None:
                raise BenchError("give either train_seed (--train-seed) or seeds (--seeds), not both")
        if self.device not in ("auto", "cpu", "cuda") and not re.fullmatch(r"cuda:\d+", self.device):
            raise BenchError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        check_detector_params(self.detector_params)


MAX_CONFIG_BYTES = 1024 * 1024
SEED_MAX = 2**32 - 1  # numpy's legacy seeding and many libraries take 32-bit seeds
INT_RANGES: dict[str, tuple[int, int | None]] = {
    "seed": (0, SEED_MAX), "train_seed": (0, SEED_MAX), "limit": (1, None), "workers": (0, 1024),
    "batch_size": (1, None), "bootstrap": (0, None), "max_pixels": (1, None), "min_side": (1, None),
}
STRS = ("dataset", "train_on", "perturb", "device", "normalize")
STR_LISTS = ("detectors", "generators", "train_generators", "test_generators", "plugins")
BOOLS = ("random_weights", "strict", "allow_outside_paths", "vary_split", "allow_overlap", "caption_groups")
OPTIONAL = ("train_on", "generators", "train_generators", "test_generators", "train_seed", "seeds", "limit",
            "normalize", "batch_size")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_field(name: str, value: Any) -> None:
    """One field against its rule: a one-line error with the field, the value and what is expected."""
    if value is None and name in OPTIONAL:
        return

    def bad(expected: str) -> BenchError:
        return BenchError(f"config field {name}: expected {expected}, got {value!r} ({type(value).__name__})")

    if name in INT_RANGES:
        low, high = INT_RANGES[name]
        if not _is_int(value) or value < low or (high is not None and value > high):
            raise bad(f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}")
    elif name in STRS:
        if not isinstance(value, str) or not value.strip():
            raise bad("a non-empty string")
    elif name in STR_LISTS:
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise bad("a list of names (or one comma-separated string)")
    elif name == "seeds":
        if not isinstance(value, list) or not all(_is_int(v) and 0 <= v <= SEED_MAX for v in value):
            raise bad(f"a list of integers from 0 to {SEED_MAX}")
    elif name in BOOLS:
        if not isinstance(value, bool):
            raise bad("true or false")
    elif name == "preset":
        if not isinstance(value, str) or value not in PRESETS:
            raise bad(" or ".join(PRESETS))
    elif name == "profile":
        if value not in PROFILES:
            raise bad(" or ".join(PROFILES))
    elif name == "val_tnr":
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.5 <= value < 1:
            raise bad("a number in [0.5, 1)")
    elif name == "weights":
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise bad("a mapping of weight component names to local paths")
    elif name == "detector_params":
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, dict) and
                                                  all(isinstance(key, str) for key in v) for k, v in value.items()):
            raise bad("a mapping of detector names to mappings of keyword arguments")


def load_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML run config, or a run.json whose "config" object is used."""
    p = Path(path)
    if p.exists() and not p.is_file():
        raise BenchError(f"config {p} is not a regular file")
    if p.is_file() and p.stat().st_size > MAX_CONFIG_BYTES:
        raise BenchError(f"config {p} is larger than {MAX_CONFIG_BYTES} bytes: not a run config")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BenchError(f"cannot read config {p}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise BenchError(f"config {p} is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except yaml.YAMLError as exc:
        raise BenchError(f"config {p} is not valid YAML: {' '.join(str(exc).split())}") from None
    if isinstance(data, dict) and "config" in data and "run_id" in data:
        data = data["config"]  # a run.json (JSON is YAML)
    if not isinstance(data, dict):
        raise BenchError(f"config {p} must be a mapping of keys to values")
    return data
