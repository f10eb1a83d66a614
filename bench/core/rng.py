"""Seeded random generators derived from what a random choice is about.

A perturbation of one image in one grid cell draws from
``cell_rng(seed, image_key, perturbation, severity)``: the same cell gives the
same bytes whatever order, process or machine computes it.
"""

from __future__ import annotations

import hashlib

import numpy as np


def _words(text: str) -> list[int]:
    digest = hashlib.sha256(text.encode("utf-8")).digest()[:16]
    return [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]


def derive_rng(seed: int, *parts: object) -> np.random.Generator:
    """A generator seeded by ``seed`` and any number of labels (strings, ints)."""
    entropy = [int(seed) & 0xFFFFFFFF]
    for part in parts:
        entropy.extend(_words(repr(part)))
    return np.random.default_rng(np.random.SeedSequence(entropy))


def cell_rng(seed: int, image_key: str, perturbation: str, severity: int) -> np.random.Generator:
    return derive_rng(seed, "cell", image_key, perturbation, int(severity))
