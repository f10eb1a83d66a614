"""Parquet-backed datasets: ``hf:ORG/NAME[:CONFIG][@SPLIT]`` on small Parquet files written here in the
exact Hugging Face ``datasets`` layout (Image struct {bytes, path}, ClassLabel names in the schema
metadata, hub file names), Defactify 4 and ELSA D3 mirrors, and ``bench data fetch`` with
huggingface_hub mocked at its boundary (no network)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from bench.core.cache import Cache
from bench.core.errors import BenchError
from bench.data.adapters import prompt_parquet
from bench.data.dataset import load_dataset
from bench.data.fetch import FetchPlan, fetch_dataset
from bench.data.hf_parquet import interpret_label, parse_hf_spec
from bench.data.images import read_image_file
from bench.data.parquet_images import member_path, split_member
from helpers import textured

_RNG = np.random.default_rng(7)
IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(textured(_RNG, 32)).save(buf, format="PNG")
    return buf.getvalue()


def write_hf_parquet(path: Path, columns: dict, features: dict, row_group_size: int = 3) -> Path:
    """A Parquet file as ``datasets`` writes it: Image cells as {bytes, path} structs, features in metadata."""
    arrays = {name: pa.array(values, type=IMAGE_TYPE if features.get(name, {}).get("_type") == "Image" else None)
              for name, values in columns.items()}
    table = pa.table(arrays).replace_schema_metadata(
        {"huggingface": json.dumps({"info": {"features": features}})})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def image_cells(n: int) -> list[dict]:
    return [{"bytes": png_bytes(), "path": f"img{i}.png"} for i in range(n)]


def hf_repo(root: Path, splits=("train", "test"), n: int = 10) -> dict[str, list[dict]]:
    """data/<split>-00000-of-00001.parquet with image, label (ClassLabel real/fake) and caption."""
    written = {}
    for split in splits:
        cells = image_cells(n)
        write_hf_parquet(root / "data" / f"{split}-00000-of-00001.parquet",
                         {"image": cells, "label": [i % 2 for i in range(n)],
                          "caption": [f"a photo {split} {i}" for i in range(n)]},
                         {"image": {"_type": "Image"}, "label": {"names": ["real", "fake"], "_type": "ClassLabel"},
                          "caption": {"dtype": "string", "_type": "Value"}})
        written[split] = cells
    return written


def test_member_paths_round_trip(tmp_path):
    path = member_path(str(tmp_path / "a.parquet"), 12, "image")
    assert split_member(path) == (str(tmp_path / "a.parquet"), 12, "image")
    assert split_member(str(tmp_path / "plain.png")) is None
    assert split_member("notes::3:x.txt") is None


def test_cells_are_read_across_row_groups_with_the_files_bytes(tmp_path):
    cells = image_cells(7)
    file = write_hf_parquet(tmp_path / "t.parquet", {"image": cells}, {"image": {"_type": "Image"}}, row_group_size=3)
    assert pq.ParquetFile(file).metadata.num_row_groups == 3
    for i in (6, 0, 4, 3):
        assert read_image_file(member_path(str(file), i, "image")) == cells[i]["bytes"]
    from bench.core.errors import ImageSkip

    with pytest.raises(ImageSkip, match="beyond the 7 rows"):
        read_image_file(member_path(str(file), 7, "image"))


@pytest.mark.parametrize("text,repo,config,split,columns", [
    ("hf:org/name", "org/name", None, None, {}),
    ("hf:org/na.me-2:cfg", "org/na.me-2", "cfg", None, {}),
    ("hf:org/name@test", "org/name", None, "test", {}),
    ("hf:org/name:cfg@validation[image=img,label=is_fake]", "org/name", "cfg", "validation",
     {"image": "img", "label": "is_fake"}),
])
def test_parse_hf_spec(text, repo, config, split, columns):
    spec = parse_hf_spec(text)
    assert (spec.repo, spec.config, spec.split, spec.columns) == (repo, config, split, columns)


@pytest.mark.parametrize("bad", ["hf:noslash", "hf:org/name[colour=x]", "hf:org/name[image]"])
def test_bad_hf_specs(bad):
    with pytest.raises(BenchError):
        parse_hf_spec(bad)


def test_labels_are_interpreted():
    assert interpret_label(True, None) == (1, "fake")
    assert interpret_label(0, ["real", "sdxl", "dalle3"]) == (0, "real")
    assert interpret_label(2, ["real", "sdxl", "dalle3"]) == (1, "dalle3")
    assert interpret_label("AI", None) == (1, "fake")
    assert interpret_label(None, None) is None


def test_hf_dataset_from_a_folder_keeps_official_splits_and_hashes_content(tmp_path, caplog):
    written = hf_repo(tmp_path / "repo")
    ds = load_dataset("hf:org/toy=" + str(tmp_path / "repo"), Cache(tmp_path / "cache"), progress=False)
    assert ds.name == "hf:org/toy"
    assert len(ds.split("test")) == 10 and ds.split("val") and ds.split("train")  # val carved from train
    assert {it.caption for it in ds.split("test")} == {f"a photo test {i}" for i in range(10)}
    test_hashes = {it.sha256 for it in ds.split("test")}
    assert test_hashes == {hashlib.sha256(c["bytes"]).hexdigest() for c in written["test"]}
    assert "guessed columns image=image, label=label, caption=caption" in caplog.text


def test_hf_dataset_found_in_the_hub_cache_with_split_and_columns(tmp_path, monkeypatch):
    snapshot = tmp_path / "hub" / "datasets--org--toy" / "snapshots" / "abc123"
    n = 10
    write_hf_parquet(snapshot / "default" / "test" / "0000.parquet",
                     {"img": image_cells(n), "is_fake": [bool(i % 2) for i in range(n)]},
                     {"img": {"_type": "Image"}})
    write_hf_parquet(snapshot / "default" / "train" / "0000.parquet",
                     {"img": image_cells(n), "is_fake": [bool(i % 2) for i in range(n)]},
                     {"img": {"_type": "Image"}})
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path / "store"))
    ds = load_dataset("hf:org/toy@test[image=img,label=is_fake]", Cache(tmp_path / "cache"), progress=False)
    assert len(ds.items) == n and {it.generator for it in ds.items} == {"real", "fake"}
    assert ds.name == "hf:org/toy@test"
    with pytest.raises(BenchError, match="no split 'holdout'"):
        load_dataset("hf:org/toy@holdout", Cache(tmp_path / "cache"), progress=False)
    with pytest.raises(BenchError, match="no column 'nope' for label"):
        load_dataset("hf:org/toy[label=nope]", Cache(tmp_path / "cache"), progress=False)
    with pytest.raises(BenchError, match=r"hf:org/other: no local Parquet files .*bench data fetch hf:org/other"):
        load_dataset("hf:org/other", Cache(tmp_path / "cache"), progress=False)


def test_hf_dataset_without_a_label_column_is_a_clear_error(tmp_path):
    write_hf_parquet(tmp_path / "d" / "train.parquet", {"image": image_cells(2), "score": [0.1, 0.2]},
                     {"image": {"_type": "Image"}})
    with pytest.raises(BenchError, match=r"no label column .*\[label=COL\]"):
        load_dataset(f"hf:org/x={tmp_path / 'd'}", Cache(tmp_path / "cache"), progress=False)


# -------------------------------------------------------------------------------------- Defactify 4, ELSA D3


def defactify_mirror(root: Path, n_train: int = 10, n_val: int = 3) -> Path:
    features = {c: {"_type": "Image"} for c in prompt_parquet.DEFACTIFY_COLUMNS}
    for repo, n in (("Defactify4_Train", n_train), ("Defactify4_Validation", n_val)):
        if not n:
            continue
        columns = {"caption": [f"{repo} caption {i}" for i in range(n)]}
        columns.update({c: image_cells(n) for c in prompt_parquet.DEFACTIFY_COLUMNS})
        write_hf_parquet(root / repo / "data" / "train-00000-of-00001.parquet", columns, features, row_group_size=4)
    return root


def test_defactify_training_release_alone_is_split_by_prompt(tmp_path):
    root = tmp_path / "d4"
    defactify_mirror(root, n_train=6, n_val=0)
    ds = load_dataset(f"defactify4={root}", Cache(tmp_path / "cache"), progress=False)
    assert len(ds.items) == 36 and all(ds.split(s) for s in ("train", "val", "test"))
    assert all(len({it.split for it in ds.items if it.group == g}) == 1 for g in {it.group for it in ds.items})


def test_defactify_prompts_are_captions_and_siblings_share_a_group(tmp_path):
    ds = load_dataset(f"defactify4={defactify_mirror(tmp_path / 'd4')}", Cache(tmp_path / "cache"), progress=False)
    assert len(ds.items) == 13 * 6
    assert ds.generators == ["dalle3", "midjourney6", "sd21", "sd3", "sdxl"]
    test = ds.split("test")
    assert len(test) == 3 * 6 and all(it.caption.startswith("Defactify4_Validation caption") for it in test)
    by_group: dict[str, set] = {}
    for it in ds.items:
        by_group.setdefault(it.group, set()).add((it.split, it.caption))
    assert len(by_group) == 13 and all(len(v) == 1 for v in by_group.values())  # siblings: one split, one caption
    assert ds.split("val")  # carved from train, whole prompts at a time


def test_defactify_missing_image_column(tmp_path):
    write_hf_parquet(tmp_path / "Defactify4_Train" / "data" / "train-0.parquet",
                     {"caption": ["c"], "coco_image": image_cells(1)}, {"coco_image": {"_type": "Image"}})
    with pytest.raises(BenchError, match="defactify4: .* has no column\\(s\\) sd21_image"):
        prompt_parquet.defactify_rows(tmp_path)


def test_elsa_d3_reals_from_the_real_folder(tmp_path):
    n = 3
    columns = {"id": [f"id{i}" for i in range(n)], "original_prompt": [f"prompt {i}" for i in range(n)],
               "url": ["http://example.invalid/x.jpg"] * n}
    for g in range(4):
        columns[f"image_gen{g}"] = image_cells(n)
    features = {f"image_gen{g}": {"_type": "Image"} for g in range(4)}
    write_hf_parquet(tmp_path / "data" / "train-00000-of-00001.parquet", columns, features)
    with pytest.raises(BenchError, match="elsa-d3: .* has no 'real' folder"):
        prompt_parquet.d3_rows(tmp_path)
    (tmp_path / "real").mkdir()
    Image.fromarray(textured(_RNG, 32)).save(tmp_path / "real" / "id1.jpg")
    rows = prompt_parquet.d3_rows(tmp_path)
    assert len(rows) == 13 and sum(r.label == 0 for r in rows) == 1
    assert {r.generator for r in rows if r.label} == {"deepfloyd-if", "sd14", "sd21", "sdxl"}
    assert {r.group for r in rows if r.caption == "prompt 1"} == {"d3:id1"}
    assert len([r for r in rows if r.group == "d3:id1"]) == 5


# --------------------------------------------------------------------------------------------- data fetch


def test_fetch_downloads_with_snapshot_download_and_unzips(tmp_path, monkeypatch):
    import huggingface_hub

    calls = []

    def fake_snapshot_download(repo_id, repo_type, local_dir, allow_patterns=None):
        calls.append((repo_id, repo_type, allow_patterns))
        with zipfile.ZipFile(Path(local_dir) / "CNN_synth_testset.zip", "w") as zf:
            zf.writestr("progan/airplane/0_real/a.png", png_bytes())
        return local_dir

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path / "store"))
    monkeypatch.delenv("BENCH_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    dest, manual = fetch_dataset("forensynths-test")
    assert manual is None and dest == tmp_path / "store" / "forensynths-test"
    assert calls == [("sywang/CNNDetection", "dataset", ["CNN_synth_testset.zip"])]
    assert (dest / "progan" / "airplane" / "0_real" / "a.png").is_file()
    assert not (dest / "CNN_synth_testset.zip").exists()
    fetch_dataset("forensynths-test")
    assert len(calls) == 1  # already fetched and unpacked: no second download


def test_fetch_targets_one_folder_per_repository(tmp_path, monkeypatch):
    import huggingface_hub

    targets = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda repo_id, repo_type, local_dir, allow_patterns=None: targets.append((repo_id, local_dir)))
    monkeypatch.delenv("BENCH_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    fetch_dataset("defactify4", tmp_path / "d4")
    assert targets == [("NasrinImp/Defactify4_Train", str(tmp_path / "d4"))]
    fetch_dataset("hf:org/toy@test", tmp_path / "toy")
    assert targets[-1] == ("org/toy", str(tmp_path / "toy"))
    monkeypatch.setattr("bench.data.fetch.plan_for", lambda name: FetchPlan(name, ("a/x", "b/y"), None, False, ""))
    fetch_dataset("two-repos", tmp_path / "two")
    assert targets[2:] == [("a/x", str(tmp_path / "two" / "x")), ("b/y", str(tmp_path / "two" / "y"))]


def test_fetch_offline_and_manual(tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda **kw: pytest.fail("network touched"))
    monkeypatch.setenv("BENCH_OFFLINE", "1")
    with pytest.raises(BenchError, match=r"offline mode is on \(BENCH_OFFLINE=1\).*NasrinImp/Defactify4_Train"):
        fetch_dataset("defactify4")
    dest, manual = fetch_dataset("genimage", tmp_path / "gi")
    assert "not on the Hugging Face hub" in manual and "github.com/GenImage-Dataset/GenImage" in manual
    assert f"--dataset genimage={tmp_path / 'gi'}" in manual
    with pytest.raises(BenchError, match="built in: nothing to fetch"):
        fetch_dataset("demo")
