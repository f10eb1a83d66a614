"""The benchmark's perturbations, their severity tables, and their labels.

Each perturbation is registered eagerly in ``PERTURBATIONS`` (the objects are a
few strings and a function reference). Tables (README, "Severity tables"):
``default`` is the sweep of the detector papers, ``imagenet-c`` is ImageNet-C's
severities 1-5 where ImageNet-C defines the perturbation, ``aeroblade`` is the
robustness section of AEROBLADE (Ricker et al., CVPR 2024; its README's
``01_detect.py --transforms``: JPEG q 90..50, centre crop 0.9..0.5 resized back,
blur sigma 1..5 with a fixed 9x9 kernel, noise std 0.05..0.25 on [0,1]), ``univfd`` is
UnivFD's (Ojha et al., CVPR 2023; ``validate.py`` of Yuheng-Li/UniversalFakeDetect at 1abc486, its
``--jpeg_quality`` "100, 90, 80, ... 30" and ``--gaussian_sigma`` "0,1,2,3,4" with scipy's blur);
elsewhere the ``default`` table applies. Level 0 is always the clean image.

Perturbations are applied at full resolution, before each detector's own
resize or crop (see ``bench.data.imageset.PerturbedImageSet``).

Beyond the basics, one module per family: ``share`` (multi-hop platform-like re-encodes),
``redigitise`` (screenshot, recapture), ``imagenet_c`` (ImageNet-C's other corruptions),
``albu`` (``albu:NAME``, any albumentations transform), ``vae_roundtrip`` (``vae_roundtrip:AE``) and
``adversarial`` (``pgd``, ``fgsm``, ``transfer:SURROGATE``: crafted by the runner, which has the
detector). ``FAMILY:ARGUMENT`` names are built on first use (:mod:`perturbations.families`).

The registry entry's ``label`` metadata is a ``str.format`` pattern that turns
a level's parameter into a short human label for tables and plots ("q=90");
tuple parameters fill the pattern's fields in order.

May import: bench.core only (it sits beside bench.data and bench.weights, which it does not
import; tests/test_layering.py).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from bench.core.errors import BenchError
from bench.core.registries import PERTURBATIONS
from bench.core.registry import unknown_name_message
from perturbations import adversarial, albu, functions, imagenet_c, redigitise, share, vae_roundtrip  # noqa: F401
from perturbations.base import PRESETS, Perturbation
from perturbations.codec_limits import JPEG_MAX_SIDE, WEBP_MAX_SIDE
from perturbations.families import Family, add_family, get_perturbation

__all__ = ["IMAGENET_C", "IMAGENET_C_CORRUPTIONS", "PRESETS", "Perturbation", "format_param", "get_perturbation",
           "param_label", "param_value"]

_IMAGENET_C_BRIGHTEN = (0.1, 0.2, 0.3, 0.4, 0.5)

IMAGENET_C = "imagenet-c"  # the --perturb item and --preset that stand for ImageNet-C's corruptions
#: ImageNet-C's 15 corruptions (Hendrycks and Dietterich 2019), by their names here, in the paper's order.
IMAGENET_C_CORRUPTIONS = ("noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
                          "zoom_blur", "snow", "fog", "brighten", "contrast", "elastic", "pixelate", "jpeg")
_E = 244  # the release's elastic constants are multiples of 244 ("should have been 224", its comment says)

#: ImageNet-C corruptions added here (perturbations/imagenet_c.py): name, description, parameter, unit, function,
#: severities 1-5 (the constants of the authors' release), label. Their 'default' table is the same.
_IMAGENET_C_TABLES = (
    ("shot_noise", "ImageNet-C shot noise: Poisson(x * photons) / photons on [0,1].", "photons", "per unit",
     imagenet_c.shot_noise, (60, 25, 12, 5, 3), "{} photons"),
    ("impulse_noise", "ImageNet-C impulse noise: salt and pepper on a fraction of the channel values.", "amount",
     "of values", imagenet_c.impulse_noise, (0.03, 0.06, 0.09, 0.17, 0.27), "s&p {:.2f}"),
    ("defocus_blur", "ImageNet-C defocus blur: antialiased disk kernel of the radius (alias-blur sigma).",
     "(radius px, alias sigma)", "", imagenet_c.defocus_blur, ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),
     "r={} px, {:g}"),
    ("glass_blur", "ImageNet-C glass blur: Gaussian blur, local pixel displacement sweeps, Gaussian blur.",
     "(sigma px, max delta px, iterations)", "", imagenet_c.glass_blur,
     ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)), "sigma={:g}, d={}, x{}"),
    ("motion_blur", "ImageNet-C motion blur: ImageMagick-style one-sided Gaussian streak, angle U[-45, 45] deg.",
     "(radius px, sigma)", "", imagenet_c.motion_blur, ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),
     "r={} px, sigma={}"),
    ("zoom_blur", "ImageNet-C zoom blur: mean of the image and centre zooms by arange(start, stop, step).",
     "(start, stop, step)", "", imagenet_c.zoom_blur,
     ((1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.02), (1, 1.26, 0.02), (1, 1.31, 0.03)), "zoom {:g}-{:g}/{:g}"),
    ("snow", "ImageNet-C snow: zoomed, thresholded, motion-streaked noise flakes over a whitened image.",
     "(mean, std, zoom, threshold, radius, sigma, keep)", "", imagenet_c.snow,
     ((0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7), (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
      (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65), (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55)), "snow {:g}/{:g}/{:g}/{:g}/{}/{}/{:g}"),
    ("fog", "ImageNet-C fog: plus a diamond-square plasma fractal of the strength and roughness decay.",
     "(strength, decay)", "", imagenet_c.fog, ((1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)),
     "fog {:g}, decay {:g}"),
    ("contrast", "ImageNet-C contrast: (x - channel mean) * factor + mean.", "factor", "", imagenet_c.contrast,
     (0.4, 0.3, 0.2, 0.1, 0.05), "x{:.2f}"),
    ("elastic", "ImageNet-C elastic transform: random affine, then a smoothed random displacement field.",
     "(alpha px, sigma px, affine shift px)", "", imagenet_c.elastic,
     ((_E * 2, _E * 0.7, _E * 0.1), (_E * 2, _E * 0.08, _E * 0.2), (_E * 0.05, _E * 0.01, _E * 0.02),
      (_E * 0.07, _E * 0.01, _E * 0.02), (_E * 0.12, _E * 0.01, _E * 0.02)), "a={:.1f}, s={:.1f}, d={:.1f}"),
    ("pixelate", "ImageNet-C pixelate: box downscale to the fraction of each side, box upscale back (Pillow).",
     "fraction", "of side", imagenet_c.pixelate, (0.6, 0.5, 0.4, 0.3, 0.25), "box x{:.2f}"),
)

_PERTURBATIONS: tuple[tuple[Perturbation, str], ...] = (
    (
        Perturbation(
            name="jpeg",
            description="JPEG encode/decode with Pillow (libjpeg) at the quality, 4:2:0 chroma subsampling.",
            param_name="quality",
            unit="",
            fn=functions.jpeg,
            max_side=JPEG_MAX_SIDE,
            tables={"default": (100, 90, 80, 70, 60, 50, 40, 30), "imagenet-c": (25, 18, 15, 10, 7),
                    "aeroblade": (90, 80, 70, 60, 50), "univfd": (100, 90, 80, 70, 60, 50, 40, 30)},
        ),
        "q={}",
    ),
    (
        Perturbation(
            name="blur",
            description="Gaussian blur (OpenCV), sigma in pixels, kernel side 2*ceil(3 sigma)+1, mirrored borders "
                        "(preset aeroblade: AEROBLADE's fixed 9x9 kernel; univfd: scipy's gaussian_filter, as UnivFD).",
            param_name="sigma",
            unit="px",
            fn=functions.gaussian_blur,
            tables={"default": (1, 2, 3, 4), "imagenet-c": (1, 2, 3, 4, 6), "aeroblade": (1, 2, 3, 4, 5),
                    "univfd": (1, 2, 3, 4)},
            preset_fns={"aeroblade": functions.gaussian_blur_fixed_kernel, "univfd": functions.gaussian_blur_scipy},
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
            max_side=WEBP_MAX_SIDE,
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
            max_side=JPEG_MAX_SIDE,
            tables={"default": ((0.75, 90), (0.5, 80), (0.5, 70), (0.33, 60))},
        ),
        "x{:g}, q={}",
    ),
    (
        Perturbation(
            name="share",
            description="Re-shared through social platforms, one hop per level along whatsapp, facebook, instagram, "
            "twitter, telegram: long side fitted to the platform's limit (area), optional unsharp mask, JPEG at its "
            "quality (4:2:0); back to size (bilinear) at the end. Profile numbers: commonly reported estimates "
            "(perturbations/share.py); `share:PROFILE` repeats one platform.",
            param_name="hops",
            unit="uploads",
            fn=share.share,
            tables={"default": (1, 2, 3, 4, 5)},
            identity=lambda: repr([share.PROFILES[name] for name in share.CHAIN]),
        ),
        "{} hop(s)",
    ),
    (
        Perturbation(
            name="screenshot",
            description="Screenshot: shown at zoom x (non-integer display scaling; bilinear up, area down, no "
            "subpixel rendering), values to the power gamma, PNG capture, resampled back to size.",
            param_name="(zoom, gamma)",
            unit="",
            fn=redigitise.screenshot,
            tables={"default": ((1.25, 1.0), (1.5, 1.05), (0.8, 1.1), (0.67, 1.15), (0.5, 1.2))},
        ),
        "x{:g}, gamma {:g}",
    ),
    (
        Perturbation(
            name="recapture",
            description="Photo of a screen: seeded perspective (corners in by up to tilt of the side), Gaussian "
            "blur sigma px, Poisson-Gaussian sensor noise std on [0,1] at mid grey, JPEG at the quality (4:2:0).",
            param_name="(tilt, sigma px, noise, quality)",
            unit="",
            fn=redigitise.recapture,
            max_side=JPEG_MAX_SIDE,
            tables={"default": ((0.02, 0.5, 0.01, 90), (0.04, 0.8, 0.02, 85), (0.06, 1.1, 0.03, 80),
                                (0.08, 1.4, 0.04, 75), (0.10, 1.8, 0.05, 70))},
        ),
        "tilt {:g}, sigma {:g}, noise {:g}, q={}",
    ),
)

for _perturbation, _label in _PERTURBATIONS:
    PERTURBATIONS.add(_perturbation.name, _perturbation, label=_label)
for _name, _description, _param, _unit, _fn, _table, _label in _IMAGENET_C_TABLES:
    PERTURBATIONS.add(_name, Perturbation(_name, _description, _param, _unit, _fn,
                                          {"default": _table, "imagenet-c": _table}), label=_label, imagenet_c=True)


def _share_member(profile: str) -> tuple[Perturbation, str]:
    if profile.lower() not in share.PROFILES:
        raise BenchError("share: " + unknown_name_message("platform profile", profile, list(share.PROFILES)))
    chosen = share.PROFILES[profile.lower()]
    return Perturbation(
        name=f"share:{chosen.name}",
        description=f"Re-shared through one {chosen.name}-like platform, one upload per level: long side "
        f"{chosen.long_side} px, JPEG q={chosen.quality} 4:2:0, sharpen {chosen.sharpen:g}. {chosen.source}.",
        param_name="hops", unit="uploads", fn=share.share_profile(chosen.name), tables={"default": (1, 2, 3)},
        identity=lambda: repr(chosen),
    ), "{} hop(s)"


for _attack in (adversarial.PGD, adversarial.FGSM):
    PERTURBATIONS.add(_attack.name, _attack, label=adversarial.LABEL, adversarial=True)
add_family(Family("transfer", "surrogate detector", adversarial.transfer, lambda: ["npr"],
                  "transfer:SURROGATE: PGD crafted once per cell on the surrogate detector, scored by every detector",
                  meta={"adversarial": True}))
add_family(Family("share", "platform profile", _share_member, lambda: list(share.PROFILES),
                  "share:PROFILE: repeated uploads through one platform-like profile"))


def _resolve(perturbation: Perturbation | str) -> Perturbation:
    return get_perturbation(perturbation) if isinstance(perturbation, str) else perturbation


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
    """The level's parameter as a number for the results table; NaN at level 0 and wherever the parameter is
    not one number: composite parameters, and text such as an ``albu:NAME{...}`` setting (its label says it)."""
    if severity == 0:
        return math.nan
    param = _resolve(perturbation).param(severity, preset)
    number = isinstance(param, numbers.Real) and not isinstance(param, bool)
    return float(param) if number else math.nan
