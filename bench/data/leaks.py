"""Overlap checks between image sets that must not share content.

A seeded split keeps every group of near-duplicates, source images and caption siblings in one split
(:mod:`bench.data.split`), so it cannot leak. Splits given by a manifest, and a training dataset used
against another test dataset (``--train-on``), carry no such guarantee: the same photo can sit in train
and test under two names, or a re-encoded copy of a test image can sit in the training set. Both inflate
every number. :func:`find_overlaps` finds images whose content hash is identical, or whose difference
hashes are within ``NEAR_DUP_BITS`` bits (through the same hash index as the split's grouping) and whose
detail confirms it (:mod:`bench.data.likeness`: the hash alone flags unrelated images with the same coarse
layout), across the named parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from bench.data.dataset import Item
from bench.data.likeness import MIN_DETAIL_CORRELATION, THUMB_SIDE, read_thumbnail, same_picture
from bench.data.split import NEAR_DUP_BITS, UnionFind, near_duplicate_groups, near_duplicate_pairs

IDENTICAL = "identical content"
NEAR_DUPLICATE = (f"near-duplicate (difference hashes within {NEAR_DUP_BITS} bits, {THUMB_SIDE}x{THUMB_SIDE} "
                  f"detail correlation >= {MIN_DETAIL_CORRELATION})")
MAX_LISTED_FILES = 5  # per part, in the one-line description; run.json keeps them all


@dataclass(frozen=True)
class Overlap:
    """One group of images found in several parts: ``files`` maps a part name to its image ids."""

    kind: str
    files: dict[str, list[str]]

    def describe(self) -> str:
        def listed(ids: list[str]) -> str:
            more = f" and {len(ids) - MAX_LISTED_FILES} more" if len(ids) > MAX_LISTED_FILES else ""
            return ", ".join(ids[:MAX_LISTED_FILES]) + more

        return f"{self.kind}: " + " = ".join(f"{part} {listed(ids)}" for part, ids in self.files.items())

    def record(self) -> dict:
        return {"kind": self.kind, "files": self.files}


def find_overlaps(parts: dict[str, list[Item]],
                  read: Callable[[str], np.ndarray | None] = read_thumbnail) -> list[Overlap]:
    """Groups of identical or near-duplicate images that lie in more than one part (in part order).

    A group is identical content when one content hash appears in two parts, a near-duplicate group
    otherwise; near-duplicates chain (a ~ b ~ c), as in the split's grouping. Each pair of close difference
    hashes is confirmed by ``read`` (an image path -> its thumbnail, bench.data.likeness) before it joins a
    group; an image that cannot be read now keeps the hash's verdict.
    """
    labelled = [(name, it) for name, items in parts.items() for it in items]
    groups = near_duplicate_groups([it.dhash for _, it in labelled], [None] * len(labelled))
    candidates: dict[int, list[int]] = {}
    for index, group in enumerate(groups):
        candidates.setdefault(int(group), []).append(index)
    overlaps = []
    for candidate in candidates.values():
        if len({labelled[i][0] for i in candidate}) < 2:
            continue
        for indices in _confirmed([labelled[i][1] for i in candidate], read):
            members = [candidate[i] for i in indices]
            names = {labelled[i][0] for i in members}
            if len(names) < 2:
                continue
            parts_of_hash: dict[str, set[str]] = {}
            for i in members:
                parts_of_hash.setdefault(labelled[i][1].sha256, set()).add(labelled[i][0])
            kind = IDENTICAL if any(len(p) > 1 for p in parts_of_hash.values()) else NEAR_DUPLICATE
            files = {name: [labelled[i][1].id for i in members if labelled[i][0] == name] for name in parts
                     if name in names}
            overlaps.append(Overlap(kind, files))
    return overlaps


def _confirmed(items: list[Item], read: Callable[[str], np.ndarray | None]) -> list[list[int]]:
    """The hash group ``items`` split into groups whose links are confirmed: pairs within ``NEAR_DUP_BITS`` bits
    that hold the same bytes or the same picture (each image read once, only when a pair needs it)."""
    thumbs: dict[int, np.ndarray | None] = {}

    def thumb(i: int) -> np.ndarray | None:
        if i not in thumbs:
            thumbs[i] = read(items[i].path)
        return thumbs[i]

    links = UnionFind(len(items))
    for i, j in near_duplicate_pairs([it.dhash for it in items]).tolist():
        if items[i].sha256 == items[j].sha256:
            links.union(i, j)
            continue
        a, b = thumb(i), thumb(j)
        if a is None or b is None or same_picture(a, b):
            links.union(i, j)
    groups: dict[int, list[int]] = {}
    for i in range(len(items)):
        groups.setdefault(links.find(i), []).append(i)
    return list(groups.values())
