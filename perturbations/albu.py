"""``albu:NAME``: any albumentations transform as a perturbation, seeded like every other one.

``albu:MotionBlur`` uses the shipped severity table of that transform (``TABLES``: one physical
parameter per level, mapped to the transform's keyword arguments); a transform without a
shipped table runs once with albumentations' defaults (one level). ``albu:NAME{key=value,...}``
is a one-off setting (one level) with those keyword arguments; values are Python literals
(``blur_limit=(9,9)``) or bare words (``compression_type=webp``).

Every application builds a fresh transform with ``p=1`` and seeds it from the cell's generator
(``set_random_seed``), so the pixels depend only on (run seed, image, perturbation, severity),
never on the order or the thread that computes them. Names and keywords are checked when the
``--perturb`` item is read: an unknown transform or keyword is a one-line error with close
matches, and the transform is built and run once on a small image so that bad values or a
transform that changes the image's shape (crops, pads) fail before the run starts.
"""

from __future__ import annotations

import ast
import difflib
import re
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from bench.core.errors import BenchError
from perturbations.base import Perturbation
from perturbations.families import Family, add_family, split_top_level


@dataclass(frozen=True)
class AlbuTable:
    param_name: str
    unit: str
    values: tuple[Any, ...]  # levels 1..5
    kwargs: Callable[[Any], dict[str, Any]]  # a level's value -> the transform's keyword arguments
    label: str  # str.format pattern of a level's value


AREA_DOWN_LINEAR_UP = {"downscale": 3, "upscale": 1}  # cv2.INTER_AREA, cv2.INTER_LINEAR (nearest aliases)

TABLES: dict[str, AlbuTable] = {
    # a fixed diagonal, centred streak: with a random angle per level, a longer streak along the image's edges
    # can distort less than a shorter one across them, and severity would not order the distortion
    "MotionBlur": AlbuTable("kernel", "px", (3, 5, 7, 9, 13),
                            lambda k: {"blur_limit": (k, k), "angle_range": (45, 45), "direction_range": (0, 0),
                                       "allow_shifted": False}, "kernel {} px"),
    "Defocus": AlbuTable("radius", "px", (2, 3, 4, 6, 8), lambda r: {"radius": (r, r), "alias_blur": (0.1, 0.1)},
                         "radius {} px"),
    "ZoomBlur": AlbuTable("max zoom", "", (1.03, 1.06, 1.09, 1.12, 1.16),
                          lambda z: {"max_factor": (z, z), "step_factor": (0.01, 0.01)}, "zoom x{:g}"),
    "MedianBlur": AlbuTable("kernel", "px", (3, 5, 7, 9, 11), lambda k: {"blur_limit": (k, k)}, "kernel {} px"),
    "GaussNoise": AlbuTable("std", "on [0,1]", (0.02, 0.04, 0.06, 0.08, 0.10),
                            lambda s: {"std_range": (s, s)}, "std={:.2f}"),
    "ISONoise": AlbuTable("intensity", "", (0.1, 0.2, 0.3, 0.4, 0.5),
                          lambda i: {"intensity": (i, i), "color_shift": (i / 10, i / 10)}, "intensity {:g}"),
    "MultiplicativeNoise": AlbuTable("spread", "", (0.05, 0.10, 0.15, 0.20, 0.25),
                                     lambda s: {"multiplier": (1 - s, 1 + s), "elementwise": True}, "x1+-{:g}"),
    "ImageCompression": AlbuTable("quality", "", (90, 70, 50, 30, 10),
                                  lambda q: {"quality_range": (q, q), "compression_type": "jpeg"}, "q={}"),
    "Downscale": AlbuTable("scale", "of side", (0.8, 0.6, 0.45, 0.3, 0.2),
                           lambda s: {"scale_range": (s, s), "interpolation_pair": AREA_DOWN_LINEAR_UP}, "x{:.2f}"),
    "RandomBrightnessContrast": AlbuTable("contrast cut", "", (0.1, 0.2, 0.3, 0.4, 0.5),
                                          lambda c: {"brightness_limit": (0, 0), "contrast_limit": (-c, -c)},
                                          "contrast -{:g}"),
    "RandomGamma": AlbuTable("gamma", "%", (120, 140, 160, 180, 200), lambda g: {"gamma_limit": (g, g)},
                             "gamma {}%"),
    "HueSaturationValue": AlbuTable("hue shift", "", (4, 8, 12, 16, 20),
                                    lambda h: {"hue_shift_limit": (h, h), "sat_shift_limit": (0, 0),
                                               "val_shift_limit": (0, 0)}, "hue +{}"),
    "Sharpen": AlbuTable("alpha", "", (0.2, 0.4, 0.6, 0.8, 1.0), lambda a: {"alpha": (a, a), "lightness": (1, 1)},
                         "alpha {:g}"),
    "Posterize": AlbuTable("bits", "", (7, 6, 5, 4, 3), lambda b: {"num_bits": b}, "{} bits"),
    "Perspective": AlbuTable("scale", "of side", (0.02, 0.04, 0.06, 0.08, 0.10),
                             lambda s: {"scale": (s, s), "keep_size": True}, "scale {:g}"),
}
_ADJUSTED = re.compile(r"invalid|adjusted", re.IGNORECASE)  # a warning that albumentations changed a setting
_RESERVED = ("p", "strict")  # set by the wrapper: p=1 always, strict validation always


def _albumentations():
    import albumentations

    return albumentations


def transform_names() -> list[str]:
    """Every transform class albumentations exports (image-only and dual transforms)."""
    albu = _albumentations()
    classes = {name: getattr(albu, name) for name in dir(albu) if not name.startswith("_")}
    return sorted(name for name, cls in classes.items() if isinstance(cls, type) and issubclass(cls, albu.BasicTransform)
                  and cls.__module__.startswith("albumentations.augmentations"))


def _canonical(name: str) -> str:
    known = transform_names()
    by_lower = {n.lower(): n for n in known}
    if name.lower() not in by_lower:
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise BenchError(f"albu: unknown albumentations transform {name!r}{hint} ({len(known)} known; shipped "
                         f"severity tables: {', '.join(sorted(TABLES))})")
    return by_lower[name.lower()]


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare word: an enum-like string such as "webp"


def parse_settings(transform: str, text: str) -> dict[str, Any]:
    """``"blur_limit=(9,9), allow_shifted=False"`` -> keyword arguments, keys checked against the transform."""
    fields = [f for f in getattr(_albumentations(), transform).InitSchema.model_fields if f not in _RESERVED]
    settings: dict[str, Any] = {}
    for item in (part for part in split_top_level(text) if part):
        key, equals, value = (part.strip() for part in item.partition("="))
        if not equals or not key or not value:
            raise BenchError(f"albu:{transform}: cannot read setting {item!r}; write key=value")
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise BenchError(f"albu:{transform}: unknown parameter {key!r}{hint} (known: {', '.join(fields)})")
        settings[key] = _literal(value)
    return settings


def build_transform(transform: str, kwargs: dict[str, Any], seed: int):
    """A fresh transform applied with certainty, seeded: one per image, so threads never share state."""
    try:
        instance = getattr(_albumentations(), transform)(**kwargs, p=1.0)
    except Exception as exc:  # pydantic's ValidationError or a TypeError: one line, what was wrong
        first = str(exc).strip().splitlines()
        raise BenchError(f"albu:{transform}: invalid settings {kwargs!r}: {' '.join(first[:3])}") from None
    instance.set_random_seed(seed)
    return instance


def albu_function(transform: str, to_kwargs: Callable[[Any], dict[str, Any]]):
    """``fn(image, level_value, rng)`` running the transform with the level's keyword arguments."""

    def albu_apply(image: np.ndarray, value: Any, rng: np.random.Generator) -> np.ndarray:
        instance = build_transform(transform, to_kwargs(value), int(rng.integers(2**32)))
        out = instance(image=np.array(image))["image"]  # a private writable copy: the input stays untouched
        if out.shape != image.shape or out.dtype != np.uint8:
            raise BenchError(f"albu:{transform} turned a {image.shape} uint8 image into {out.dtype} {out.shape}; "
                             "only transforms that keep the shape and dtype can be perturbations")
        return np.ascontiguousarray(out)

    return albu_apply


def _probe(perturbation: Perturbation, transform: str, to_kwargs: Callable[[Any], dict[str, Any]]) -> None:
    """Build and run every level once on a small image, so bad settings fail when ``--perturb`` is read.

    A setting albumentations accepts only by changing it (it warns: ``blur_limit=-3`` "Invalid kernel size
    range ... automatically adjusted to (3, 3)") is refused too: the run would record one setting and apply
    another. Advice (a slow or deprecated transform) is not a refusal."""
    image = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    for level in perturbation.levels()[1:]:
        kwargs = to_kwargs(perturbation.param(level))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            build_transform(transform, kwargs, 0)
        rejected = [str(w.message) for w in caught if _ADJUSTED.search(str(w.message))]
        if rejected:
            first = " ".join(rejected[0].strip().splitlines()[:3])
            raise BenchError(f"albu:{transform}: invalid settings {kwargs!r}: {first}")
        try:
            perturbation.apply(image, level, np.random.default_rng(level))
        except BenchError:
            raise
        except Exception as exc:  # e.g. a transform that needs bounding boxes: one line, not a traceback
            raise BenchError(f"albu:{transform}: cannot run on an image alone: {type(exc).__name__}: "
                             f"{' '.join(str(exc).strip().splitlines()[:2])}") from None


def build(argument: str) -> tuple[Perturbation, str | None]:
    name, brace, rest = argument.partition("{")
    transform = _canonical(name.strip())
    version = _albumentations().__version__
    if brace:
        if not rest.endswith("}"):
            raise BenchError(f"albu:{argument}: settings must be enclosed in braces, as in albu:{transform}{{k=v}}")
        settings = parse_settings(transform, rest[:-1])
        to_kwargs = lambda _: settings  # noqa: E731
        text = ",".join(f"{key}={value!r}" for key, value in settings.items())
        perturbation = Perturbation(
            name=f"albu:{transform}{{{text}}}", description=f"albumentations {version} {transform}({text}), p=1, "
            "one-off setting (one level).", param_name="settings", unit="", fn=albu_function(transform, to_kwargs),
            tables={"default": (text,)}, identity=lambda: f"albumentations {version} {settings!r}")
        label = "{}"
    elif transform in TABLES:
        table = TABLES[transform]
        to_kwargs = table.kwargs
        perturbation = Perturbation(
            name=f"albu:{transform}", description=f"albumentations {version} {transform}, p=1, {table.param_name} "
            f"per level: " + "; ".join(f"{v}: {table.kwargs(v)}" for v in table.values) + ".",
            param_name=table.param_name, unit=table.unit, fn=albu_function(transform, to_kwargs),
            tables={"default": table.values},
            identity=lambda: f"albumentations {version} " + repr([table.kwargs(v) for v in table.values]))
        label = table.label
    else:
        to_kwargs = lambda _: {}  # noqa: E731
        perturbation = Perturbation(
            name=f"albu:{transform}", description=f"albumentations {version} {transform} with its default "
            "parameters, p=1 (no shipped severity table: one level).", param_name="settings", unit="",
            fn=albu_function(transform, to_kwargs), tables={"default": ("defaults",)},
            identity=lambda: f"albumentations {version} defaults")
        label = "{}"
    _probe(perturbation, transform, to_kwargs)
    return perturbation, label


add_family(Family("albu", "albumentations transform", build, lambda: sorted(TABLES),
                  "albu:NAME or albu:NAME{key=value,...}: any albumentations transform, p=1, seeded per cell"))
