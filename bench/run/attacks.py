"""The images each detector scores in one grid cell, adversarial attacks included.

A pure perturbation's images are computed once per cell and shared by every detector. An
adversarial one (``perturbations.adversarial``) depends on a model: ``pgd``/``fgsm`` are crafted per
(detector, cell) against the detector being scored, through its ``differentiable_score``, and a
detector that has none gets a recorded skip; ``transfer:SURROGATE`` is crafted once per cell against
the surrogate and shared, and its fingerprint carries the surrogate's fit key, so cached scores
never outlive the surrogate they were crafted on. Every attack draws its random start from the
same per-image generator as any perturbation, (run seed, image, perturbation, severity).
"""

from __future__ import annotations

import numpy as np

from bench.core.detector import Detector
from bench.core.errors import BenchError
from bench.core.hashing import stable_hash
from bench.core.rng import cell_rng
from bench.data.imageset import ImageSet, PerturbedImageSet
from bench.run.plan import Cell
from perturbations.adversarial import AdversarialPerturbation


class AttackedImageSet(PerturbedImageSet):
    """A cell's images attacked against ``target`` (the scored detector, or a transfer attack's surrogate)."""

    def __init__(self, base: ImageSet, perturbation: AdversarialPerturbation, severity: int, seed: int, preset: str,
                 target: Detector, target_key: str):
        super().__init__(base, perturbation, severity, seed, preset)
        self.target = target
        self.fingerprint = stable_hash([self.fingerprint, target_key])

    def _compute(self, i: int) -> np.ndarray:
        image = self.clean(i)
        if self.severity == 0:
            return image
        rng = cell_rng(self.seed, self.hashes[i], self.perturbation, self.severity)
        caption = self.captions[i]
        out = self.perturbation_obj.craft(image, self.severity, rng,
                                          lambda x: self.target.differentiable_score(x, caption=caption),
                                          int(self.labels[i]), self.preset)
        out.setflags(write=False)
        return out

    def materialize(self, workers: int = 1, budget_bytes: int = 1 << 30) -> None:
        """Crafted in one thread: the gradient passes use torch's own threads."""
        super().materialize(1, budget_bytes)


class CellImages:
    """What each detector scores in ``cell``: ``for_detector`` gives an image set, or a one-line reason why the
    detector cannot be scored there (a white-box attack on a non-differentiable detector)."""

    def __init__(self, test: ImageSet, cell: Cell, seed: int, surrogates: dict[str, tuple[Detector, str]]):
        perturbation = cell.perturbation_obj()
        self.test, self.cell, self.perturbation, self.seed = test, cell, perturbation, seed
        self.attack = isinstance(perturbation, AdversarialPerturbation)
        self.shared: ImageSet | None = None
        if not self.attack:
            self.shared = cell.images(test, seed)
        elif perturbation.surrogate is not None:
            detector, fit_key = surrogates[perturbation.surrogate]
            self.shared = self.attacked(detector, fit_key)

    def attacked(self, target: Detector, target_key: str) -> AttackedImageSet:
        return AttackedImageSet(self.test, self.perturbation, self.cell.level, self.seed, self.cell.preset, target,
                                target_key)

    def for_detector(self, detector: Detector, fit_key: str) -> ImageSet | str:
        if self.shared is not None:
            return self.shared
        if not detector.differentiable:
            return (f"{self.perturbation.name} is white-box and {detector.name} is not differentiable end to end "
                    "(use transfer:SURROGATE)")
        return self.attacked(detector, fit_key)


def surrogate_of(cell: Cell) -> str | None:
    """The surrogate detector a transfer cell is crafted on; None for every other cell."""
    return getattr(cell.perturbation_obj(), "surrogate", None)


def transfer_surrogates(grid: list[Cell]) -> list[str]:
    """The surrogate detectors that the grid's transfer attacks need, in grid order."""
    out: list[str] = []
    for cell in grid:
        surrogate = surrogate_of(cell)
        if surrogate is not None and surrogate not in out:
            out.append(surrogate)
    return out


def check_surrogate(name: str, detector: Detector | None, status: str, reason: str) -> None:
    """A transfer attack cannot run on a surrogate that failed to fit or has no gradient: a one-line error."""
    if status != "ok" or detector is None:
        raise BenchError(f"transfer:{name}: the surrogate detector {name} is {status}: {reason}")
    if not detector.differentiable:
        raise BenchError(f"transfer:{name}: the surrogate {name} is not differentiable end to end; choose one whose "
                         "`differentiable` is true (e.g. npr)")
