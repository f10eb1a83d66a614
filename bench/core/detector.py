"""The detector interface every method and baseline implements.

A detector is constructed from keyword arguments (its variant's settings),
optionally trained with :meth:`Detector.fit` on clean train/validation image
sets, then asked to :meth:`Detector.predict` on any image set. Scores are
"higher = more likely generated"; when ``info.outputs_probability`` is true the
score is P(generated) in [0, 1] and the natural threshold is 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Hashable

import numpy as np

from bench.core.errors import BenchError

# Profiles (README, "Profiles and fidelity"): "paper" reproduces the authors' code (a detector's constructor
# defaults), "fast" is the CPU smoke-run setting of make demo and the CI suite; a run that overrides any
# keyword of a detector (detector_params) records that detector as "custom".
PROFILES = ("paper", "fast")
CUSTOM_PROFILE = "custom"
# The scoring batch size when the user gives none (--batch-size) and, whatever the detector prefers, on the
# CPU: batch boundaries move the last bits of a score, so CPU numbers (the CI suite's) never depend on it.
DEFAULT_BATCH_SIZE = 32
# The smoke run's data (README, "Profiles"): the demo set with --limit 6, i.e. 6 images of each of its 4 classes in
# training and in validation; fast profiles' training budgets (Detector.training_passes) are stated on it.
SMOKE_TRAIN, SMOKE_VAL, SMOKE_CLASSES = 24, 24, 4

if TYPE_CHECKING:  # annotations only: core imports nothing above it at run time
    import torch

    from bench.core.cache import Cache

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
    batch_size: int = DEFAULT_BATCH_SIZE
    # bf16 autocast on CUDA for this detector's networks (training and scoring); set per detector from its
    # ``mixed_precision`` declaration (bench.run.work.detector_ctx). Never used on the CPU.
    mixed_precision: bool = False
    progress: bool = True
    #: The run's cache, where a detector keeps what it computes per image and may reuse (CLIP features,
    #: AEROBLADE distances, effnet_mc error maps); None: compute everything, keep nothing (Ray workers, tests).
    cache: Cache | None = None
    #: Where the training loop keeps its resumable state for this fit (bench.nn.training); None: no resuming.
    checkpoint: Path | None = None


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


@dataclass(frozen=True)
class Preparation:
    """The CPU part of scoring one image: ``fn(image_uint8_hwc) -> array or tensor`` (decoding and
    perturbing happen before it). The runner's stream (:mod:`bench.run.stream`) runs it in worker
    processes; detectors whose preparations have equal ``key`` share one computation per image."""

    key: Hashable
    fn: Callable[..., Any]
    #: ``fn(image, content_hash, cell_key)`` instead of ``fn(image)``: for detectors whose work depends on
    #: which image it is, not only on its pixels (AEROBLADE's per-image latent noise, cache keys).
    identified: bool = False
    #: How a batch of prepared samples is combined for ``forward_batch``: None stacks them (torch's
    #: ``default_collate``); ``list`` keeps a list (samples of different sizes).
    collate: Callable[[list], Any] | None = None

    def run(self, image: Any, images: Any, i: int) -> Any:
        """``fn`` on ``image``, item ``i`` of ``images`` (an ImageSet) as decoded and perturbed."""
        return self.fn(image, images.hashes[i], images.cell_key(i)) if self.identified else self.fn(image)

    def combine(self, samples: list) -> Any:
        """One batch of samples as ``forward_batch`` takes it."""
        from torch.utils.data import default_collate

        return (self.collate or default_collate)(samples)


def rows_in_process(detector: "Detector", images: Any, ctx: FitContext) -> np.ndarray:
    """What the runner's stream computes for ``detector`` on ``images``, in this process and in order: its
    preparation on every image, ``forward_batch`` on batches of ``ctx.batch_size`` from the first image,
    the rows concatenated (``finish`` takes them). Streamed detectors' ``predict`` is ``finish`` of this."""
    prep, rows = detector.preparation(), []
    for first in range(0, len(images), ctx.batch_size):
        batch = [prep.run(images[i], images, i) for i in range(first, min(first + ctx.batch_size, len(images)))]
        rows.append(np.asarray(detector.forward_batch(prep.combine(batch), ctx)))
    return np.concatenate(rows) if rows else np.zeros((0,))


class Detector:
    """Base class. Subclasses set ``info`` and implement ``fit`` (if they train) and ``predict``.

    Detectors that attribute sources set ``self.classes`` (generator names, "real" included) in
    ``fit`` and return ``Prediction.source``; the runner computes attribution metrics only when
    every test generator is one of those classes.
    """

    info: ClassVar[DetectorInfo]
    version: ClassVar[str] = "1"  # bump when a change invalidates cached fits or scores
    #: Whether :meth:`differentiable_score` exists: white-box attacks (``pgd``, ``fgsm``) need it. Detectors
    #: without it (an SVM on features, AEROBLADE's max over autoencoders) get transfer attacks only.
    differentiable: ClassVar[bool] = False
    # Keyword settings of each profile besides "paper" (the constructor's defaults), e.g. {"fast": {"epochs": 10}}.
    profiles: ClassVar[dict[str, dict[str, Any]]] = {}
    profile: str = "paper"  # set by bench.core.registries.create_detector
    #: The scoring batch size this detector prefers on a GPU when the user gives no --batch-size (None:
    #: DEFAULT_BATCH_SIZE); on the CPU the default stays DEFAULT_BATCH_SIZE (see there).
    gpu_batch_size: ClassVar[int | None] = None
    #: Whether its networks may run under CUDA bf16 autocast. Off unless a detector declares it: reduced
    #: precision moves scores and can change a fine-tuned model's training, so only detectors whose
    #: reference code trains under AMP, or that were checked to be robust to it, opt in.
    mixed_precision: ClassVar[bool] = False
    #: Where a detector from outside the project was registered from ("plugin: /path/f.py sha256:...", "entry
    #: point: pkg 1.2.0"; None for the project's own): part of its config, so a changed plugin is refitted.
    source: str | None = None
    #: What the contract checker (bench.testing) allows between scores of the same images computed in other
    #: batch sizes or another order (batch boundaries move the last bits of float32 arithmetic).
    score_tolerance: ClassVar[float] = 1e-5
    #: For a detector that trains nothing: whether it scores the checker's planted generated images (smooth,
    #: noise-free) above its planted real ones (noisy), so that the score-direction check applies to it. A
    #: detector that trains is always checked, after fitting on the planted set.
    separates_planted: ClassVar[bool] = False

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

    # -- streamed scoring (optional) ----------------------------------------------------------
    # A detector that returns a Preparation is scored by the runner's stream: its preparation runs in
    # worker processes while forward_batch runs on the model, and finish turns the concatenated rows
    # into the Prediction. The three together must give exactly what predict() gives on the same
    # images in batches of ``ctx.batch_size`` (tests/test_scale.py checks every streamed detector).
    def preparation(self) -> Preparation | None:
        """None: not streamed; the runner calls :meth:`predict` on the whole cell."""
        return None

    def forward_batch(self, batch: Any, ctx: FitContext) -> np.ndarray:
        """Rows (one per image) for a collated batch of prepared samples."""
        raise NotImplementedError

    def finish(self, rows: np.ndarray) -> Prediction:
        """The Prediction for a cell from its rows, in image order."""
        raise NotImplementedError

    def differentiable_score(self, image01: torch.Tensor, caption: str | None = None) -> torch.Tensor:
        """The score of one image as a 0-d tensor that torch can differentiate with respect to ``image01``.

        ``image01`` is the image at full resolution, float RGB (3, H, W) in [0, 1]; the detector applies its
        own test-time preprocessing inside (resize, crop, normalisation), so an attack's gradient sees what
        :meth:`predict` sees. ``caption``: the image's caption or prompt from the dataset (None when it has
        none), for detectors whose input includes text; the others ignore it. Higher = more likely
        generated, ordered like ``predict``'s score (a logit or a probability).
        """
        raise BenchError(f"{self.name} is not differentiable end to end: white-box attacks cannot target it; "
                         "use a transfer attack (--perturb transfer:SURROGATE)")

    def training_passes(self, n_train: int, n_val: int, n_classes: int) -> int:
        """The declared training budget of :meth:`fit` at this detector's settings: at most how many passes
        through its networks it makes while fitting on ``n_train`` training and ``n_val`` validation images,
        balanced over ``n_classes`` classes ("real" included): epochs x images x passes per image, where a
        training step (forward and backward) counts as one pass, as does scoring an image for validation, an
        autoencoder's encoder and decoder count as two, and a batch of prompts through a text encoder as one
        (:func:`bench.nn.passes.count_passes` measures the same unit). 0 for a detector that trains nothing.
        Read from the settings; tests/test_profiles.py bounds it for every fast profile and checks it against
        the passes fit makes on the tiny detectors."""
        return self.fit_passes(n_train, n_val, n_classes) if self.info.trains else 0

    def fit_passes(self, n_train: int, n_val: int, n_classes: int) -> int:
        """:meth:`training_passes` of a detector that trains: every such detector declares it."""
        raise NotImplementedError(f"{self.name} trains but declares no training budget (Detector.fit_passes)")

    def config(self) -> dict[str, Any]:
        """Everything that identifies a fitted detector (used in cache keys and run.json)."""
        config = {"name": self.name, "class": f"{type(self).__module__}.{type(self).__qualname__}",
                  "version": self.version, "profile": self.profile, "params": self.params}
        return {**config, "source": self.source} if self.source else config

    @classmethod
    def profile_params(cls, profile: str) -> dict[str, Any]:
        """The keyword settings of ``profile`` (empty for "paper": the constructor's defaults)."""
        if profile not in PROFILES:
            raise BenchError(f"unknown profile {profile!r} (known: {', '.join(PROFILES)})")
        return dict(cls.profiles.get(profile, {}))
