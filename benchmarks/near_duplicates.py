"""Benchmark near-duplicate grouping on large manifests (not a test; prints numbers, asserts nothing).

    python benchmarks/near_duplicates.py                  # 100k rows, 1000 planted pairs
    python benchmarks/near_duplicates.py --n 1000000 --pairs 5000

Random 64-bit difference hashes with ``--pairs`` planted near-duplicates (0 to NEAR_DUP_BITS bits
flipped). Prints the time of the hash index (bench.data.split.near_duplicate_pairs), of the whole
grouping (near_duplicate_groups: union-find over index pairs, manifest groups and captions), and
how many planted pairs were found and how many others.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.data.split import NEAR_DUP_BITS, near_duplicate_groups, near_duplicate_pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="rows (default: 100000)")
    parser.add_argument("--pairs", type=int, default=1000, help="planted near-duplicate pairs (default: 1000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    hashes = rng.integers(0, 2**63, size=args.n, dtype=np.uint64) | (
        rng.integers(0, 2, size=args.n, dtype=np.uint64) << np.uint64(63))
    slots = rng.choice(args.n, size=2 * args.pairs, replace=False).reshape(-1, 2)
    planted = set()
    for a, b in slots:
        value = int(hashes[a])
        for bit in rng.choice(64, size=int(rng.integers(0, NEAR_DUP_BITS + 1)), replace=False):
            value ^= 1 << int(bit)
        hashes[b] = value
        planted.add((int(min(a, b)), int(max(a, b))))
    started = time.perf_counter()
    pairs = {tuple(p) for p in near_duplicate_pairs(hashes).tolist()}
    index_s = time.perf_counter() - started
    started = time.perf_counter()
    groups = near_duplicate_groups([int(h) for h in hashes], [None] * args.n)
    groups_s = time.perf_counter() - started
    print(f"rows {args.n}, planted pairs {len(planted)}, max distance {NEAR_DUP_BITS} bits")
    print(f"hash index: {index_s:.2f} s, found {len(pairs & planted)} planted, {len(pairs - planted)} others")
    print(f"grouping (index + union-find): {groups_s:.2f} s, {len(set(groups.tolist()))} groups")


if __name__ == "__main__":
    main()
