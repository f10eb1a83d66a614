"""Careless or hostile input: manifests, configs, paths, devices and output folders.

Each case ends in a recorded skip with a reason, or a one-line error with exit 2, before any fitting.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import threading

import numpy as np
import pytest

from bench.cli.main import main
from bench.core.errors import BenchError, ImageSkip
from bench.data.dataset import load_dataset
from bench.data.images import read_image_file
from bench.data.manifest import read_manifest
from bench.run.config import RunConfig, load_config_file
from helpers import textured, write_png


def _images(root, n_real=10, n_fake=10, seed=0):
    rng = np.random.default_rng(seed)
    for i in range(n_real):
        write_png(root / f"r{i}.png", textured(rng))
    for i in range(n_fake):
        write_png(root / f"f{i}.png", textured(rng, smooth=True))


def _manifest(root, lines):
    (root / "manifest.csv").write_text("path,label,generator\n" + "\n".join(lines) + "\n")
    return root / "manifest.csv"


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    return err


# -- manifests --------------------------------------------------------------------------------------


def test_duplicate_manifest_rows_collapse_with_a_warning(tmp_path, cache, caplog):
    _images(tmp_path)
    lines = [f"r{i}.png,real," for i in range(10)] + [f"f{i}.png,fake,sd" for i in range(10)] + ["r0.png,real,"]
    shutil.copy(tmp_path / "f0.png", tmp_path / "copy_of_f0.png")
    lines.append("copy_of_f0.png,fake,sd")
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(str(_manifest(tmp_path, lines)), cache, progress=False)
    assert len(ds.items) == 20 and len({it.sha256 for it in ds.items}) == 20
    reasons = {s.id: s.reason for s in ds.skips}
    assert "duplicate of f0.png" in reasons["copy_of_f0.png"] and "counted once" in reasons["copy_of_f0.png"]
    assert sum("duplicate of r0.png" in r for r in reasons.values()) == 1
    assert "duplicates" in caplog.text


def test_conflicting_labels_for_the_same_bytes_are_skipped_with_a_reason(tmp_path, cache):
    _images(tmp_path)
    shutil.copy(tmp_path / "r1.png", tmp_path / "fake_r1.png")
    lines = [f"r{i}.png,real," for i in range(10)] + [f"f{i}.png,fake,sd" for i in range(10)]
    ds = load_dataset(str(_manifest(tmp_path, lines + ["fake_r1.png,fake,sd"])), cache, progress=False)
    ids = {it.id for it in ds.items}
    assert "r1.png" not in ids and "fake_r1.png" not in ids
    reasons = {s.id: s.reason for s in ds.skips}
    assert "conflicting labels" in reasons["r1.png"] and "conflicting labels" in reasons["fake_r1.png"]


@pytest.mark.parametrize("name", ["all", "mean", "MEAN"])
def test_reserved_generator_names_are_rejected_when_the_manifest_is_read(tmp_path, name):
    _images(tmp_path)
    lines = [f"r{i}.png,real," for i in range(4)] + [f"f{i}.png,fake,{name}" for i in range(4)]
    with pytest.raises(BenchError, match="reserved"):
        read_manifest(_manifest(tmp_path, lines))


def test_reserved_generator_folder_is_rejected(tmp_path):
    _images(tmp_path / "real", n_fake=0)
    _images(tmp_path / "mean", n_real=0)
    with pytest.raises(BenchError, match="'mean' is reserved"):
        read_manifest(tmp_path)


def test_csv_row_with_more_fields_than_the_header_is_skipped(tmp_path):
    _images(tmp_path)
    rows, skips = read_manifest(_manifest(tmp_path, ["r0.png,real,,extra,more", "f0.png,fake,sd"]))
    assert [r.id for r in rows] == ["f0.png"]
    assert skips[0].reason == "5 fields, but the header has 3"


def test_manifest_paths_outside_the_dataset_folder_are_skipped(tmp_path):
    outside = tmp_path / "elsewhere"
    _images(outside)
    data = tmp_path / "data"
    _images(data)
    (data / "link.png").symlink_to(outside / "r1.png")
    lines = ["r0.png,real,", "../elsewhere/r0.png,real,", f"{outside / 'f0.png'},fake,sd", "link.png,real,",
             "f0.png,fake,sd"]
    rows, skips = read_manifest(_manifest(data, lines))
    assert [r.id for r in rows] == ["r0.png", "f0.png"]
    assert len(skips) == 3 and all("outside the dataset folder" in s.reason for s in skips)
    rows, skips = read_manifest(data / "manifest.csv", allow_outside_paths=True)
    assert len(rows) == 5 and not skips


def test_cli_allow_outside_paths_flag_is_a_config_field():
    assert RunConfig.from_dict({"allow_outside_paths": True}).allow_outside_paths is True


def test_dataset_too_small_to_split_is_a_one_line_error(tmp_path, cache):
    _images(tmp_path, n_real=3, n_fake=3)
    lines = [f"r{i}.png,real," for i in range(3)] + [f"f{i}.png,fake,sd" for i in range(3)]
    with pytest.raises(BenchError, match="too few"):
        load_dataset(str(_manifest(tmp_path, lines)), cache, progress=False)


# -- files that are not plain images ------------------------------------------------------------


def test_fifo_is_never_read(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    result: list = []
    worker = threading.Thread(target=lambda: result.append(_skip_reason(fifo)), daemon=True)
    worker.start()
    worker.join(5)
    assert not worker.is_alive(), "reading a FIFO blocked"
    assert "not a regular file" in result[0]


def _skip_reason(path) -> str:
    try:
        read_image_file(str(path))
    except ImageSkip as exc:
        return str(exc)
    return "read"


def test_device_file_is_never_read():
    assert "not a regular file" in _skip_reason("/dev/zero")


def test_file_over_the_size_limit_is_not_read(tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG" + b"\0" * 2000)
    with pytest.raises(ImageSkip, match="larger than 1000 bytes"):
        read_image_file(str(big), max_bytes=1000)


def test_fifo_in_a_dataset_is_a_recorded_skip(tmp_path, cache):
    _images(tmp_path)
    os.mkfifo(tmp_path / "pipe.png")
    lines = [f"r{i}.png,real," for i in range(10)] + [f"f{i}.png,fake,sd" for i in range(10)] + ["pipe.png,real,"]
    ds = load_dataset(str(_manifest(tmp_path, lines)), cache, progress=False)
    assert any(s.id == "pipe.png" and "not a regular file" in s.reason for s in ds.skips)


# -- configs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("field,value", [
    ("seed", "abc"), ("seed", -1), ("seed", 2**32), ("seed", 1.5), ("seed", None), ("train_seed", 2**32),
    ("limit", "20"), ("limit", 5.7), ("limit", 0), ("limit", True), ("detectors", 5), ("detectors", [1, 2]),
    ("detectors", []), ("workers", -1), ("batch_size", "32"), ("bootstrap", -1), ("val_tnr", 1.5),
    ("preset", "imagenet"), ("device", "tpu"), ("dataset", 3), ("strict", "yes"), ("weights", ["a"]),
    ("detector_params", {"npr": 3}), ("max_pixels", 0), ("perturb", None),
])
def test_config_field_of_wrong_type_or_range_is_a_one_line_error(field, value):
    with pytest.raises(BenchError, match=field if field != "detectors" or value != [] else "detector"):
        RunConfig.from_dict({field: value})


def test_config_seed_range_edges_are_accepted():
    assert RunConfig.from_dict({"seed": 0, "train_seed": 2**32 - 1, "limit": 1}).train_seed == 2**32 - 1


@pytest.mark.parametrize("argv", [["--seed", "4294967296"], ["--seed", "-1"], ["--limit", "0"],
                                  ["--train-seed", "-3"], ["--workers", "-1"]])
def test_cli_out_of_range_flags_exit_2_with_one_line(argv, capsys, tmp_path):
    assert main(["run", "--detectors", "spectral", "--out", str(tmp_path / "o"), *argv]) == 2
    _one_line_error(capsys)


@pytest.mark.parametrize("text", ["seed: abc\n", "limit: '20'\n", "limit: 5.7\n", "detectors: 5\n",
                                  "1: 2\n", "- a\n- b\n", "seed: [\n"])
def test_config_file_with_bad_values_exits_2(text, tmp_path, capsys):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert main(["run", "--config", str(path), "--out", str(tmp_path / "o")]) == 2
    _one_line_error(capsys)


def test_config_file_that_is_not_text_or_not_a_file(tmp_path):
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(BenchError, match="not UTF-8"):
        load_config_file(tmp_path / "bin.yaml")
    with pytest.raises(BenchError, match="not a regular file"):
        load_config_file(tmp_path)


# -- devices and output folders -----------------------------------------------------------------------


def test_device_cuda_without_a_gpu_exits_2_before_fitting(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["run", "--detectors", "spectral", "--device", "cuda", "--out", str(tmp_path / "o"),
                 "--cache-dir", str(tmp_path / "c"), "--quiet"]) == 2
    captured = capsys.readouterr()
    assert "fitting" not in captured.out and "no CUDA GPU" in _one_line_error_of(captured.err)
    assert not (tmp_path / "o").exists()


def _one_line_error_of(err: str) -> str:
    err = err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("option", ["--out", "--cache-dir"])
def test_run_output_or_cache_path_that_is_a_file_exits_2_before_any_work(option, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    other = "--cache-dir" if option == "--out" else "--out"
    assert main(["run", "--detectors", "spectral", option, str(tmp_path / "file"), other, str(tmp_path / "d"),
                 "--quiet"]) == 2
    captured = capsys.readouterr()
    assert "not a directory" in _one_line_error_of(captured.err)
    assert "fitting" not in captured.out and "dataset" not in captured.out


def test_full_disk_mid_run_is_one_line(monkeypatch, tmp_path, capsys):
    import bench.run.runner as runner

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "cache" / "cells" / "x.npz"))

    monkeypatch.setattr(runner.Runner, "run", full)
    assert main(["run", "--detectors", "spectral", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = _one_line_error_of(capsys.readouterr().err)
    assert "No space left on device" in err and "rerun to resume" in err


def test_weights_import_of_an_unknown_component_exits_2(tmp_path, capsys):
    (tmp_path / "w.bin").write_bytes(b"x")
    assert main(["weights", "import", "no_such_component", str(tmp_path / "w.bin")]) == 2
    assert "unknown weights component" in _one_line_error(capsys)


def test_limit_run_records_the_hash_of_what_was_evaluated(tiny_dataset, cache):
    from bench.run.splits import build_splits

    full = build_splits(RunConfig.from_dict({"dataset": str(tiny_dataset)}), cache, False)
    small = build_splits(RunConfig.from_dict({"dataset": str(tiny_dataset), "limit": 3}), cache, False)
    assert full.test_dataset.hash == small.test_dataset.hash  # the dataset is the same ...
    assert full.test_hash != small.test_hash and full.train_hash != small.train_hash  # ... what was used is not


@pytest.mark.parametrize("params, message", [
    ({"test_cnn": {"epochs": -1}}, "detector_params: test_cnn.epochs: expected a positive integer, got -1"),
    ({"test_cnn": {"epochs": 2.5}}, "detector_params: test_cnn.epochs: expected an integer, got 2.5"),
    ({"test_cnn": {"lr": "fast"}}, "detector_params: test_cnn.lr: expected a finite number, got 'fast'"),
    ({"spectral": {"nosuch": 1}}, "detector_params: spectral: unknown parameter 'nosuch' (known: bins, c_grid)"),
    ({"spectral": {"bin": 3}}, "detector_params: spectral: unknown parameter 'bin'; did you mean 'bins'?"),
    ({"spectral": {"bins": "abc"}}, "detector_params: spectral.bins: expected an integer, got 'abc'"),
    ({"spectral": {"c_grid": 1.0}}, "detector_params: spectral.c_grid: expected a list, got 1.0"),
    ({"spectrl": {"bins": 3}}, "unknown detector 'spectrl'; did you mean 'spectral'?"),
])
def test_detector_params_are_checked_when_the_config_is_read(params, message):
    """An override that the constructor would reject with a raw TypeError, or accept and train nothing with
    (epochs -1 published as "trained"), is a one-line error naming the detector and keyword."""
    with pytest.raises(BenchError) as error:
        RunConfig.from_dict({"detectors": ["spectral"], "detector_params": params})
    assert str(error.value).startswith(message)


def test_valid_detector_params_pass():
    cfg = RunConfig.from_dict({"detectors": ["npr"], "detector_params": {
        "npr": {"crop": 224, "test_crop": 224, "load": 256, "epochs": 50, "patience": 15},
        "test_cnn": {"lr": 0.01, "epochs": 1}, "spectral": {"c_grid": [1.0, 10.0]}}})
    assert cfg.detector_params["npr"]["epochs"] == 50
