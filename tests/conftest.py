"""Shared fixtures: small image folders made by the tests themselves."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.core.cache import Cache

# The cache's HMAC keys live outside every cache; the tests keep theirs out of the user's config dir too,
# in a folder removed when the test session ends.
if "BENCH_CACHE_KEY_DIR" not in os.environ:
    os.environ["BENCH_CACHE_KEY_DIR"] = tempfile.mkdtemp(prefix="bench-test-keys-")
    atexit.register(shutil.rmtree, os.environ["BENCH_CACHE_KEY_DIR"], True)

WILD_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "wild-dev"
#: Real pretrained weights kept next to the checkout (TAEF2, LPIPS VGG/AlexNet trunks); see its README.md.
SHARED_WEIGHTS = Path(__file__).resolve().parents[2] / "shared" / "weights"


def write_png(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def textured(rng: np.random.Generator, size: int = 48, smooth: bool = False) -> np.ndarray:
    """A random image; 'smooth' ones lack high frequencies (a crude generator artefact)."""
    base = rng.normal(128, 40, (size // 4, size // 4, 3))
    img = np.kron(base, np.ones((4, 4, 1)))
    if not smooth:
        img = img + rng.normal(0, 25, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """real/ + fake/<gen>/ layout: 40 real, 20 'blocky', 20 'noisy_blocky' images of 48x48."""
    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    for i in range(40):
        write_png(root / "real" / f"r{i:03d}.png", textured(rng))
    for i in range(20):
        write_png(root / "fake" / "blocky" / f"b{i:03d}.png", textured(rng, smooth=True))
    for i in range(20):
        arr = textured(rng, smooth=True)
        arr[::2, ::2] = 255 - arr[::2, ::2]  # a periodic pattern
        write_png(root / "fake" / "grid" / f"g{i:03d}.png", arr)
    return root


@pytest.fixture
def cache(tmp_path) -> Cache:
    return Cache(tmp_path / "cache")


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Cache:
    return Cache(tmp_path_factory.mktemp("shared-cache"))


@pytest.fixture(scope="session")
def tiny_splits(tiny_dataset, tmp_path_factory) -> dict:
    """The tiny dataset's train/val/test splits as ImageSets."""
    from bench.data.dataset import load_dataset
    from bench.data.imageset import ImageSet

    ds = load_dataset(str(tiny_dataset), Cache(tmp_path_factory.mktemp("splits-cache")), progress=False)
    return {s: ImageSet(ds.split(s)) for s in ("train", "val", "test")}


@contextmanager
def interrupted_after_checkpoints(n: int):
    """Simulate a kill right after the training loop writes its n-th checkpoint.

    The checkpoint is written for real, then KeyboardInterrupt is raised, so a second
    fit with the same checkpoint path has to resume from it.
    """
    import bench.nn.training as training

    original = training._save_checkpoint
    saves = {"n": 0}

    def save_then_crash(path, state):
        original(path, state)
        saves["n"] += 1
        if saves["n"] == n:
            raise KeyboardInterrupt

    training._save_checkpoint = save_then_crash
    try:
        yield saves
    finally:
        training._save_checkpoint = original
