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
from typing import Any, Callable

import yaml

from bench.core.detector import PROFILES
from bench.core.detector_params import check_detector_params
from bench.core.errors import BenchError
from bench.core.presets import PRESETS


SEED_MAX = 2**32 - 1  # numpy's legacy seeding and many libraries take 32-bit seeds
GROUPS = ("data", "grid", "seeds and statistics", "execution")


def setting(default: Any, group: str, help: str | Callable[[], str], *, minimum: int | float | None = None,
            maximum: int | float | None = None, choices: Callable[[], Any] | None = None,
            metavar: str | None = None) -> Any:
    """A config field with what its flag and its check need: ``help`` (the flag's text), its ``group`` in
    ``--help`` (a callable when it is read from a registry), a range for numbers (``minimum``/``maximum``) or the ``choices`` (a callable, read when the
    flag is built or the value checked) and the flag's ``metavar``. Mutable defaults are copied for each
    config."""
    meta = {"group": group, "help": help, "minimum": minimum, "maximum": maximum, "choices": choices,
            "metavar": metavar}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def _preset_help() -> str:
    return ("severity tables: " + "; ".join(f"{name} ({what})" for name, what in PRESETS.items())
            + "; `bench list perturbations --preset NAME` prints them")


@dataclass
class RunConfig:
    """A run's whole configuration. Each field's type, range and help live here once: the YAML keys, the
    ``bench run`` flags (bench.cli.main builds them from :func:`config_fields`) and the checks follow."""

    detectors: list[str] = setting(["all"], "grid", "comma-separated names or wildcards; 'all' = every non-test "
                                                    "detector", metavar="NAMES")
    dataset: str = setting("demo", "data", "registered dataset name (e.g. demo), NAME=PATH for a published dataset "
                                           "(genimage=/data/GenImage), hf:ORG/NAME[:CONFIG][@SPLIT], a folder or a "
                                           "CSV manifest")
    train_on: str | None = setting(None, "data", "train on this dataset and evaluate on every image of --dataset "
                                                 "(cross-dataset protocol)")
    generators: list[str] | None = setting(None, "data", "keep only these generators of --dataset (plus their real "
                                                         "images; where reals are per generator, only the kept ones)")
    train_generators: list[str] | None = setting(None, "data", "train only on these generators (plus real images)")
    test_generators: list[str] | None = setting(None, "data", "test only on these generators (plus real images)")
    perturb: str = setting("jpeg,blur,noise", "grid", "perturbations and levels: 'jpeg,blur:1-3,noise', 'all' or "
                                                      "'none'; families FAMILY:ARG such as albu:MotionBlur, "
                                                      "vae_roundtrip:taef2, transfer:npr; 'imagenet-c'")
    preset: str = setting("default", "grid", _preset_help, choices=lambda: list(PRESETS))
    profile: str = setting("paper", "grid", "detector settings: paper = the authors' preprocessing, augmentation, "
                                            "schedule and selection; fast = CPU smoke settings of make demo and the "
                                            "CI suite", choices=lambda: list(PROFILES))
    seed: int = setting(0, "seeds and statistics", "seed for splits, perturbations, training and bootstrap",
                        minimum=0, maximum=SEED_MAX)
    # Training randomness alone (model init, shuffling, augmentation, dropout); None = ``seed``. Split,
    # perturbations and bootstrap keep following ``seed``, so runs that differ only here measure how much
    # a detector's numbers depend on its training draw (bench baseline save --band).
    train_seed: int | None = setting(None, "seeds and statistics", "seed for training randomness only (init, "
                                     "shuffling, augmentation; default: --seed); see `bench baseline save --band`",
                                     minimum=0, maximum=SEED_MAX)
    # Several training seeds in one run (bench run --seeds 0,1,2): every training detector is fitted once per
    # seed, training-free ones once; results carry a ``seed`` column. None = the one training seed above.
    seeds: list[int] | None = setting(None, "seeds and statistics", "comma-separated training seeds, e.g. 0,1,2: "
                                      "fit every training detector once per seed (training-free ones once); "
                                      "results get a seed column", minimum=0, maximum=SEED_MAX)
    vary_split: bool = setting(False, "seeds and statistics", "with --seeds: draw the split with each training "
                                                              "seed too (default: one split)")
    allow_overlap: bool = setting(False, "data", "run although manifest splits or --train-on data share identical "
                                                 "or near-duplicate images with the test set (they are listed and "
                                                 "recorded in run.json)")
    caption_groups: bool = setting(True, "data", "keep rows that share a caption or prompt in one split (off only "
                                                 "to reproduce a split made before that rule)")
    limit: int | None = setting(None, "data", "at most N images per generator class and split (smoke runs)",
                                minimum=1)
    device: str = setting("auto", "execution", "where to train and score: auto, cpu, cuda or cuda:N")
    workers: int = setting(2, "execution", "processes that decode, perturb and prepare images for the models while "
                                           "they score (0 = in this process)", minimum=0, maximum=1024)
    batch_size: int | None = setting(None, "execution", "scoring batch size for every detector (default: on a GPU "
                                                        "each detector's own, on the CPU 32)", minimum=1)
    bootstrap: int = setting(200, "seeds and statistics", "bootstrap replicates for the 95%% intervals (0 = none)",
                             minimum=0)
    val_tnr: float = setting(0.95, "seeds and statistics", "the validation threshold keeps this share of clean "
                                                           "real images below it", minimum=0.5, maximum=1)
    verify_data: bool = setting(False, "data", "rehash and decode every image instead of trusting the probe cache "
                                               "(keyed by path, size and modification time): slower, but a file "
                                               "replaced with the same size and time is seen")
    max_pixels: int = setting(64_000_000, "data", "images with more pixels are skipped with a reason", minimum=1)
    min_side: int = setting(16, "data", "images with a shorter side are skipped with a reason", minimum=1)
    detector_params: dict[str, dict[str, Any]] = setting(
        {}, "grid", "per-detector keyword overrides (YAML: {DETECTOR: {KEY: VALUE}}); any override makes that "
                    "detector's profile 'custom'", metavar="DETECTOR.KEY=VALUE")
    weights: dict[str, str] = setting({}, "grid", "use a local file or folder for a pretrained component "
                                                  "(repeatable)", metavar="NAME=PATH")
    # Detectors with no code in the harness (bench.external.spec), registered by the CLI before the run expands
    # ``detectors``.
    external: dict[str, str | dict[str, Any]] = setting(
        {}, "grid", "declare a detector with no code in the harness (repeatable): cmd:COMMAND, http:URL or "
                    "scores:FILE, options as KIND[key=value,...]:TARGET; select it with --detectors NAME (README, "
                    "'Detectors with no code in the harness')", metavar="NAME=SPEC")
    random_weights: bool = setting(False, "grid", "allow randomly initialised backbones when weights are missing "
                                                  "(rows are marked weights=random and left out of leaderboards)")
    strict: bool = setting(False, "execution", "fail instead of skipping a detector whose weights are missing or "
                                               "that fails")
    allow_outside_paths: bool = setting(False, "data", "read manifest paths that resolve outside the dataset "
                                                       "folder (skipped by default)")
    normalize: str | None = setting(None, "data", "rewrite every image (train, val, test) alike before any "
                                                  "perturbation, to remove format and size shortcuts: png, jpeg:Q, "
                                                  "size:N (short side N, centre crop), crop:N; comma-separated, "
                                                  "applied in order (e.g. size:512,jpeg:95); 'none' = off",
                                    metavar="SPEC")
    # --plugin files (absolute paths) and modules whose detectors, perturbations or datasets the run uses
    # (bench.core.plugins; the CLI loads them before this config is checked)
    plugins: list[str] = setting([], "grid", "a Python file or module that registers detectors (perturbations, "
                                             "datasets) from outside the project (repeatable; README, 'Your own "
                                             "detector')", metavar="PATH_OR_MODULE")

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
        """Check every field against its declaration (type, range, choices); one BenchError names the first bad one."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, str) and f.type.startswith("list["):  # "a,b" in YAML, as on the command line
                parts = [v.strip() for v in value.split(",") if v.strip()]
                value = [int(v) for v in parts] if f.type.startswith("list[int]") and all(
                    v.isdecimal() for v in parts) else parts
                setattr(self, f.name, value)
            check_field(f, value)
        if not self.detectors:
            raise BenchError("detectors: give at least one detector name or pattern")
        if self.normalize is not None:
            from bench.data.normalize import canonical_spec  # pandas-heavy: not when the CLI builds its flags

            self.normalize = None if self.normalize.strip().lower() == "none" else canonical_spec(self.normalize)
        if self.seeds is not None:
            if not self.seeds or len(set(self.seeds)) != len(self.seeds):
                raise BenchError(f"seeds: give distinct training seeds, got {self.seeds}")
            if self.train_seed is not None:
                raise BenchError("give either train_seed (--train-seed) or seeds (--seeds), not both")
        if self.device not in ("auto", "cpu", "cuda") and not re.fullmatch(r"cuda:\d+", self.device):
            raise BenchError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        check_detector_params(self.detector_params)


def config_fields() -> tuple[dataclasses.Field, ...]:
    """The run config's fields in declaration order, each with its ``metadata`` (bench.run.config.setting)."""
    return fields(RunConfig)


MAX_CONFIG_BYTES = 1024 * 1024


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_field(f: dataclasses.Field, value: Any) -> None:
    """One field against its declaration: a one-line error with the field, the value and what is expected."""
    kind, meta = f.type, f.metadata
    if value is None and kind.endswith("| None"):
        return

    def bad(expected: str) -> BenchError:
        return BenchError(f"config field {f.name}: expected {expected}, got {value!r} ({type(value).__name__})")

    low, high = meta.get("minimum"), meta.get("maximum")
    span = (f"from {low} to {high}" if high is not None else f">= {low}") if low is not None else ""
    if kind.startswith("int"):
        if not _is_int(value) or (low is not None and value < low) or (high is not None and value > high):
            raise bad(f"an integer {span}".strip())
    elif kind.startswith("float"):
        if not _is_number(value) or (low is not None and value < low) or (high is not None and value >= high):
            raise bad(f"a number in [{low}, {high})")
    elif kind.startswith("bool"):
        if not isinstance(value, bool):
            raise bad("true or false")
    elif kind.startswith("list[int]"):
        if not isinstance(value, list) or not all(_is_int(v) and low <= v <= high for v in value):
            raise bad(f"a list of integers {span}")
    elif kind.startswith("list[str]"):
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise bad("a list of names (or one comma-separated string)")
    elif kind.startswith("dict[str, str]"):
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise bad("a mapping of weight component names to local paths")
    elif kind.startswith("dict[str, str | dict"):
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, (str, dict))
                                                  for k, v in value.items()):
            raise bad("a mapping of detector names to specs (cmd:..., http:..., scores:...) or mappings of options")
    elif kind.startswith("dict[str, dict"):
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, dict) and
                                                  all(isinstance(key, str) for key in v) for k, v in value.items()):
            raise bad("a mapping of detector names to mappings of keyword arguments")
    elif kind.startswith("str"):
        choices = meta["choices"]() if meta.get("choices") else None
        if choices is not None and value not in choices:
            raise bad(" or ".join(choices))
        if not isinstance(value, str) or not value.strip():
            raise bad("a non-empty string")


def load_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML run config, or a run.json whose "config" object is used."""
    data = read_config_document(path)
    if is_run_record(data):
        data = data["config"]  # a run.json (JSON is YAML)
    if not isinstance(data, dict):
        raise BenchError(f"config {path} must be a mapping of keys to values")
    return data


def is_run_record(data: Any) -> bool:
    """Whether a config document is a run.json (its "config" object is the run config)."""
    return isinstance(data, dict) and "config" in data and "run_id" in data


def read_config_document(path: str | Path) -> Any:
    """The parsed YAML (or JSON) of a config file, with one-line errors for what is not one."""
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
    return data
