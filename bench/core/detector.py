"""The detector interface every method and baseline implements.

A detector is constructed from keyword arguments (its variant's settings),
optionally trained with :meth:`Detector.fit` on clean train/validation image
sets, then asked to :meth:`Detector.predict` on any image set. Scores are
"higher = more likely generated"; when ``info.outputs_probability`` is true the
score is P(generated) in [0, 1] and the natural threshold is 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from bench.core.errors import BenchError

# Profiles (README, "Profiles and fidelity"): "paper" reproduces the authors' code (a detector's constructor
# defaults), "fast" is the CPU smoke-run setting of make demo and the CI suite; a run that overrides any
# keyword of a detector (detector_params) records that detector as "custom".
PROFILES = ("paper", "fast")
CUSTOM_PROFILE = "custom"

if TYPE_CHECKING:  # annotations only: core imports nothing above it at run time
    from bench.data.imageset import ImageSet


@dataclass(frozen=True)
class DetectorInfo:
    family: str  # e.g. "clip", "frequency", "cnn"
    paper: str  # the method it follows
    trains: bool  # needs fit() on the dataset
    weights: tuple[str, ...] = ()  # pretrained components it needs (names in the weights registry)
    gpu: str = "optional"  # "no", "optional", "recommended"
    tasks: tuple[str, ...] = ("binary",)  # "binary", "attribution"
    outputs_probability: bool = True
    notes: str = ""  # departures from the paper and why


@dataclass
class FitContext:
    """What the runner tells a detector about where and how to compute."""

    device: str = "cpu"
    seed: int = 0
    workers: int = 0
    batch_size: int = 32
    progress: bool = True
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class Prediction:
    score: np.ndarray  # float, higher = more likely generated
    source: np.ndarray | None = None  # predicted generator name per image (attribution), or None

    def __post_init__(self) -> None:
        self.score = np.asarray(self.score, dtype=np.float64)
        if self.source is not None:
            self.source = np.asarray(self.source, dtype=object)
            if len(self.source) != len(self.score):
                raise ValueError("source and score lengths differ")


class Detector:
    """Base class. Subclasses set ``info`` and implement ``fit`` (if they train) and ``predict``.

    Detectors that attribute sources set ``self.classes`` (generator names, "real" included) in
    ``fit`` and return ``Prediction.source``; the runner computes attribution metrics only when
    every test generator is one of those classes.
    """

    info: ClassVar[DetectorInfo]
    version: ClassVar[str] = "1"  # bump when a change invalidates cached fits or scores
    # Keyword settings of each profile besides "paper" (the constructor's defaults), e.g. {"fast": {"epochs": 10}}.
    profiles: ClassVar[dict[str, dict[str, Any]]] = {}
    profile: str = "paper"  # set by bench.core.registries.create_detector

    def __init__(self, **params: Any):
        self.params = params
        self.name = type(self).__name__
        self.weights_provenance: dict[str, Any] = {}

    def weight_path(self, component: str) -> Path | None:
        """Local path of a resolved pretrained component, or None when random initialisation was allowed.

        The runner resolves every component in ``info``/registry ``weights`` before constructing
        the detector and fills ``weights_provenance``; detectors never download anything themselves.
        """
        record = self.weights_provenance.get(component)
        if record is None:
            raise BenchError(f"{self.name}: weights component {component!r} was not resolved by the runner")
        return None if record.get("random") else Path(record["path"])

    def fit(self, train: ImageSet, val: ImageSet, ctx: FitContext) -> None:
        """Train on clean images. Detectors that need no training keep this no-op."""

    def predict(self, images: ImageSet, ctx: FitContext) -> Prediction:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """Everything that identifies a fitted detector (used in cache keys and run.json)."""
        return {"name": self.name, "class": f"{type(self).__module__}.{type(self).__qualname__}",
                "version": self.version, "profile": self.profile, "params": self.params}

    @classmethod
    def profile_params(cls, profile: str) -> dict[str, Any]:
        """The keyword settings of ``profile`` (empty for "paper": the constructor's defaults)."""
        if profile not in PROFILES:
            raise BenchError(f"unknown profile {profile!r} (known: {', '.join(PROFILES)})")
        return dict(cls.profiles.get(profile, {}))
