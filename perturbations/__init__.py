"""The benchmark's perturbations, their severity tables, and their labels.

Each perturbation is registered eagerly in ``PERTURBATIONS`` (the objects are a
few strings and a function reference). Tables come from DESIGN.md section 5:
``default`` is the sweep of the detector papers, ``imagenet-c`` is ImageNet-C's
severities 1-5 where ImageNet-C defines the perturbation, ``aeroblade`` is the
robustness section of AEROBLADE (Ricker et al., CVPR 2024; its README's
``01_detect.py --transforms``: JPEG q 90..50, centre crop 0.9..0.5 resized back,
blur sigma 1..5 with a fixed 9x9 kernel, noise std 0.05..0.25 on [0,1]);
elsewhere the ``default`` table applies. Level 0 is always the clean image.

Perturbations are applied at full resolution, before each detector's own
resize or crop (see ``bench.data.imageset.PerturbedImageSet``).

The registry entry's ``label`` metadata is a ``str.format`` pattern that turns
a level's parameter into a short human label for tables and plots ("q=90");
tuple parameters fill the pattern's fields in order.

May import: bench.core only (it sits beside bench.data and bench.weights, which it does not
import; tests/test_layering.py).
"""

from __future__ import annotations

import math
from typing import Any

from bench.core.registries import PERTURBATIONS
from perturbations import functions
from perturbations.base import PRESETS, Perturbation

__all__ = ["PRESETS", "Perturbation", "format_param", "param_label", "param_value"]

_IMAGENET_C_BRIGHTEN = (0.1, 0.2, 0.3, 0.4, 0.5)

_PERTURBATIONS: tuple[tuple[Perturbation, str], ...] = (
    (
        Perturbation(
            name="jpeg",
            description="JPEG encode/decode with Pillow (libjpeg) at the quality, 4:2:0 chroma subsampling.",
            param_name="quality",
            unit="",
            fn=functions.jpeg,
            tables={"default": (100, 90, 80, 70, 60, 50, 40, 30), "imagenet-c": (25, 18, 15, 10, 7),
                    "aeroblade": (90, 80, 70, 60, 50)},
        ),
        "q={}",
    ),
    (
        Perturbation(
            name="blur",
            description="Gaussian blur (OpenCV), sigma in pixels, kernel side 2*ceil(3 sigma)+1, mirrored borders "
                        "(preset aeroblade: AEROBLADE's fixed 9x9 kernel).",
            param_name="sigma",
            unit="px",
            fn=functions.gaussian_blur,
            tables={"default": (1, 2, 3, 4), "imagenet-c": (1, 2, 3, 4, 6), "aeroblade": (1, 2, 3, 4, 5)},
            preset_fns={"aeroblade": functions.gaussian_blur_fixed_kernel},
        ),
        "sigma={:g} px",
    ),
    (
        Perturbation(
            name="noise",
            description="Additive i.i.d. Gaussian noise, std on the [0,1] intensity scale, then clip and round.",
            param_name="std",
            unit="on [0,1]",
            fn=functions.gaussian_noise,
            tables={"default": (0.05, 0.10, 0.15, 0.20, 0.25), "imagenet-c": (0.08, 0.12, 0.18, 0.26, 0.38),
                    "aeroblade": (0.05, 0.10, 0.15, 0.20, 0.25)},
        ),
        "std={:.2f}",
    ),
    (
        Perturbation(
            name="brightness",
            description="Darkening: pixel values times a factor below 1, rounded (ImageNet-C's brightness brightens).",
            param_name="factor",
            unit="",
            fn=functions.darken,
            tables={"default": (0.9, 0.8, 0.7, 0.6, 0.5)},
        ),
        "x{:.2f}",
    ),
    (
        Perturbation(
            name="brighten",
            description="ImageNet-C brightness: delta added to the HSV value channel on [0,1], clipped.",
            param_name="delta",
            unit="on [0,1]",
            fn=functions.brighten_hsv,
            tables={"default": _IMAGENET_C_BRIGHTEN, "imagenet-c": _IMAGENET_C_BRIGHTEN},
        ),
        "V+{:.2f}",
    ),
    (
        Perturbation(
            name="resize",
            description="Downscale each side by the factor (OpenCV area), then back to the original size (bilinear).",
            param_name="scale",
            unit="of side",
            fn=functions.resize,
            tables={"default": (0.75, 0.5, 0.33, 0.25)},
        ),
        "x{:.2f}",
    ),
    (
        Perturbation(
            name="crop",
            description="Centre crop keeping the fraction of each side, then back to the original size (bilinear).",
            param_name="fraction",
            unit="of side",
            fn=functions.center_crop,
            tables={"default": (0.9, 0.8, 0.7, 0.6, 0.5), "aeroblade": (0.9, 0.8, 0.7, 0.6, 0.5)},
        ),
        "keep {:.2f}",
    ),
    (
        Perturbation(
            name="webp",
            description="Lossy WebP encode/decode with Pillow (libwebp) at the quality, method 4, 4:2:0.",
            param_name="quality",
            unit="",
            fn=functions.webp,
            tables={"default": (90, 75, 60, 45, 30)},
        ),
        "q={}",
    ),
    (
        Perturbation(
            name="social",
            description="Social-media upload: downscale by the factor (area), JPEG at the quality (4:2:0), "
            "then bilinear back to the original size.",
            param_name="(scale, quality)",
            unit="",
            fn=functions.social,
            tables={"default": ((0.75, 90), (0.5, 80), (0.5, 70), (0.33, 60))},
        ),
        "x{:g}, q={}",
    ),
)

for _perturbation, _label in _PERTURBATIONS:
    PERTURBATIONS.add(_perturbation.name, _perturbation, label=_label)


def _resolve(perturbation: Perturbation | str) -> Perturbation:
    return PERTURBATIONS.get(perturbation) if isinstance(perturbation, str) else perturbation


def format_param(param: Any) -> str:
    """A parameter as plain text: ``90``, ``0.1``, ``0.5, 70``."""
    if isinstance(param, tuple):
        return ", ".join(format_param(p) for p in param)
    return f"{param:g}" if isinstance(param, float) else str(param)


def param_label(perturbation: Perturbation | str, severity: int, preset: str = "default") -> str:
    """A short human label of a level's parameter: ``"clean"``, ``"q=90"``, ``"sigma=2 px"``, ``"x0.5, q=70"``.

    ``perturbation`` is a registered name or a :class:`Perturbation`; level 0 is
    ``"clean"`` for any name, including the runner's ``"none"``. A perturbation
    registered without a ``label`` pattern gets ``"<param_name>=<value> <unit>"``.
    """
    if severity == 0:
        return "clean"
    p = _resolve(perturbation)
    param = p.param(severity, preset)
    pattern = PERTURBATIONS.entry(p.name).meta.get("label") if p.name in PERTURBATIONS else None
    if pattern is None:
        return f"{p.param_name}={format_param(param)}" + (f" {p.unit}" if p.unit else "")
    return pattern.format(*param) if isinstance(param, tuple) else pattern.format(param)


def param_value(perturbation: Perturbation | str, severity: int, preset: str = "default") -> float:
    """The level's parameter as a number for the results table; NaN at level 0 and for composite parameters."""
    if severity == 0:
        return math.nan
    param = _resolve(perturbation).param(severity, preset)
    return math.nan if isinstance(param, tuple) else float(param)
