"""Adversarial perturbations: ``pgd``, ``fgsm`` (white-box) and ``transfer:SURROGATE``, L-inf budgets in 1/255.

Unlike every other perturbation these need a model: the attack pushes each image across the
detector's decision (a generated image towards "real", a real one towards "generated") by
following the gradient of a differentiable score ``score_fn(x01) -> scalar`` (higher = more
likely generated) that the detector computes from a float RGB tensor in [0, 1], shape (3, H, W),
with its own preprocessing inside (``Detector.differentiable_score``). So they are not pure
image functions: :meth:`AdversarialPerturbation.apply` refuses to run without a target, and the
runner crafts them (``bench.run.attacks``): per (detector, cell) for ``pgd``/``fgsm``, once per
cell on the surrogate for ``transfer:SURROGATE``, whose images every detector then scores.

The attack (Madry et al. 2018 for PGD; Goodfellow et al. 2015 for FGSM), at full resolution
before the detector's preprocessing like every perturbation:

- budget: eps = level / 255 in L-inf on [0, 1] (table 0.5, 1, 2, 4, 8);
- PGD: a uniform random start in [-eps, eps] drawn from the cell's generator, ``PGD_STEPS`` signed
  gradient steps of ``PGD_STEP_FACTOR * eps / steps`` (Madry et al.'s 2.5 eps / steps), each followed
  by projection onto the budget and onto [0, 1]; FGSM: one signed step of eps, no random start;
- the result is stored as uint8 like any image: the change is rounded to whole uint8 steps and
  clipped to +-floor(eps * 255), so max |delta| <= eps holds exactly after rounding. A budget under
  one uint8 step (0.5/255) therefore leaves the image unchanged: the level is kept as the sweep's
  floor and reads as "no change is possible in an 8-bit image below 1/255".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from bench.core.errors import BenchError
from bench.core.registries import DETECTORS, load_plugins
from perturbations.base import Perturbation

EPSILONS = (0.5, 1, 2, 4, 8)  # L-inf budget in 1/255 units
PGD_STEPS = 10
PGD_STEP_FACTOR = 2.5  # step size = 2.5 * eps / steps (Madry et al. 2018)

ScoreFn = Callable[[Any], Any]  # torch (3, H, W) float in [0, 1] -> 0-d tensor, higher = more likely generated


def linf_attack(image: np.ndarray, eps_255: float, rng: np.random.Generator, score_fn: ScoreFn, label: int,
                steps: int, random_start: bool) -> np.ndarray:
    """``steps`` signed-gradient steps that move ``score_fn`` away from ``label``, within eps_255/255 in L-inf.

    ``label`` 1 (generated) lowers the score, 0 (real) raises it. Returns uint8 with
    ``max |out - image| <= floor(eps_255)`` exactly.
    """
    import torch

    budget = math.floor(eps_255 + 1e-9)  # whole uint8 steps within the budget
    if budget == 0:
        return np.array(image)
    eps = eps_255 / 255.0
    step = eps if steps == 1 else PGD_STEP_FACTOR * eps / steps
    x0 = torch.from_numpy(np.array(image)).permute(2, 0, 1).float().div(255.0)
    direction = -1.0 if label == 1 else 1.0  # ascend direction * score
    delta = torch.zeros_like(x0)
    if random_start:
        delta = torch.from_numpy(rng.uniform(-eps, eps, size=x0.shape).astype(np.float32))
        delta = (x0 + delta).clamp(0, 1) - x0
    for _ in range(steps):
        delta.requires_grad_(True)
        objective = direction * score_fn(x0 + delta)
        (grad,) = torch.autograd.grad(objective, delta)
        with torch.no_grad():
            delta = (delta + step * grad.sign()).clamp(-eps, eps)
            delta = (x0 + delta).clamp(0, 1) - x0
    change = torch.round(delta.detach() * 255).clamp(-budget, budget).permute(1, 2, 0).numpy().astype(np.int16)
    return np.clip(image.astype(np.int16) + change, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class AdversarialPerturbation(Perturbation):
    """A perturbation crafted against a model; ``surrogate`` names the detector of a transfer attack."""

    steps: int = PGD_STEPS
    random_start: bool = True
    surrogate: str | None = None  # None: white-box, against the detector being scored

    def apply(self, image: np.ndarray, severity: int, rng: np.random.Generator, preset: str = "default") -> np.ndarray:
        raise BenchError(f"{self.name} is an adversarial attack: it needs the detector it targets, and the runner "
                         "crafts it (Perturbation.apply has no detector)")

    def craft(self, image: np.ndarray, severity: int, rng: np.random.Generator, score_fn: ScoreFn, label: int,
              preset: str = "default") -> np.ndarray:
        """The attacked image of one cell: ``score_fn`` is the targeted detector's differentiable score."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise BenchError(f"{self.name}: expected an RGB uint8 HxWx3 image, got {image.dtype} {image.shape}")
        eps_255 = self.param(severity, preset)
        if eps_255 is None:
            return image.copy()
        return self.fn(image, eps_255, rng, score_fn, int(label), self.steps, self.random_start)


def _describe(method: str, steps: int, target: str) -> str:
    rule = "one signed step of eps" if steps == 1 else \
        f"{steps} steps of {PGD_STEP_FACTOR:g} eps/{steps}, uniform random start"
    return (f"{method} L-inf attack {target}: eps = level/255, {rule}; change rounded to whole uint8 steps within "
            "eps (0.5/255 leaves an 8-bit image unchanged); flips generated towards real and real towards generated.")


def attack(name: str, steps: int, surrogate: str | None = None) -> AdversarialPerturbation:
    method = "FGSM" if steps == 1 else "PGD"
    target = f"crafted once per cell on the surrogate detector {surrogate!r} (transfer)" if surrogate else \
        "against the detector being scored (white-box; non-differentiable detectors are skipped)"
    return AdversarialPerturbation(
        name=name, description=_describe(method, steps, target), param_name="eps", unit="/255", fn=linf_attack,
        tables={"default": EPSILONS}, steps=steps, random_start=steps > 1, surrogate=surrogate,
        identity=lambda: repr((steps, steps > 1, PGD_STEP_FACTOR)))


LABEL = "eps={:g}/255"
PGD = attack("pgd", PGD_STEPS)
FGSM = attack("fgsm", 1)


def transfer(argument: str) -> tuple[AdversarialPerturbation, str]:
    """``transfer:SURROGATE``: PGD crafted on the surrogate, a registered detector (its differentiability is
    checked when the runner has built it)."""
    load_plugins()
    surrogate = DETECTORS.entry(argument.strip()).name  # unknown: the registry's one-line error, close matches
    return attack(f"transfer:{surrogate}", PGD_STEPS, surrogate), LABEL
