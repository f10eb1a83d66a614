"""The published datasets' adapters, each on a tiny synthetic mirror of the real layout (real folder and
file names, a few 16-32 px images), built by the test: counts, labels, generators, splits, groups,
captions, per-generator reals, and the one-line message for a wrong or incomplete folder."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.core.cache import Cache
from bench.core.errors import BenchError
from bench.data.adapters import chameleon, forensynths, genimage, synthbuster, univfd, wildrf
from bench.data.dataset import load_dataset
from bench.data.sources import resolve_source, split_spec
from helpers import textured

_RNG = np.random.default_rng(18)


def put(root: Path, rel: str, fmt: str | None = None) -> Path:
    """A distinct tiny image at ``root/rel`` (PNG, or JPEG for .jpg/.jpeg/.JPEG names)."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(textured(_RNG, 32)).save(path, format=fmt or ("JPEG" if path.suffix.lower() in (".jpg", ".jpeg")
                                                                   else "PNG"))
    return path


def counts(rows) -> Counter:
    return Counter((r.generator, r.label, r.split) for r in rows)


# ----------------------------------------------------------------------------------------------- ForenSynths


def forensynths_train_mirror(root: Path, per_class: int = 1, progan_level: bool = False) -> Path:
    for split in ("train", "val"):
        base = root / split / ("progan" if progan_level else "")
        for cls in forensynths.PROGAN_CLASSES:
            for i in range(per_class):
                put(base, f"{cls}/0_real/{i:05d}.png")
                put(base, f"{cls}/1_fake/{i:05d}.png")
    return root


@pytest.mark.parametrize("progan_level", [False, True])
def test_forensynths_train_reads_both_published_layouts(tmp_path, progan_level):
    rows = forensynths.train_rows(forensynths_train_mirror(tmp_path, progan_level=progan_level))
    assert counts(rows) == {("real", 0, "train"): 20, ("progan", 1, "train"): 20,
                            ("real", 0, "val"): 20, ("progan", 1, "val"): 20}


def test_forensynths_train_names_the_missing_class(tmp_path):
    forensynths_train_mirror(tmp_path)
    for path in (tmp_path / "val" / "sofa" / "1_fake").iterdir():
        path.unlink()
    (tmp_path / "val" / "sofa" / "1_fake").rmdir()
    with pytest.raises(BenchError, match=r"forensynths-train: .* has no 'val/sofa/0_real\|1_fake' folder; expected"):
        forensynths.train_rows(tmp_path)


def forensynths_test_mirror(root: Path) -> Path:
    multiclass = {"progan": ["airplane", "zebra"], "stylegan": ["bedroom", "car"], "stylegan2": ["cat", "horse"],
                  "cyclegan": ["apple", "horse"]}
    for gen in forensynths.TEST_GENERATORS:
        for cls in multiclass.get(gen, [""]):
            put(root / "CNN_synth_testset" / gen, f"{cls}/0_real/r.png".lstrip("/"))
            put(root / "CNN_synth_testset" / gen, f"{cls}/1_fake/f.png".lstrip("/"))
    return root


def test_forensynths_test_set_generators_and_their_own_reals(tmp_path):
    rows = forensynths.test_rows(forensynths_test_mirror(tmp_path))
    fakes = Counter(r.generator for r in rows if r.label)
    assert set(fakes) == set(forensynths.TEST_GENERATORS)
    assert fakes["progan"] == 2 and fakes["biggan"] == 1  # per-class folders are read one level down
    assert all(r.split is None for r in rows)  # test only: no official split
    assert Counter(r.subset for r in rows if not r.label)["cyclegan"] == 2


def test_forensynths_test_names_missing_generators(tmp_path):
    forensynths_test_mirror(tmp_path)
    root = tmp_path / "CNN_synth_testset"
    for path in sorted((root / "san").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (root / "san").rmdir()
    with pytest.raises(BenchError, match="forensynths-test: .* has no 'san' folder; .*missing: san"):
        forensynths.test_rows(tmp_path)


def test_aigcdetect_reads_every_generator_folder(tmp_path):
    for gen in ("progan", "ADM", "stable_diffusion_v_1_4"):
        put(tmp_path / "test" / gen, "0_real/a.png")
        put(tmp_path / "test" / gen, "1_fake/b.png")
    rows = forensynths.aigcdetect_test_rows(tmp_path)
    assert {r.generator for r in rows if r.label} == {"progan", "adm", "stable_diffusion_v_1_4"}


# ----------------------------------------------------------------------------------------------------- UnivFD


def test_univfd_shares_laion_and_imagenet_reals(tmp_path):
    root = tmp_path / "diffusion_datasets"
    for gen in univfd.GENERATORS:
        put(root, f"{gen}/1_fake/{gen}_0.png")
    put(root, "laion/0_real/l0.png")
    put(root, "imagenet/0_real/i0.png")
    rows = univfd.diffusion_rows(tmp_path)
    fakes = Counter(r.generator for r in rows if r.label)
    assert fakes == {gen: 1 for gen in univfd.GENERATORS}
    guided_real = [r for r in rows if not r.label and "imagenet" in r.id]
    assert len(guided_real) == 1 and guided_real[0].subset is None  # shared reals belong to no one generator


def test_univfd_names_the_missing_real_set(tmp_path):
    for gen in univfd.GENERATORS:
        put(tmp_path, f"{gen}/1_fake/{gen}_0.png")
    put(tmp_path, "laion/0_real/l0.png")
    with pytest.raises(BenchError, match="univfd-diffusion: .* has no 'imagenet/0_real' folder"):
        univfd.diffusion_rows(tmp_path)


# --------------------------------------------------------------------------------------------------- GenImage


def genimage_mirror(root: Path, generators=tuple(genimage.ARCHIVES), n: int = 6, release_folders: bool = False) -> Path:
    tops = {"sdv14": "Stable Diffusion V1.4", "sdv15": "Stable Diffusion V1.5", "midjourney": "Midjourney",
            "wukong": "Wukong", "adm": "ADM", "glide": "GLIDE", "vqdm": "VQDM", "biggan": "BigGAN"}
    for gen in generators:
        archive = genimage.ARCHIVES[gen]
        base = root / tops[gen] / archive if release_folders else root / archive
        for split, k in (("train", n), ("val", 2)):
            for i in range(k):
                put(base, f"{split}/ai/{i:03d}_{gen}_{i:05d}.png")
                put(base, f"{split}/nature/n0144{i:04d}_{i}.JPEG")
    return root


@pytest.mark.parametrize("release_folders", [False, True])
def test_genimage_official_splits(tmp_path, release_folders):
    rows = genimage.rows(genimage_mirror(tmp_path, release_folders=release_folders))
    c = counts(rows)
    for gen in genimage.ARCHIVES:
        assert c[(gen, 1, "train")] == 6 and c[(gen, 1, "test")] == 2  # official val is the test split
    assert c[("real", 0, "train")] == 48 and c[("real", 0, "test")] == 16
    assert {r.subset for r in rows if not r.label} == set(genimage.ARCHIVES)


def test_genimage_incomplete_generator_folder(tmp_path):
    genimage_mirror(tmp_path, ("sdv14",), n=1)
    for path in (tmp_path / "imagenet_ai_0419_sdv4" / "train" / "ai").iterdir():
        path.unlink()
    (tmp_path / "imagenet_ai_0419_sdv4" / "train" / "ai").rmdir()
    with pytest.raises(BenchError, match=r"genimage: .* has no 'imagenet_ai_0419_sdv4/train/ai' folder; expected"):
        genimage.rows(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BenchError, match=r"genimage: .* has no 'imagenet_ai_0419_sdv4/train/ai' folder"):
        genimage.rows(empty)


def test_genimage_sdv14_protocol_through_the_runner(tmp_path):
    """NAME=PATH with --train-generators / --test-generators: SD v1.4's own reals for training, the other
    generators' fakes and reals for testing, and a validation split carved from train."""
    from bench.run.config import RunConfig
    from bench.run.splits import build_splits

    genimage_mirror(tmp_path / "GenImage", ("sdv14", "midjourney", "adm"), n=10)
    cfg = RunConfig(dataset=f"genimage={tmp_path / 'GenImage'}", train_generators=["sdv14"],
                    test_generators=["midjourney", "adm"])
    splits = build_splits(cfg, Cache(tmp_path / "cache"), progress=False)
    assert splits.test_dataset.name == "genimage"
    assert {it.generator for it in splits.train} == {"sdv14", "real"}
    assert {it.subset for it in splits.train + splits.val if not it.label} == {"sdv14"}
    assert {it.generator for it in splits.test} == {"midjourney", "adm", "real"}
    assert {it.subset for it in splits.test if not it.label} == {"midjourney", "adm"}
    assert len(splits.val) and len(splits.train) + len(splits.val) == 20  # 10 ai + 10 nature of SD v1.4's train
    assert not {it.sha256 for it in splits.val} & {it.sha256 for it in splits.train}


# ------------------------------------------------------------------------------------------------ Synthbuster


def synthbuster_mirror(root: Path, ids=("r000da54ft", "r0a1b2c3dt", "r1f2e3d4ct")) -> Path:
    for raise_id in ids:
        put(root / "real_RAISE_1k", f"{raise_id}.png")
        for gen in synthbuster.GENERATORS:
            put(root / "synthbuster", f"{gen}/{raise_id}.png")
    return root


def test_synthbuster_groups_each_photo_with_its_generated_siblings(tmp_path):
    rows = synthbuster.rows(synthbuster_mirror(tmp_path))
    assert Counter(r.label for r in rows) == {0: 3, 1: 27}
    groups = Counter(r.group for r in rows)
    assert groups == {"r000da54ft": 10, "r0a1b2c3dt": 10, "r1f2e3d4ct": 10}
    assert {r.generator for r in rows if r.label} == set(synthbuster.GENERATORS)


def test_synthbuster_without_raise_says_so(tmp_path):
    for gen in synthbuster.GENERATORS:
        put(tmp_path / "synthbuster", f"{gen}/r000da54ft.png")
    with pytest.raises(BenchError, match="synthbuster: .* has no 'real_RAISE_1k' folder; expected the RAISE-1k"):
        synthbuster.rows(tmp_path)


# -------------------------------------------------------------------------------------------- Chameleon, WildRF


def test_chameleon(tmp_path):
    for i in range(3):
        put(tmp_path / "Chameleon" / "test", f"0_real/{i}.jpg")
        put(tmp_path / "Chameleon" / "test", f"1_fake/{i}.png")
    rows = chameleon.rows(tmp_path)
    assert counts(rows) == {("real", 0, None): 3, ("chameleon", 1, None): 3}
    with pytest.raises(BenchError, match="chameleon: .* has no 'test' folder"):
        chameleon.rows(tmp_path / "Chameleon" / "test" / "0_real")


def test_wildrf_official_splits_and_platforms(tmp_path):
    for split in ("train", "val"):
        put(tmp_path / "WildRF" / split, "0_real/a.jpg")
        put(tmp_path / "WildRF" / split, "1_fake/b.jpg")
    for platform in wildrf.PLATFORMS:
        put(tmp_path / "WildRF" / "test" / platform, "0_real/a.jpg")
        put(tmp_path / "WildRF" / "test" / platform, "1_fake/b.jpg")
    rows = wildrf.rows(tmp_path)
    c = counts(rows)
    assert c[("wildrf", 1, "train")] == 1 and c[("wildrf", 1, "val")] == 1
    assert {g for g, label, split in c if split == "test" and label} == set(wildrf.PLATFORMS)
    (tmp_path / "WildRF" / "test" / "twitter" / "0_real" / "a.jpg").unlink()
    (tmp_path / "WildRF" / "test" / "twitter" / "0_real").rmdir()
    with pytest.raises(BenchError, match="wildrf: .*0_real"):
        wildrf.rows(tmp_path)


# ------------------------------------------------------------------------------------------- NAME=PATH parsing


@pytest.mark.parametrize("spec,expected", [
    ("genimage=/data/GenImage", ("genimage", Path("/data/GenImage"))),
    ("forensynths-test=rel/dir", ("forensynths-test", Path("rel/dir"))),
    ("demo", ("demo", None)),
    ("hf:org/name", ("hf:org/name", None)),
    ("hf:org/name:cfg@test[image=img,label=y]=/x/y", ("hf:org/name:cfg@test[image=img,label=y]", Path("/x/y"))),
])
def test_split_spec(spec, expected):
    assert split_spec(spec) == expected


def test_existing_path_with_equals_sign_is_a_path(tmp_path):
    folder = tmp_path / "a=b"
    folder.mkdir()
    assert split_spec(str(folder)) == (str(folder), None)


def test_bad_dataset_names_are_one_line_errors(tmp_path):
    with pytest.raises(BenchError, match="'nosuch' in 'nosuch=/x' is not registered"):
        resolve_source("nosuch=/x", tmp_path)
    with pytest.raises(BenchError, match=r"genimage: .*missing.* is not a folder; point at your copy"):
        resolve_source(f"genimage={tmp_path / 'missing'}", tmp_path)
    with pytest.raises(BenchError, match="built in; it takes no path"):
        resolve_source("demo=/x", tmp_path)


def test_adapter_without_path_reads_the_data_store(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path / "store"))
    with pytest.raises(BenchError, match=r"chameleon: no copy in the data store .*bench data fetch chameleon"):
        resolve_source("chameleon", tmp_path)
    for i in range(5):
        put(tmp_path / "store" / "chameleon" / "test", f"0_real/{i}.jpg")
        put(tmp_path / "store" / "chameleon" / "test", f"1_fake/{i}.png")
    ds = load_dataset("chameleon", Cache(tmp_path / "cache"), progress=False)
    assert ds.name == "chameleon" and len(ds.items) == 10 and ds.generators == ["chameleon"]


# ------------------------------------------------------------------------------------------------------ CLI


def test_cli_lists_cards_and_prints_manual_steps(capsys, monkeypatch, tmp_path):
    from bench.cli.main import main

    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path / "store"))
    assert main(["list", "datasets", "-v"]) == 0
    out = capsys.readouterr().out
    for name in ("genimage", "forensynths-train", "forensynths-test", "univfd-diffusion", "synthbuster", "defactify4",
                 "elsa-d3", "chameleon", "wildrf", "aigcdetect-test"):
        assert name in out
    assert "arXiv:2306.08571" in out and "CC BY-NC-SA 4.0" in out
    assert main(["data", "fetch", "synthbuster"]) == 0
    out = capsys.readouterr().out
    assert "zenodo.org/records/10066460" in out and "--dataset synthbuster=" in out
    assert main(["run", "--dataset", f"wildrf={tmp_path / 'none'}", "--detectors", "spectral"]) == 2
    assert "wildrf: " in capsys.readouterr().err
