"""Leak-proof splits: the near-duplicate hash index, caption groups, and overlap checks of given splits
and of --train-on data."""

from __future__ import annotations

import json
import shutil
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.core.errors import BenchError
from bench.data.dataset import Item
from bench.data.leaks import IDENTICAL, NEAR_DUPLICATE, find_overlaps
from bench.data.split import NEAR_DUP_BITS, assign_splits, near_duplicate_groups, near_duplicate_pairs
from bench.run.config import RunConfig
from bench.run.runner import Runner


def flip_bits(rng: np.random.Generator, value: int, k: int) -> int:
    for bit in rng.choice(64, size=k, replace=False):
        value ^= 1 << int(bit)
    return value


def planted_hashes(n: int, n_pairs: int, seed: int = 0) -> tuple[np.ndarray, set[tuple[int, int]]]:
    """``n`` random 64-bit hashes; ``n_pairs`` of them copied elsewhere with 0..NEAR_DUP_BITS bits flipped.
    Random 64-bit hashes are within 4 bits of each other with probability ~4e-14 per pair: none by chance."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**63, size=n, dtype=np.uint64) | (rng.integers(0, 2, size=n, dtype=np.uint64) << 63)
    slots = rng.choice(n, size=2 * n_pairs, replace=False)
    planted = set()
    for a, b in slots.reshape(-1, 2):
        hashes[b] = flip_bits(rng, int(hashes[a]), int(rng.integers(0, NEAR_DUP_BITS + 1)))
        planted.add((int(min(a, b)), int(max(a, b))))
    return hashes, planted


def test_hash_index_finds_exactly_the_planted_pairs_among_100k():
    hashes, planted = planted_hashes(100_000, 300)
    found = {tuple(p) for p in near_duplicate_pairs(hashes).tolist()}
    assert found == planted


def test_hash_index_equals_all_pairs_on_clustered_hashes():
    """Many hashes sharing blocks (low values, chains a ~ b ~ c, 5 bits apart): the index misses nothing
    and adds nothing compared with checking every pair."""
    rng = np.random.default_rng(1)
    hashes, _ = planted_hashes(1500, 100, seed=2)
    hashes[:60] = rng.integers(0, 64, size=60).astype(np.uint64)  # dense cluster: every block key shared
    hashes[100] = flip_bits(rng, int(hashes[99]), 5)  # just too far
    brute = {(i, j) for i, j in combinations(range(len(hashes)), 2)
             if int(hashes[i] ^ hashes[j]).bit_count() <= NEAR_DUP_BITS}
    assert {tuple(p) for p in near_duplicate_pairs(hashes).tolist()} == brute


def test_groups_of_near_duplicates_beyond_20k_images():
    """The old all-pairs search stopped at 20k images; the index groups any size."""
    hashes, planted = planted_hashes(30_000, 50, seed=3)
    groups = near_duplicate_groups([int(h) for h in hashes], [None] * len(hashes))
    for a, b in planted:
        assert groups[a] == groups[b] == a
    assert len(set(groups.tolist())) == len(hashes) - len(planted)


def item(id_: str, dhash: int, label: int = 0, generator: str = "real", caption: str | None = None,
         sha: str | None = None, split: str | None = None) -> Item:
    return Item(id_, "/x/" + id_, label, generator, caption, split, None, sha256=sha or id_, dhash=dhash)


def test_caption_siblings_share_a_split():
    rng = np.random.default_rng(0)
    items = [item(f"r{i}", int(rng.integers(2**62)), caption=f"prompt {i}") for i in range(40)]
    items += [item(f"g{i}", int(rng.integers(2**62)), 1, "sd", caption=f"prompt {i % 40}") for i in range(80)]
    split, _ = assign_splits(items, seed=0)
    by_caption: dict[str, set[str]] = {}
    for it in split:
        by_caption.setdefault(it.caption, set()).add(it.split)
    assert all(len(s) == 1 for s in by_caption.values())
    legacy, _ = assign_splits(items, seed=0, caption_groups=False)
    assert any(len({it.split for it in legacy if it.caption == c}) > 1 for c in by_caption)


def test_find_overlaps_names_identical_and_near_duplicate_files():
    rng = np.random.default_rng(4)
    h = [int(v) for v in rng.integers(0, 2**63, size=6, dtype=np.uint64)]
    parts = {
        "train": [item("a.png", h[0], sha="s1"), item("b.png", h[1], sha="s2"), item("c.png", h[2], sha="s3")],
        "val": [item("d.png", h[3], sha="s4")],
        "test": [item("x.png", h[0], sha="s1"), item("y.png", flip_bits(rng, h[1], 3), sha="s5"),
                 item("z.png", h[4], sha="s6"), item("z2.png", flip_bits(rng, h[4], 2), sha="s7")],
    }
    overlaps = find_overlaps(parts)
    assert [(o.kind, o.files) for o in overlaps] == [
        (IDENTICAL, {"train": ["a.png"], "test": ["x.png"]}),
        (NEAR_DUPLICATE, {"train": ["b.png"], "test": ["y.png"]}),
    ]
    assert "train a.png = test x.png" in overlaps[0].describe()
    assert find_overlaps({"train": parts["train"], "test": [parts["test"][2]]}) == []


@pytest.fixture
def given_split_dataset(tiny_dataset, tmp_path) -> Path:
    """The tiny dataset with a manifest that gives splits: one real image in train, a copy of it with one
    pixel changed in test. (Byte-identical copies within one dataset are collapsed before any split.)"""
    root = tmp_path / "given"
    shutil.copytree(tiny_dataset, root)
    pixels = np.array(Image.open(root / "real" / "r000.png"))
    pixels[0, 0] ^= 1  # another file, the same picture to the eye (and to the difference hash)
    Image.fromarray(pixels).save(root / "real" / "copy_of_r000.png")
    lines = ["path,label,generator,split"]
    for i, path in enumerate(sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))):
        generator = "real" if path.startswith("real/") else path.split("/")[1]
        split = "test" if path == "real/copy_of_r000.png" else "train" if path == "real/r000.png" \
            else ("test", "val", "train", "train", "train")[i % 5]
        lines.append(f"{path},{'real' if generator == 'real' else 'fake'},{generator},{split}")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root


def test_given_splits_that_overlap_are_an_error_naming_the_files(given_split_dataset, tmp_path, cache):
    cfg = RunConfig(detectors=["spectral"], dataset=str(given_split_dataset), perturb="none", bootstrap=0,
                    device="cpu", workers=1)
    with pytest.raises(BenchError, match=r"near-duplicate .*: train real/r000.png = test real/copy_of_r000.png"):
        Runner(cfg, tmp_path / "out", cache, progress=False, log=lambda *_: None).run()
    cfg.allow_overlap = True
    record = Runner(cfg, tmp_path / "out", cache, progress=False, log=lambda *_: None).run()
    assert {"kind": NEAR_DUPLICATE, "files": {"train": ["real/r000.png"], "test": ["real/copy_of_r000.png"]}} \
        in json.loads((tmp_path / "out" / "run.json").read_text())["overlaps"]
    assert record.detectors["spectral"].status == "ok"
