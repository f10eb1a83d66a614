"""Seeded, stratified train/val/test split that keeps near-duplicates together.

Splits given in the manifest are used as they are (when they name train and test but no val, a seeded
fifth of the training groups becomes val; :mod:`bench.data.leaks` checks given splits for overlaps).
Otherwise images are grouped (same ``group`` value, the same caption or prompt, or nearly the same
64-bit difference hash: Hamming distance <= ``NEAR_DUP_BITS``), and scikit-learn's
``StratifiedGroupKFold`` deals the groups into five folds stratified by generator: fold 0 is the test
split, fold 1 validation, the other three training (60/20/20).

Near-duplicates are found through a multi-index hash (:func:`near_duplicate_pairs`), not by comparing
all pairs, so grouping stays fast on hundreds of thousands of images (benchmarks/near_duplicates.py).
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
HASH_BITS = 64


class UnionFind:
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


def _block_keys(values: np.ndarray, n_blocks: int) -> list[tuple[np.ndarray, int]]:
    """The hash bits cut into ``n_blocks`` contiguous blocks (as equal as possible): (integer keys, width)."""
    edges = np.linspace(0, HASH_BITS, n_blocks + 1).round().astype(int)
    return [((values >> np.uint64(lo)) & np.uint64((1 << (hi - lo)) - 1), int(hi - lo))
            for lo, hi in zip(edges[:-1], edges[1:])]


def _same_key_pairs(order: np.ndarray, ranked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pair (i, j), i != j, of equal keys (``ranked`` = the keys sorted by ``order``): each position
    paired with the ones after it in its run of equal keys. The work is the number of pairs, not n^2."""
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    run_end = np.repeat(np.r_[starts[1:], ranked.size], np.diff(np.r_[starts, ranked.size]))
    left, right = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    active = np.flatnonzero(run_end - np.arange(ranked.size) > 1)
    offset = 1
    while active.size:
        left.append(order[active])
        right.append(order[active + offset])
        offset += 1
        active = active[run_end[active] - active > offset]
    return np.concatenate(left), np.concatenate(right)


def _keys_at(order: np.ndarray, first: np.ndarray, counts: np.ndarray,
             queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pair (i, j) with ``keys[j] == queries[i]``: ``counts[k]`` keys equal ``k`` and they sit at
    ``order[first[k]:first[k] + counts[k]]`` (a dense table over the block's values: one lookup each)."""
    n_found = counts[queries]
    i = np.repeat(np.arange(queries.size), n_found)
    within = np.arange(i.size) - np.repeat(np.cumsum(n_found) - n_found, n_found)
    return i, order[np.repeat(first[queries], n_found) + within]


def near_duplicate_pairs(dhashes, max_bits: int = NEAR_DUP_BITS) -> np.ndarray:
    """``(k, 2)`` index pairs ``i < j`` whose 64-bit hashes differ in at most ``max_bits`` bits, sorted.

    Multi-index hashing (Norouzi et al., 2012): the bits are cut into ``m = max(3, ceil((max_bits + 1) / 2))``
    blocks; two hashes that differ in at most ``max_bits`` bits differ in at most ``max_bits // m`` (0 or 1)
    bits on at least one block (pigeonhole). So per block the candidates are the hashes whose block
    keys are equal or one bit apart, and each candidate is
    checked with a popcount. Few, wide blocks keep the chance candidates few (about ``n^2 (w + 1) / 2^w``
    per block of ``w`` bits) as ``n`` grows; a table of ``2^w`` counts per block (``w`` <= 22 bits for
    4 bits, 32 MB) finds them without a search. Equal hashes pair with each other, so pass distinct values
    when many images share one hash.
    """
    values = np.asarray(dhashes, dtype=np.uint64)
    n_blocks = max(3, (max_bits + 2) // 2)
    radius = max_bits // n_blocks
    found = [np.empty((0, 2), np.int64)]
    for keys, width in _block_keys(values, n_blocks):
        order = np.argsort(keys, kind="stable")
        ranked = keys[order]
        candidates = [_same_key_pairs(order, ranked)]
        if radius:
            codes = keys.astype(np.int64)
            counts = np.bincount(codes, minlength=1 << width)
            first = np.cumsum(counts) - counts
            candidates += [_keys_at(order, first, counts, codes ^ (1 << bit)) for bit in range(width)]
        for i, j in candidates:
            close = np.bitwise_count(values[i] ^ values[j]) <= max_bits
            found.append(np.stack([np.minimum(i, j), np.maximum(i, j)], axis=1)[close].astype(np.int64))
    return np.unique(np.concatenate(found), axis=0)


def near_duplicate_groups(dhashes: list[int], groups: list[str | None],
                          captions: list[str | None] | None = None) -> np.ndarray:
    """Group id per image (the smallest index of its group): union of explicit groups, near-identical
    difference hashes and (when given) identical captions."""
    n = len(dhashes)
    uf = UnionFind(n)
    first: dict[object, int] = {}
    captions = captions if captions is not None else [None] * n
    for i, (h, g, c) in enumerate(zip(dhashes, groups, captions)):
        for key in (("h", h),) + ((("g", g),) if g else ()) + ((("c", c),) if c else ()):
            if key in first:
                uf.union(first[key], i)
            else:
                first[key] = i
    if n > 1:
        distinct, representative = np.unique(np.asarray(dhashes, dtype=np.uint64), return_index=True)
        for a, b in near_duplicate_pairs(distinct):
            uf.union(int(representative[a]), int(representative[b]))
    return np.array([uf.find(i) for i in range(n)])


def _folds(items: list, seed: int, caption_groups: bool = True, n_splits: int = 5) -> np.ndarray:
    """Fold of each item: groups (module docstring) dealt into ``n_splits`` folds stratified by generator.
    ``caption_groups``: rows sharing a caption or prompt form one group (off only to reproduce splits made
    before captions were grouped, as the ``ci`` suite does for its committed reference)."""
    group_ids = near_duplicate_groups([it.dhash for it in items], [it.group for it in items],
                                      [it.caption for it in items] if caption_groups else None)
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


def carve_validation(items: list, seed: int, caption_groups: bool = True) -> list:
    """A validation split taken from the training split when the manifest gives train and test but no val
    (GenImage, Defactify, D3: their official "val" is everyone's test set): a seeded fifth of the
    training groups, stratified by generator."""
    train = [i for i, it in enumerate(items) if it.split == "train"]
    folds = _folds([items[i] for i in train], seed, caption_groups)
    out = list(items)
    for i, fold in zip(train, folds):
        if fold == 0:
            out[i] = replace(items[i], split="val")
    return out


def assign_splits(items: list, seed: int, caption_groups: bool = True) -> tuple[list, list[Skip]]:
    """Manifest splits as given, or a seeded split that keeps each group in one split (module docstring)."""
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
            out = carve_validation(out, seed, caption_groups)
        return out, skips
    if not items:
        return [], []
    folds = _folds(items, seed, caption_groups)
    names = np.where(folds == 0, "test", np.where(folds == 1, "val", "train"))
    return [replace(it, split=str(s)) for it, s in zip(items, names)], []
