"""Parametrised perturbations: ``FAMILY:ARGUMENT`` names built on first use.

Some perturbations take an argument that no fixed list can enumerate: any albumentations
transform (``albu:MotionBlur``, ``albu:MotionBlur{blur_limit=9}``), any autoencoder of the
weights catalog (``vae_roundtrip:taef2``), any surrogate detector (``transfer:npr``), one
sharing platform (``share:instagram``). A family registers a builder that turns the argument
into a :class:`Perturbation` (validating it: an unknown argument is a one-line error with close
matches); :func:`get_perturbation` builds it once and registers it in ``PERTURBATIONS`` under
its canonical name, so everything downstream (runner, labels, run record) finds it like any
other perturbation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from bench.core.errors import BenchError
from bench.core.registries import PERTURBATIONS
from bench.core.registry import Registry
from perturbations.base import Perturbation


@dataclass(frozen=True)
class Family:
    """A ``prefix:ARGUMENT`` perturbation family: ``build(argument)`` -> (perturbation, label pattern)."""

    prefix: str
    argument: str  # what the argument names, for help and errors: "albumentations transform"
    build: Callable[[str], tuple[Perturbation, str | None]]
    choices: Callable[[], list[str]]  # the known arguments, for did-you-mean and `bench list perturbations`
    summary: str = ""
    meta: dict | None = None  # registry metadata for every member (e.g. adversarial=True)


FAMILIES: Registry = Registry("perturbation family")


def add_family(family: Family) -> None:
    FAMILIES.add(family.prefix, family)


def split_family(name: str) -> tuple[str, str] | None:
    """``"albu:MotionBlur"`` -> ``("albu", "MotionBlur")`` when ``albu`` is a family, else None."""
    prefix, colon, argument = name.partition(":")
    prefix = prefix.strip().lower()
    return (prefix, argument.strip()) if colon and prefix in FAMILIES else None


def split_top_level(text: str) -> list[str]:
    """Split on the commas outside brackets, so ``albu:Affine{scale=(0.9,1.1),rotate=5}`` stays one item."""
    items, depth, current = [], 0, []
    for char in text:
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        if char == "," and depth <= 0:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    return [*items, "".join(current).strip()]


def get_perturbation(name: str) -> Perturbation:
    """A registered perturbation, or the member of a family built (and registered) on first use."""
    if name in PERTURBATIONS:
        return PERTURBATIONS.get(name)
    parts = split_family(name)
    if parts is None:
        return PERTURBATIONS.get(name)  # the registry's unknown-name error with close matches
    family: Family = FAMILIES.get(parts[0])
    if not parts[1]:
        raise BenchError(f"{family.prefix}: name the {family.argument}, as in '{family.prefix}:{family.choices()[0]}'")
    perturbation, label = family.build(parts[1])
    if perturbation.name not in PERTURBATIONS:
        PERTURBATIONS.add(perturbation.name, perturbation, label=label, family=family.prefix, **(family.meta or {}))
    return PERTURBATIONS.get(perturbation.name)
