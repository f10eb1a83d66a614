"""Manifests, folder layouts, splits and dataset hashes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.core.errors import BenchError
from bench.data.dataset import load_dataset
from bench.data.inspect_data import inspect_report, shortcut_warnings
from bench.data.manifest import read_csv_manifest, read_manifest
from helpers import WILD_DEV, textured, write_png


def _images(root: Path, rel_paths: list[str], seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for rel in rel_paths:
        write_png(root / rel, textured(rng, 32))


@pytest.mark.parametrize("layout,expected", [
    (["0_real/a.png", "1_fake/b.png"], {("real", 0), ("fake", 1)}),
    (["sd/0_real/a.png", "sd/1_fake/b.png", "gan/0_real/c.png", "gan/1_fake/d.png"],
     {("real", 0), ("sd", 1), ("gan", 1)}),
    (["real/a.png", "fake/sdxl/b.png", "fake/dalle/c.png"], {("real", 0), ("sdxl", 1), ("dalle", 1)}),
    (["real/a.png", "fake/b.png"], {("real", 0), ("fake", 1)}),
    (["real/a.png", "midjourney/b.png", "sd3/c.png"], {("real", 0), ("midjourney", 1), ("sd3", 1)}),
])
def test_folder_layouts(tmp_path, layout, expected):
    _images(tmp_path, layout)
    rows, skips = read_manifest(tmp_path)
    assert not skips
    assert {(r.generator, r.label) for r in rows} == expected
    assert len(rows) == len(layout)


def test_unknown_layout_is_a_clear_error(tmp_path):
    _images(tmp_path, ["cats/a.png", "dogs/b.png"])
    with pytest.raises(BenchError, match="cannot infer labels"):
        read_manifest(tmp_path)


def test_csv_manifest_columns_and_skips(tmp_path):
    _images(tmp_path, ["a.png", "b.png", "c.png"])
    (tmp_path / "m.csv").write_text(
        "path,label,generator,prompt,split\n"
        "a.png,real,,,train\n"
        "b.png,FAKE,sdxl,a cat,test\n"
        "c.png,maybe,sdxl,,test\n"
        ",fake,sdxl,,test\n")
    rows, skips = read_csv_manifest(tmp_path / "m.csv")
    assert [(r.id, r.label, r.generator, r.caption, r.split) for r in rows] == [
        ("a.png", 0, "real", None, "train"), ("b.png", 1, "sdxl", "a cat", "test")]
    reasons = {s.id: s.reason for s in skips}
    assert "unknown label 'maybe'" in reasons["c.png"]
    assert any(r == "empty path" for r in reasons.values())


def test_manifest_without_required_columns(tmp_path):
    (tmp_path / "m.csv").write_text("file,class\na.png,real\n")
    with pytest.raises(BenchError, match="needs a 'path' column"):
        read_csv_manifest(tmp_path / "m.csv")


def test_split_is_seeded_stratified_and_keeps_groups(tiny_dataset, cache):
    a = load_dataset(str(tiny_dataset), cache, seed=0, progress=False)
    b = load_dataset(str(tiny_dataset), cache, seed=0, progress=False)
    c = load_dataset(str(tiny_dataset), cache, seed=1, progress=False)
    assert [it.split for it in a.items] == [it.split for it in b.items]
    assert [it.split for it in a.items] != [it.split for it in c.items]
    assert a.hash == b.hash != c.hash  # the split is part of what the hash identifies
    for gen in ["real", "blocky", "grid"]:
        splits = [it.split for it in a.items if it.generator == gen]
        assert {"train", "val", "test"} <= set(splits), gen
        assert 0.1 < splits.count("test") / len(splits) < 0.35


def test_near_duplicates_stay_in_one_split(tmp_path, cache):
    rng = np.random.default_rng(3)
    for i in range(30):
        write_png(tmp_path / "real" / f"r{i}.png", textured(rng, 32))
        write_png(tmp_path / "fake" / f"f{i}.png", textured(rng, 32, smooth=True))
    base = textured(rng, 32)
    for k in range(4):  # four near-identical copies (one pixel changed)
        arr = base.copy()
        arr[0, 0, 0] = k
        write_png(tmp_path / "real" / f"dup{k}.png", arr)
    ds = load_dataset(str(tmp_path), cache, seed=0, progress=False)
    assert len({it.split for it in ds.items if it.id.startswith("real/dup")}) == 1


def test_group_column_keeps_groups_together(tmp_path, cache):
    rng = np.random.default_rng(4)
    lines = ["path,label,generator,source_path"]
    for i in range(40):
        write_png(tmp_path / f"i{i}.png", textured(rng, 32, smooth=i % 2 == 1))
        lines.append(f"i{i}.png,{'fake' if i % 2 else 'real'},{'gen' if i % 2 else ''},src/grid{i // 4}.webp")
    (tmp_path / "manifest.csv").write_text("\n".join(lines) + "\n")
    ds = load_dataset(str(tmp_path), cache, seed=0, progress=False)
    by_group = {}
    for it in ds.items:
        by_group.setdefault(it.group, set()).add(it.split)
    assert all(len(s) == 1 for s in by_group.values())


def test_dataset_hash_ignores_paths_but_not_content(tmp_path, cache):
    _images(tmp_path / "a", [f"real/r{i}.png" for i in range(10)] + [f"fake/f{i}.png" for i in range(10)])
    _images(tmp_path / "b", [f"real/x{i}.png" for i in range(10)] + [f"fake/y{i}.png" for i in range(10)])
    h1 = load_dataset(str(tmp_path / "a"), cache, progress=False).hash
    h2 = load_dataset(str(tmp_path / "b"), cache, progress=False).hash
    assert h1 == h2
    write_png(tmp_path / "b" / "real" / "x0.png", np.zeros((32, 32, 3), np.uint8))
    assert load_dataset(str(tmp_path / "b"), cache, progress=False).hash != h1


def test_inspect_warns_about_format_and_size_shortcuts(tmp_path, cache):
    rng = np.random.default_rng(5)
    from PIL import Image

    for i in range(12):
        (tmp_path / "real").mkdir(parents=True, exist_ok=True)
        Image.fromarray(textured(rng, 32)).save(tmp_path / "real" / f"r{i}.jpg", quality=90)
        write_png(tmp_path / "fake" / f"f{i}.png", textured(rng, 64))
    ds = load_dataset(str(tmp_path), cache, progress=False)
    warnings = shortcut_warnings(ds)
    assert any("format shortcut" in w for w in warnings)
    assert any("size shortcut" in w for w in warnings)
    assert "WARNING: format shortcut" in inspect_report(ds)


def test_no_warning_for_a_clean_dataset(tiny_dataset, cache):
    ds = load_dataset(str(tiny_dataset), cache, progress=False)
    assert shortcut_warnings(ds) == []


@pytest.mark.realdata
@pytest.mark.skipif(not WILD_DEV.exists(), reason="../shared/data/wild-dev not present")
def test_wild_dev_loads_as_is(shared_cache):
    ds = load_dataset(str(WILD_DEV), shared_cache, progress=False)
    assert len(ds.items) == 880 and not ds.skips
    assert set(ds.generators) == {"sd15", "dalle2", "gpt-image", "stylegan"}
    # tiles of one SD 1.5 grid (same source_path stem) never straddle splits
    by_group = {}
    for it in ds.items:
        by_group.setdefault(it.group, set()).add(it.split)
    assert all(len(s) == 1 for s in by_group.values())
