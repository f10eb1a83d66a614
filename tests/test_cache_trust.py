"""The cache never executes what it did not write, and recomputes what it cannot read."""

from __future__ import annotations

import logging
import os
import pickle

import numpy as np
import pytest
import torch

from bench.core.cache import MAGIC, Cache


class _RunsACommand:
    """Unpickling this runs a shell command that leaves a marker file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_planted_pickle_in_fits_is_not_executed_and_is_recomputed(tmp_path, caplog):
    cache = Cache(tmp_path / "cache")
    cache.save_object("fits", "k", {"detector": "honest"})
    marker = tmp_path / "pwned"
    cache.path("fits", "k", "pkl").write_bytes(pickle.dumps(_RunsACommand(str(marker))))
    with caplog.at_level(logging.WARNING):
        assert cache.load_object("fits", "k") is None
    assert not marker.exists()
    assert not cache.path("fits", "k", "pkl").exists()  # removed: the caller fits again and stores a new entry
    assert "not an authenticated cache entry" in caplog.text


def test_pickle_with_a_forged_header_is_not_executed(tmp_path):
    """An attacker who can write the cache but not read the key cannot make a valid tag."""
    cache = Cache(tmp_path / "cache")
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_RunsACommand(str(marker)))
    cache.path("fits", "k", "pkl").parent.mkdir(parents=True)
    cache.path("fits", "k", "pkl").write_bytes(MAGIC + b"\0" * 32 + payload)
    assert cache.load_object("fits", "k") is None
    assert not marker.exists()


def test_entry_moved_to_another_key_is_not_loaded(tmp_path):
    cache = Cache(tmp_path / "cache")
    cache.save_object("fits", "a", {"fit": "a"})
    os.replace(cache.path("fits", "a", "pkl"), cache.path("fits", "b", "pkl"))
    assert cache.load_object("fits", "b") is None


def test_cache_key_lives_outside_the_cache_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_KEY_DIR", str(tmp_path / "keys"))
    cache = Cache(tmp_path / "cache")
    cache.save_object("fits", "k", [1, 2, 3])
    keys = list((tmp_path / "keys").iterdir())
    assert len(keys) == 1 and oct(keys[0].stat().st_mode & 0o777) == "0o600"
    assert not any(p.suffix == ".key" for p in (tmp_path / "cache").rglob("*"))
    assert Cache(tmp_path / "cache").load_object("fits", "k") == [1, 2, 3]
    # a copy of the cache elsewhere (or another user's cache) has another key: its entries are refitted
    monkeypatch.setenv("BENCH_CACHE_KEY_DIR", str(tmp_path / "other-keys"))
    assert Cache(tmp_path / "cache").load_object("fits", "k") is None


def test_truncated_fit_is_recomputed(tmp_path):
    cache = Cache(tmp_path / "cache")
    cache.save_object("fits", "k", {"big": list(range(1000))})
    path = cache.path("fits", "k", "pkl")
    path.write_bytes(path.read_bytes()[:-100])
    assert cache.load_object("fits", "k") is None and not path.exists()


@pytest.mark.parametrize("cut", [0, 10, -20])
def test_truncated_cell_cache_is_recomputed_with_a_message(tmp_path, caplog, cut):
    cache = Cache(tmp_path / "cache")
    cache.save_arrays("cells", "k", score=np.arange(100.0))
    path = cache.path("cells", "k", "npz")
    path.write_bytes(path.read_bytes()[:cut])
    with caplog.at_level(logging.WARNING):
        assert cache.load_arrays("cells", "k") is None
    assert not path.exists() and "recomputing" in caplog.text


def test_truncated_probe_cache_is_recomputed_with_a_message(tmp_path, caplog):
    cache = Cache(tmp_path / "cache")
    cache.save_json("probe", "k", {"sha256": "ab" * 32, "width": 48})
    path = cache.path("probe", "k", "json")
    path.write_bytes(path.read_bytes()[:-10])
    with caplog.at_level(logging.WARNING):
        assert cache.load_json("probe", "k") is None
    assert not path.exists() and "recomputing" in caplog.text


def test_truncated_probe_entry_in_a_dataset_is_reprobed(tmp_path, tiny_dataset):
    from bench.data.dataset import load_dataset

    cache = Cache(tmp_path / "cache")
    first = load_dataset(str(tiny_dataset), cache, progress=False)
    for entry in (tmp_path / "cache" / "probe").iterdir():
        entry.write_text("{")
    assert load_dataset(str(tiny_dataset), cache, progress=False).hash == first.hash


def test_checkpoint_with_code_is_not_executed(tmp_path, caplog):
    from bench.nn.training import _load_checkpoint

    marker = tmp_path / "pwned"
    path = tmp_path / "ckpt.pt"
    torch.save({"model": _RunsACommand(str(marker)), "optimizer": {}, "history": {}, "best": {}, "epoch": 0}, path)
    with caplog.at_level(logging.WARNING):
        assert _load_checkpoint(path, torch.device("cpu")) is None
    assert not marker.exists() and not path.exists()


def test_truncated_checkpoint_restarts_training(tmp_path):
    from bench.nn.training import _load_checkpoint

    path = tmp_path / "ckpt.pt"
    state = {"model": {"w": torch.zeros(100)}, "optimizer": {}, "history": {}, "kept": {}, "selection": {},
             "epoch": 0}
    torch.save(state, path)
    assert _load_checkpoint(path, torch.device("cpu")) is not None
    torch.save({k: v for k, v in state.items() if k != "selection"}, path)  # written before the selection rules
    assert _load_checkpoint(path, torch.device("cpu")) is None and not path.exists()
    torch.save(state, path)
    path.write_bytes(path.read_bytes()[:50])
    assert _load_checkpoint(path, torch.device("cpu")) is None
