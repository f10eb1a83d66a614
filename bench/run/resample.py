"""Bootstrap draws shared by every detector of a cell: stratified, group-aware, seeded by the cell.

A replicate is a vector of per-image counts (how often each image was drawn).
The strata are the real images and each generator's images; within a stratum
the *groups* (near-duplicates, images of one source, caption siblings; see
:func:`bench.data.split.near_duplicate_groups`) are drawn with replacement,
as many as the stratum holds, and every image of a drawn group gets the
group's count. A group whose images fall in several strata (a real photo and
the images generated from its caption) is drawn in one extra stratum of its
own. When every group is one image this is exactly the image bootstrap
(the same random draws, the same counts).

The seed depends on the run seed and the cell only, never on the detector, so
every detector of a cell is resampled with the same draws and the difference
of two detectors has its own interval (paired bootstrap).
"""

from __future__ import annotations

import numpy as np

from bench.core.hashing import stable_hash


def cell_seed(seed: int, perturbation: str, severity: int) -> int:
    """The bootstrap seed of a cell: the run seed and the cell, not the detector."""
    return int(stable_hash([seed, perturbation, int(severity)])[:8], 16)


def bootstrap_weights(y, generators, gen_names, n_boot: int, seed: int, groups=None) -> np.ndarray:
    """``(n_boot, n)`` draw counts; ``groups`` (one label per image, or None: every image alone).

    Per stratum (reals, then each generator in ``gen_names`` order, then the
    mixed groups), the ``m`` groups are drawn ``m`` times with replacement:
    multinomial counts with equal probabilities, in order of first appearance.
    """
    y = np.asarray(y)
    generators = np.asarray(generators, dtype=object)
    codes = np.arange(y.size) if groups is None else np.unique(np.asarray(groups, dtype=object).astype(str),
                                                                return_inverse=True)[1].ravel()
    stratum = np.full(y.size, -1)
    stratum[y == 0] = 0
    for k, gen in enumerate(gen_names, start=1):
        stratum[(y == 1) & (generators == gen)] = k
    n_groups = int(codes.max()) + 1 if codes.size else 0
    group_stratum = np.full(n_groups, -2)
    for g, s in zip(codes, stratum):
        group_stratum[g] = s if group_stratum[g] in (-2, s) else len(gen_names) + 1  # mixed
    rng = np.random.default_rng(seed)
    w = np.zeros((n_boot, y.size))
    image_stratum = group_stratum[codes] if codes.size else stratum
    for s in range(len(gen_names) + 2):
        members = np.flatnonzero(image_stratum == s)
        if not members.size:
            continue
        member_groups, first = np.unique(codes[members], return_index=True)
        ordered = member_groups[np.argsort(first)]  # order of first appearance
        m = ordered.size
        counts = rng.multinomial(m, np.full(m, 1.0 / m), size=n_boot)
        position = np.empty(n_groups, dtype=np.int64)
        position[ordered] = np.arange(m)
        w[:, members] = counts[:, position[codes[members]]]
    return w
