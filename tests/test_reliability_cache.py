"""Issue #26, the last items of the reliability sweep: what the cache trusts, reused output folders, reproduced
runs on changed data, and false near-duplicate leaks.

Each case ends in correct handling, a recorded skip with a reason, or a one-line error with exit 2.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bench.cli.main import main
from bench.core.cache import MAGIC, Cache, cache_key
from bench.core.errors import BenchError
from bench.core.hashing import sha256_bytes
from bench.data.dataset import Item, _dhash, load_dataset
from bench.data.leaks import NEAR_DUPLICATE, find_overlaps
from bench.data.split import NEAR_DUP_BITS
from bench.run.config import RunConfig
from bench.run.runner import Runner
from helpers import textured, write_png

TAG = len(MAGIC) + 32


def _auc(out) -> float:
    res = pd.read_parquet(out / "results.parquet")
    clean = res[(res.metric == "roc_auc") & (res.perturbation == "none") & (res.generator == "all")]
    return float(clean["value"].iloc[0])


def _run(cfg: RunConfig, out, cache: Cache):
    return Runner(cfg, out, cache, progress=False, log=lambda *_: None).run()


@pytest.fixture
def cfg(tiny_dataset) -> RunConfig:
    return RunConfig(detectors=["spectral"], dataset=str(tiny_dataset), perturb="none", bootstrap=0, device="cpu",
                     workers=0)


# -- the cache key lives outside the cache -------------------------------------------------------------------


def test_key_dir_inside_the_cache_it_protects_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_KEY_DIR", str(tmp_path / "cache" / "keys"))
    with pytest.raises(BenchError) as error:
        cache_key(tmp_path / "cache")
    message = str(error.value)
    assert "\n" not in message and str(tmp_path / "cache" / "keys") in message and str(tmp_path / "cache") in message
    assert not (tmp_path / "cache" / "keys").exists()


def test_key_dir_equal_to_the_cache_exits_2(tmp_path, monkeypatch, cfg, capsys):
    monkeypatch.setenv("BENCH_CACHE_KEY_DIR", str(tmp_path / "cache"))
    code = main(["run", "--detectors", "spectral", "--dataset", cfg.dataset, "--perturb", "none", "--bootstrap", "0",
                 "--device", "cpu", "--workers", "0", "--out", str(tmp_path / "out"), "--cache-dir",
                 str(tmp_path / "cache"), "--no-report", "--no-audit", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: BENCH_CACHE_KEY_DIR") and err.count("\n") == 1


# -- every entry that can change a number is authenticated ---------------------------------------------------


def test_flipped_scores_in_a_cell_entry_are_recomputed_and_give_the_original_auc(cfg, tmp_path, cache, caplog):
    _run(cfg, tmp_path / "a", cache)
    (entry,) = (cache.root / "cells").iterdir()
    data = entry.read_bytes()
    with np.load(io.BytesIO(data[TAG:])) as arrays:
        score = arrays["score"]
    flipped = io.BytesIO()
    np.savez(flipped, score=-score)  # what anyone who can write the cache but not read its key can do
    entry.write_bytes(data[:TAG] + flipped.getvalue())
    with caplog.at_level(logging.WARNING):
        _run(cfg, tmp_path / "b", cache)
    assert "authentication tag does not match" in caplog.text
    assert _auc(tmp_path / "b") == _auc(tmp_path / "a") > 0.5


def test_altered_probe_entry_is_reprobed_not_trusted(tiny_dataset, cache, caplog):
    first = load_dataset(str(tiny_dataset), cache, progress=False)
    for entry in (cache.root / "probe").iterdir():
        data = entry.read_bytes()
        probe = json.loads(data[TAG:])
        probe["sha256"] = "0" * 64  # a wrong content hash would change the dataset hash and the fit keys
        entry.write_bytes(data[:TAG] + json.dumps(probe, sort_keys=True).encode())
    with caplog.at_level(logging.WARNING):
        assert load_dataset(str(tiny_dataset), cache, progress=False).hash == first.hash
    assert "authentication tag does not match" in caplog.text


def test_untagged_entry_from_before_authentication_is_a_miss_with_one_warning(tmp_path, caplog):
    cache = Cache(tmp_path / "cache")
    for key in ("a", "b"):
        path = cache.path("cells", key, "npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, score=np.arange(3.0))
        path.write_bytes(buffer.getvalue())  # the format written before entries were tagged
    with caplog.at_level(logging.WARNING):
        assert cache.load_arrays("cells", "a") is None and cache.load_arrays("cells", "b") is None
    assert len(caplog.records) == 1 and "not an authenticated cache entry" in caplog.text
    assert not any((cache.root / "cells").iterdir())


def test_entry_under_another_caches_key_is_not_trusted(tmp_path):
    one, other = Cache(tmp_path / "one"), Cache(tmp_path / "other")
    one.save_json("audit", "k", {"auc": 0.5})
    other.path("audit", "k", "json").parent.mkdir(parents=True)
    other.path("audit", "k", "json").write_bytes(one.path("audit", "k", "json").read_bytes())
    assert other.load_json("audit", "k") is None and one.load_json("audit", "k") == {"auc": 0.5}


def test_altered_normalised_image_is_rewritten_not_scored(tiny_dataset, cache, caplog):
    from bench.data.normalize import normalize_dataset

    dataset = load_dataset(str(tiny_dataset), cache, progress=False)
    first = normalize_dataset(dataset, "png", cache, workers=0, progress=False)
    victim = first.items[0].path
    with open(victim, "r+b") as f:
        f.seek(-20, 2)
        f.write(b"\0" * 8)
    with caplog.at_level(logging.WARNING):
        again = normalize_dataset(dataset, "png", cache, workers=0, progress=False)
    assert "does not match its record" in caplog.text
    assert again.hash == first.hash
    assert sha256_bytes(open(victim, "rb").read()) == first.items[0].sha256


# -- a reused --out holds one run's files ----------------------------------------------------------------------


def _cli_run(cfg: RunConfig, tmp_path, detectors: str, *extra: str) -> int:
    return main(["run", "--detectors", detectors, "--dataset", cfg.dataset, "--perturb", "jpeg:1", "--bootstrap",
                 "0", "--device", "cpu", "--workers", "0", "--limit", "6", "--out", str(tmp_path / "out"),
                 "--cache-dir", str(tmp_path / "cache"), "--no-audit", "--quiet", *extra])


def test_reused_out_keeps_no_file_of_the_previous_run_but_keeps_user_files(cfg, tmp_path, capsys):
    out = tmp_path / "out"
    assert _cli_run(cfg, tmp_path, "spectral") == 0
    figures = sorted(p.relative_to(out) for p in (out / "figures").rglob("*.png"))
    assert (out / "report.html").is_file() and figures
    (out / "notes.txt").write_text("mine")
    (out / "figures" / "mine.png").write_bytes(b"mine")
    assert _cli_run(cfg, tmp_path, "test_cnn", "--profile", "fast", "--no-report") == 0
    assert "removed" in capsys.readouterr().out
    assert not (out / "report.html").exists()
    assert not any(p.name.startswith("curves_") for p in (out / "figures").rglob("*"))
    assert (out / "notes.txt").read_text() == "mine" and (out / "figures" / "mine.png").read_bytes() == b"mine"
    assert set(pd.read_parquet(out / "scores.parquet")["detector"]) == {"test_cnn"}
    assert "spectral" not in (out / "leaderboard.md").read_text()


# -- a run reproduced from a run.json on data that changed -----------------------------------------------------


def _reproduce(tmp_path, name: str, *argv: str) -> int:
    return main(["run", *argv, "--out", str(tmp_path / name), "--cache-dir", str(tmp_path / "cache"), "--no-report",
                 "--no-audit", "--quiet"])


@pytest.fixture
def first_run(tiny_dataset, tmp_path):
    """A run on a copy of the tiny dataset (the copy can change afterwards); its run.json."""
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    assert _reproduce(tmp_path, "first", "--detectors", "spectral", "--dataset", str(data), "--perturb", "none",
                      "--bootstrap", "0", "--device", "cpu", "--workers", "0", "--limit", "6") == 0
    return data, tmp_path / "first" / "run.json"


def test_config_from_a_run_json_on_changed_data_warns_and_records_both_hashes(first_run, tmp_path, capsys):
    data, run_json = first_run
    write_png(data / "real" / "r000.png", textured(np.random.default_rng(99)))  # another image, same name
    capsys.readouterr()
    assert _reproduce(tmp_path, "again", "--config", str(run_json)) == 0
    warnings = [line for line in capsys.readouterr().out.splitlines() if line.startswith("warning:")]
    old, new = json.loads(run_json.read_text()), json.loads((tmp_path / "again" / "run.json").read_text())
    assert len(warnings) == 1 and old["dataset_hash"] in warnings[0] and new["dataset_hash"] in warnings[0]
    assert new["reproduced_from"]["dataset_hash"] == old["dataset_hash"] != new["dataset_hash"]
    assert new["reproduced_from"]["dataset_hash_now"] == new["dataset_hash"]
    assert new["reproduced_from"]["same_data"] is False


def test_config_from_a_run_json_on_the_same_data_records_the_match_silently(first_run, tmp_path, capsys):
    _, run_json = first_run
    capsys.readouterr()
    assert _reproduce(tmp_path, "again", "--config", str(run_json)) == 0
    assert "warning:" not in capsys.readouterr().out
    assert json.loads((tmp_path / "again" / "run.json").read_text())["reproduced_from"]["same_data"] is True


def test_config_from_a_run_json_with_another_seed_does_not_compare_the_data(first_run, tmp_path, capsys):
    _, run_json = first_run
    capsys.readouterr()
    assert _reproduce(tmp_path, "again", "--config", str(run_json), "--seed", "1") == 0
    assert "warning:" not in capsys.readouterr().out
    origin = json.loads((tmp_path / "again" / "run.json").read_text())["reproduced_from"]
    assert origin["same_data"] is None and origin["not_compared"] == "data settings changed: seed"


# -- --verify-data rehashes what the probe cache would trust -----------------------------------------------------


def test_verify_data_sees_a_file_replaced_with_the_same_size_and_mtime(tiny_dataset, tmp_path, cache, caplog):
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    bmp = data / "real" / "extra.bmp"
    Image.fromarray(textured(np.random.default_rng(5))).save(bmp)
    stamp = bmp.stat()
    before = load_dataset(str(data), cache, progress=False)
    Image.fromarray(textured(np.random.default_rng(6))).save(bmp)  # other pixels, the same number of bytes
    os.utime(bmp, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert bmp.stat().st_size == stamp.st_size
    assert load_dataset(str(data), cache, progress=False).hash == before.hash  # the probe cache is trusted
    with caplog.at_level(logging.WARNING):
        verified = load_dataset(str(data), cache, progress=False, verify=True)
    assert verified.hash != before.hash and "1 image(s) differ from their cached probe" in caplog.text
    assert load_dataset(str(data), cache, progress=False).hash == verified.hash  # the probe was refreshed


def test_run_json_records_whether_the_data_was_rehashed(tiny_dataset, tmp_path):
    argv = ["--detectors", "spectral", "--dataset", str(tiny_dataset), "--perturb", "none", "--bootstrap", "0",
            "--device", "cpu", "--workers", "0", "--limit", "6"]
    assert _reproduce(tmp_path, "plain", *argv) == 0
    assert _reproduce(tmp_path, "verified", *argv, "--verify-data") == 0
    plain, verified = (json.loads((tmp_path / name / "run.json").read_text()) for name in ("plain", "verified"))
    assert plain["data_verified"] is False and verified["data_verified"] is True
    assert verified["config"]["verify_data"] is True and verified["dataset_hash"] == plain["dataset_hash"]


# -- a near-duplicate leak is confirmed on detail the difference hash cannot see ------------------------------


def _layout_with_detail(seed: int) -> np.ndarray:
    """A 64x64 image: one shared coarse layout (a left-to-right ramp), detail drawn from ``seed`` in 2x2 px cells."""
    ramp = np.tile(np.arange(64) * 3.5, (64, 1)) + 16
    noise = np.kron(np.random.default_rng(seed).normal(0, 12, (32, 32)), np.ones((2, 2)))
    return np.repeat(np.clip(ramp + noise, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def _item(path, pixels: np.ndarray, sha: str) -> Item:
    return Item(id=path.name, path=str(path), label=0, generator="real", sha256=sha, dhash=_dhash(pixels))


def test_unrelated_images_with_the_same_coarse_layout_are_not_a_leak(tmp_path):
    a, b = _layout_with_detail(1), _layout_with_detail(2)
    write_png(tmp_path / "a.png", a)
    write_png(tmp_path / "b.png", b)
    train, test = _item(tmp_path / "a.png", a, "s1"), _item(tmp_path / "b.png", b, "s2")
    assert (train.dhash ^ test.dhash).bit_count() <= NEAR_DUP_BITS  # the hash alone calls them near-duplicates
    assert find_overlaps({"train": [train], "test": [test]}) == []


def test_recompressed_copy_across_parts_is_still_a_leak(tmp_path):
    a = _layout_with_detail(1)
    write_png(tmp_path / "a.png", a)
    Image.fromarray(a).save(tmp_path / "a.jpg", quality=75)
    copy = np.asarray(Image.open(tmp_path / "a.jpg").convert("RGB"))
    overlaps = find_overlaps({"train": [_item(tmp_path / "a.png", a, "s1")],
                              "test": [_item(tmp_path / "a.jpg", copy, "s2")]})
    assert [(o.kind, o.files) for o in overlaps] == [(NEAR_DUPLICATE, {"train": ["a.png"], "test": ["a.jpg"]})]


def test_candidate_that_cannot_be_read_now_keeps_the_hash_verdict(tmp_path):
    a = _layout_with_detail(1)
    items = {"train": [_item(tmp_path / "gone.png", a, "s1")], "test": [_item(tmp_path / "gone2.png", a, "s2")]}
    assert len(find_overlaps(items)) == 1
