"""The perturbation type: a name, explicit severity tables, and a pure function.

Level 0 is always the identity. Levels 1..k map to a physical parameter through
an explicit table per preset (:data:`bench.core.presets.PRESETS`); a preset that does
not define a perturbation falls back to the ``default`` table, and the run
records which table was used.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from bench.core.errors import BenchError
from bench.core.hashing import stable_hash
from bench.core.presets import PRESETS
from perturbations.codec_limits import within_limit

PerturbFn = Callable[[np.ndarray, Any, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class Perturbation:
    name: str
    description: str
    param_name: str  # what the table holds, e.g. "quality", "sigma"
    unit: str  # physical unit of the parameter, e.g. "px", "" for unitless
    fn: PerturbFn  # fn(image_uint8_hwc, param, rng) -> image_uint8_hwc; must not mutate its input
    tables: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # preset -> params of levels 1..k
    version: int = 1  # bump when the function's behaviour changes in code that its source hash does not see
    # What else the pixels depend on that neither the table nor the source shows, e.g. the sha256 of an
    # autoencoder's weights (``vae_roundtrip:AE``); called when a cell's fingerprint is made.
    identity: Callable[[], str] | None = field(default=None, compare=False)
    # preset -> the function that preset's paper used instead of ``fn`` (AEROBLADE blurs with a fixed 9x9 kernel)
    preset_fns: dict[str, PerturbFn] = field(default_factory=dict)
    # The longest side the function's codec can encode (perturbations.codec_limits); a longer image is fitted to
    # it and resized back. Not in the fingerprint: no image within the limit changes, and none beyond it had pixels.
    max_side: int | None = None

    def __post_init__(self) -> None:
        if "default" not in self.tables or not self.tables["default"]:
            raise BenchError(f"perturbation {self.name!r} needs a non-empty 'default' severity table")
        for preset in (*self.tables, *self.preset_fns):
            if preset not in PRESETS:
                raise BenchError(f"perturbation {self.name!r}: unknown preset {preset!r} (known: {', '.join(PRESETS)})")

    def table(self, preset: str = "default") -> tuple[Any, ...]:
        if preset not in PRESETS:
            raise BenchError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
        return self.tables.get(preset, self.tables["default"])

    def table_preset(self, preset: str = "default") -> str:
        """The preset whose table is actually used (``default`` when ``preset`` lacks one)."""
        return preset if preset in self.tables else "default"

    def function(self, preset: str = "default") -> PerturbFn:
        """The function applied under ``preset``: ``fn``, unless that preset's paper used another."""
        return self.preset_fns.get(preset, self.fn)

    def fingerprint(self, preset: str = "default", severity: int | None = None) -> str:
        """What the pixels of a perturbed cell depend on besides the image and the seed: the parameter of
        ``severity`` (every value of the table used when None), ``version`` and the function's source."""
        fn = self.function(preset)
        try:
            source = inspect.getsource(fn)
        except (OSError, TypeError):  # built-in or source not available: the qualified name stands in
            source = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}"
        values = self.table(preset) if severity is None else [self.param(severity, preset)]
        parts = [self.name, [repr(v) for v in values], self.version, source]
        if self.identity is not None:  # appended only when set, so existing perturbations keep their fingerprints
            parts.append(self.identity())
        return stable_hash(parts)

    def levels(self, preset: str = "default") -> list[int]:
        return list(range(0, len(self.table(preset)) + 1))

    def param(self, severity: int, preset: str = "default") -> Any:
        """The physical parameter of a level; ``None`` for level 0 (identity)."""
        table = self.table(preset)
        if not 0 <= severity <= len(table):
            raise BenchError(f"{self.name}: severity {severity} out of range 0..{len(table)} for preset {preset!r}")
        return None if severity == 0 else table[severity - 1]

    def apply(self, image: np.ndarray, severity: int, rng: np.random.Generator, preset: str = "default") -> np.ndarray:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise BenchError(f"{self.name}: expected an RGB uint8 HxWx3 image, got {image.dtype} {image.shape}")
        param = self.param(severity, preset)
        if param is None:
            return image.copy()
        fn = self.function(preset)
        if self.max_side is not None and max(image.shape[:2]) > self.max_side:
            return within_limit(lambda small: fn(small, param, rng), image, self.max_side)
        return fn(image, param, rng)
