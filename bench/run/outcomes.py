"""What each detector and each training seed of a run came to, as the runner fills them in."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.core.detector import Detector, Prediction
from bench.run.plan import Cell
from bench.run.splits import Splits


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
    predictions: dict[Cell, Prediction] = field(default_factory=dict)


@dataclass
class CellTask:
    """One detector on one grid cell: the cache key of its scores, or why it cannot be scored there."""

    run: DetectorRun
    cell: Cell
    key: str = ""
    attack: bool = False  # adversarial: crafted where it is scored (bench.run.attacks)
    skip: str = ""


@dataclass
class SeedPass:
    """What one training seed of a run produced."""

    train_seed: int
    splits: Splits
    runs: list[DetectorRun]
    metric_rows: list[dict]
    score_rows: list[dict]


STATUS_ORDER = {"ok": 0, "skipped": 1, "failed": 2}
