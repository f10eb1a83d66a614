"""Shared fixtures: small image folders made by the tests themselves."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from bench.core.cache import Cache
from bench.core.registries import DETECTORS, load_plugins
from helpers import registry_restored, textured, write_png

# The cache's HMAC keys live outside every cache; the tests keep theirs out of the user's config dir too,
# in a folder removed when the test session ends.
if "BENCH_CACHE_KEY_DIR" not in os.environ:
    os.environ["BENCH_CACHE_KEY_DIR"] = tempfile.mkdtemp(prefix="bench-test-keys-")
    atexit.register(shutil.rmtree, os.environ["BENCH_CACHE_KEY_DIR"], True)


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


@pytest.fixture(scope="module")
def declared_detectors_stay_here():
    """For modules that declare detectors (``pytestmark = pytest.mark.usefixtures(...)``): the registry is as
    it was when the module ends, so registry-wide tests never build a detector another module declared."""
    load_plugins()
    with registry_restored(DETECTORS):
        yield
