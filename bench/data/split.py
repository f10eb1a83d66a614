"""Seeded, stratified train/val/test split that keeps near-duplicates together.

Splits given in the manifest are used as they are (when they name train and test but no val, a seeded
fifth of the training groups becomes val). Otherwise images are grouped
(same ``group`` value, or nearly the same 64-bit difference hash: Hamming
distance <= ``NEAR_DUP_BITS``), and scikit-learn's ``StratifiedGroupKFold``
deals the groups into five folds stratified by generator: fold 0 is the test
split, fold 1 validation, the other three training (60/20/20).
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from bench.core.errors import BenchError
from bench.data.manifest import Skip

SPLITS = ("train", "val", "test")
SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                 "dev": "val", "test": "test", "testing": "test", "eval": "test"}
NEAR_DUP_BITS = 4
MAX_PAIRWISE = 20_000  # above this many images only exact hash matches are grouped (pairwise cost is n^2)


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def near_duplicate_groups(dhashes: list[int], groups: list[str | None],
                          captions: list[str | None] | None = None) -> np.ndarray:
    """Group id per image: union of explicit groups, near-identical difference hashes and (when given)
    identical captions."""
    n = len(dhashes)
    uf = _UnionFind(n)
    first: dict[object, int] = {}
    captions = captions if captions is not None else [None] * n
    for i, (h, g, c) in enumerate(zip(dhashes, groups, captions)):
        for key in (("h", h),) + ((("g", g),) if g else ()) + ((("c", c),) if c else ()):
            if key in first:
                uf.union(first[key], i)
            else:
                first[key] = i
    if 1 < n <= MAX_PAIRWISE:
        hashes = np.array(dhashes, dtype=np.uint64)
        for i in range(n - 1):
            dist = np.bitwise_count(hashes[i + 1 :] ^ hashes[i])
            for j in np.nonzero(dist <= NEAR_DUP_BITS)[0]:
                uf.union(i, i + 1 + int(j))
    return np.array([uf.find(i) for i in range(n)])


def _folds(items: list, seed: int, n_splits: int = 5) -> np.ndarray:
    """Fold of each item: groups of near-duplicates dealt into ``n_splits`` folds stratified by generator."""
    group_ids = near_duplicate_groups([it.dhash for it in items], [it.group for it in items])
    strata = np.array([it.generator for it in items])
    folds = np.zeros(len(items), dtype=np.int64)
    if len(set(group_ids)) < n_splits:
        raise BenchError(f"too few distinct images to split ({len(set(group_ids))} groups of near-duplicates); "
                         "give a 'split' column in the manifest or add images")
    _, per_class = np.unique(strata, return_counts=True)
    if (per_class < n_splits).all():  # scikit-learn would raise a ValueError deep inside the splitter
        raise BenchError(f"too few images to split: every generator class has fewer than {n_splits} images "
                         f"(largest: {per_class.max()}); give a 'split' column in the manifest or add images")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small classes: sklearn warns that a class has fewer members than folds
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        for fold, (_, test_idx) in enumerate(splitter.split(np.zeros(len(items)), strata, group_ids)):
            folds[test_idx] = fold
    return folds


def carve_validation(items: list, seed: int) -> list:
    """A validation split taken from the training split when the manifest gives train and test but no val
    (GenImage, Defactify, D3: their official "val" is everyone's test set): a seeded fifth of the
    training groups, stratified by generator."""
    train = [i for i, it in enumerate(items) if it.split == "train"]
    folds = _folds([items[i] for i in train], seed)
    out = list(items)
    for i, fold in zip(train, folds):
        if fold == 0:
            out[i] = replace(items[i], split="val")
    return out


def assign_splits(items: list, seed: int) -> tuple[list, list[Skip]]:
    given = [it.split for it in items]
    if any(given):
        out, skips = [], []
        for it in items:
            name = SPLIT_ALIASES.get((it.split or "").lower())
            if name is None:
                reason = "no split while other rows have one" if not it.split else f"unknown split {it.split!r}"
                skips.append(Skip(it.id, reason))
            else:
                out.append(replace(it, split=name))
        present = {it.split for it in out}
        if {"train", "test"} <= present and "val" not in present:
            out = carve_validation(out, seed)
        return out, skips
    if not items:
        return [], []
    folds = _folds(items, seed)
    names = np.where(folds == 0, "test", np.where(folds == 1, "val", "train"))
    return [replace(it, split=str(s)) for it, s in zip(items, names)], []
