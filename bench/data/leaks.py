"""Overlap checks between image sets that must not share content.

A seeded split keeps every group of near-duplicates, source images and caption siblings in one split
(:mod:`bench.data.split`), so it cannot leak. Splits given by a manifest, and a training dataset used
against another test dataset (``--train-on``), carry no such guarantee: the same photo can sit in train
and test under two names, or a re-encoded copy of a test image can sit in the training set. Both inflate
every number. :func:`find_overlaps` finds images whose content hash is identical, or whose difference
hashes are within ``NEAR_DUP_BITS`` bits (through the same hash index as the split's grouping), across
the named parts.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.data.dataset import Item
from bench.data.split import NEAR_DUP_BITS, near_duplicate_groups

IDENTICAL = "identical content"
NEAR_DUPLICATE = f"near-duplicate (difference hashes within {NEAR_DUP_BITS} bits)"
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


def find_overlaps(parts: dict[str, list[Item]]) -> list[Overlap]:
    """Groups of identical or near-duplicate images that lie in more than one part (in part order).

    A group is identical content when one content hash appears in two parts, a near-duplicate group
    otherwise; near-duplicates chain (a ~ b ~ c), as in the split's grouping.
    """
    labelled = [(name, it) for name, items in parts.items() for it in items]
    groups = near_duplicate_groups([it.dhash for _, it in labelled], [None] * len(labelled))
    members: dict[int, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(int(group), []).append(index)
    overlaps = []
    for indices in members.values():
        names = {labelled[i][0] for i in indices}
        if len(names) < 2:
            continue
        parts_of_hash: dict[str, set[str]] = {}
        for i in indices:
            parts_of_hash.setdefault(labelled[i][1].sha256, set()).add(labelled[i][0])
        kind = IDENTICAL if any(len(p) > 1 for p in parts_of_hash.values()) else NEAR_DUPLICATE
        files = {name: [labelled[i][1].id for i in indices if labelled[i][0] == name] for name in parts
                 if name in names}
        overlaps.append(Overlap(kind, files))
    return overlaps
