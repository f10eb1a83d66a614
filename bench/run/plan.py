"""The compiled run plan: a :class:`~bench.run.config.RunConfig` turned once into the typed, frozen objects that
the work needs, so that executors and work units never see the configuration.

* :class:`Cell` is one grid cell: the perturbation, its level, the severity table it reads (the run's preset
  resolved per perturbation), the physical parameter and its label. The fingerprint of its pixels is its
  image set's (:meth:`Cell.images`), which also carries an attack's target. The runner keys predictions, cache entries and result rows on it; nothing parses it back
  from a string.
* :class:`Execution` is how work computes: the device as configured, preparation workers, the requested
  batch size, the run seed that perturbations draw from, the validation threshold's true-negative rate
  and the decode limits bound to every image set it builds.

Both are small and picklable: the Ray executor ships them to its tasks instead of the whole config.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.core.registries import load_plugins
from bench.data.imageset import DecodedCache, ImageSet, PerturbedImageSet
from perturbations import get_perturbation, param_label
from perturbations.spec import parse_perturb_spec

if TYPE_CHECKING:
    from bench.run.config import RunConfig

CLEAN_NAME = "none"


@dataclass(frozen=True)
class Cell:
    """One (perturbation, level) of the grid under the run's preset. Level 0 of any perturbation and the
    ``none`` cell are the clean images."""

    perturbation: str
    level: int
    preset: str = "default"
    table: str = "default"  # the preset whose severity table the level reads (bench: Perturbation.table_preset)
    param: Any = None  # the level's physical parameter: a number, a tuple, a text setting; None when clean
    label: str = "clean"  # its short human label (perturbations.param_label)

    @property
    def clean(self) -> bool:
        return self.perturbation == CLEAN_NAME

    @property
    def key(self) -> str:
        """``perturbation:level``, as run.json's skipped cells and progress messages name a cell."""
        return f"{self.perturbation}:{self.level}"

    @property
    def param_value(self) -> float:
        """The parameter as one number for the results table; NaN when it is not one number (clean, tuples,
        text such as an ``albu:NAME{...}`` setting: the label says it)."""
        number = isinstance(self.param, numbers.Real) and not isinstance(self.param, bool)
        return float(self.param) if number else math.nan

    def perturbation_obj(self):
        """The registered perturbation (None for the clean cell). A fresh worker process loads the registry
        and builds a family member (``albu:...``, ``transfer:...``) the way the driver did."""
        if self.clean:
            return None
        load_plugins()
        return get_perturbation(self.perturbation)

    def images(self, test: ImageSet, seed: int) -> ImageSet:
        """The cell's images: ``test`` perturbed at full resolution, each image's draws derived from ``seed``."""
        if self.clean:
            return test
        return PerturbedImageSet(test, self.perturbation_obj(), self.level, seed, self.preset)


CLEAN = Cell(CLEAN_NAME, 0)


def compile_cell(name: str, level: int, preset: str) -> Cell:
    """The cell of a registered perturbation at ``level`` under ``preset``."""
    perturbation = get_perturbation(name)
    return Cell(name, level, preset, perturbation.table_preset(preset), perturbation.param(level, preset),
                param_label(perturbation, level, preset))


def compile_grid(spec: str, preset: str) -> list[Cell]:
    """The clean cell, then every level the ``--perturb`` spec selects, in the spec's order."""
    load_plugins()
    cells = [CLEAN]
    for name, levels in parse_perturb_spec(spec, preset):
        cells.extend(compile_cell(name, level, preset) for level in levels)
    return cells


@dataclass(frozen=True)
class DecodeLimits:
    """The decoder's limits (``max_pixels``, ``min_side``), bound into every image set a work unit builds."""

    max_pixels: int = 64_000_000
    min_side: int = 16

    def image_set(self, items: list, decoded: DecodedCache | None = None) -> ImageSet:
        return ImageSet(items, decoded, self.max_pixels, self.min_side)


@dataclass(frozen=True)
class Execution:
    """How a run's work computes, wherever it runs."""

    device: str = "auto"  # as configured; every worker resolves it itself
    workers: int = 0  # preparation processes of the scoring stream (0: in-process), threads elsewhere
    batch_size: int | None = None  # the user's scoring batch size; None: each detector's (work.batch_size_for)
    seed: int = 0  # the run seed: every perturbation and attack draws from it
    val_tnr: float = 0.95  # the validation threshold keeps this share of clean real images below it
    limits: DecodeLimits = DecodeLimits()


def compile_execution(cfg: "RunConfig") -> Execution:
    return Execution(cfg.device, cfg.workers, cfg.batch_size, cfg.seed, cfg.val_tnr,
                     DecodeLimits(cfg.max_pixels, cfg.min_side))
