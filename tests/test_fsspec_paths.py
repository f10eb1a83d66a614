"""Manifest paths that are fsspec URLs (README, "Running at scale"): images a cluster's nodes all read
from one store. Exercised on fsspec's in-memory filesystem; local paths stay as they were."""

from __future__ import annotations

import csv
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bench.core.cache import Cache
from bench.core.detector import FitContext
from bench.core.errors import ImageSkip
from bench.data.dataset import load_dataset
from bench.data.images import read_image_file
from bench.data.imageset import ImageSet
from bench.data.manifest import read_manifest
from bench.data.urls import is_url
from detectors.spectral import SpectralDetector

fsspec = pytest.importorskip("fsspec", reason="needs the fsspec extra: pip install 'aigi-bench[fsspec]'")


def test_only_paths_with_a_scheme_are_urls():
    assert is_url("memory://a/b.png") and is_url("s3://bucket/x.jpg") and is_url("file:///tmp/x.png")
    assert not is_url("/tmp/x.png") and not is_url("real/x.png") and not is_url("C:\\data\\x.png")


@pytest.fixture
def memory_manifest(tiny_dataset, tmp_path) -> tuple[Path, dict[str, Path]]:
    """The tiny dataset's images copied to ``memory://``, and a local CSV manifest that lists them by URL."""
    fs = fsspec.filesystem("memory")
    prefix = f"memory://bench-{uuid.uuid4().hex}"
    local: dict[str, Path] = {}
    rows = []
    for path in sorted(tiny_dataset.rglob("*.png")):
        rel = path.relative_to(tiny_dataset)
        url = f"{prefix}/{rel.as_posix()}"
        fs.pipe(url, path.read_bytes())
        local[url] = path
        generator = "real" if rel.parts[0] == "real" else rel.parts[1]
        rows.append({"path": url, "label": int(generator != "real"), "generator": generator})
    manifest = tmp_path / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, ["path", "label", "generator"])
        writer.writeheader()
        writer.writerows(rows)
    yield manifest, local
    fs.rm(prefix, recursive=True)


def test_a_manifest_of_urls_loads_and_scores_as_the_local_files(memory_manifest, tmp_path):
    manifest, local = memory_manifest
    ds = load_dataset(str(manifest), Cache(tmp_path / "cache"), progress=False, allow_outside_paths=True)
    assert len(ds.items) == len(local) and not ds.skips
    assert all(it.path in local for it in ds.items)
    ctx = FitContext(device="cpu", workers=0, progress=False)
    detector = SpectralDetector()
    detector.fit(ImageSet(ds.split("train")), ImageSet(ds.split("val")), ctx)
    test = ds.split("test")
    from_urls = detector.predict(ImageSet(test), ctx).score
    from_files = detector.predict(ImageSet([replace(it, path=str(local[it.path])) for it in test]), ctx).score
    assert np.array_equal(from_urls, from_files)


def test_urls_need_allow_outside_paths_and_a_missing_object_is_a_skip(memory_manifest, tmp_path):
    manifest, local = memory_manifest
    rows, skips = read_manifest(manifest)
    assert not rows and len(skips) == len(local) and all("fsspec URL" in s.reason for s in skips)
    missing = next(iter(local)) + ".gone"
    with pytest.raises(ImageSkip, match="file not found"):
        read_image_file(missing)
    with pytest.raises(ImageSkip, match="larger than"):
        read_image_file(next(iter(local)), max_bytes=10)
