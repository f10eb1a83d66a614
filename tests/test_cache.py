"""The cache's own contract: where it and its keys live, what an entry holds, and the words it says when an
entry is refused (tests/test_cache_trust.py covers the attacks)."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from platformdirs import user_cache_dir, user_config_dir

from bench.core import cache as cache_module
from bench.core.cache import MAGIC, Cache, cache_key, default_cache_dir, key_dir
from bench.core.errors import BenchError


def test_default_locations_follow_the_environment_then_the_platform(monkeypatch, tmp_path):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("BENCH_CACHE_KEY_DIR", str(tmp_path / "k"))
    assert default_cache_dir() == tmp_path / "c" and Cache().root == tmp_path / "c"
    assert key_dir() == tmp_path / "k"
    monkeypatch.delenv("BENCH_CACHE_DIR")
    monkeypatch.delenv("BENCH_CACHE_KEY_DIR")
    assert default_cache_dir() == Path(user_cache_dir("aigi-bench"))
    assert key_dir() == Path(user_config_dir("aigi-bench")) / "cache-keys"


def test_entries_live_at_namespace_key_ext(tmp_path):
    cache = Cache(tmp_path)
    assert cache.path("scores", "abc", "npz") == tmp_path / "scores" / "abc.npz"
    assert not cache.has("scores", "abc", "npz")
    cache.save_arrays("scores", "abc", x=np.arange(3))
    assert cache.has("scores", "abc", "npz") and not cache.has("scores", "abc", "json")


def test_arrays_round_trip_by_name(tmp_path):
    cache = Cache(tmp_path)
    cache.save_arrays("scores", "k", score=np.array([0.25, 0.5]), names=np.array(["a", "b"]))
    loaded = cache.load_arrays("scores", "k")
    assert sorted(loaded) == ["names", "score"]
    assert loaded["score"].tolist() == [0.25, 0.5] and loaded["names"].tolist() == ["a", "b"]
    assert cache.load_arrays("scores", "absent") is None


def test_an_array_entry_holding_a_pickle_is_refused_and_removed(tmp_path, caplog):
    """npz files are read with allow_pickle=False: an object array (a pickle inside the npz) never loads, even
    under a valid tag."""
    cache = Cache(tmp_path)
    path = cache.path("scores", "k", "npz")
    buffer = io.BytesIO()
    np.savez(buffer, score=np.array([{"not": "an array"}], dtype=object))
    cache._save("scores", "k", "npz", buffer.getvalue())
    with caplog.at_level(logging.WARNING):
        assert cache.load_arrays("scores", "k") is None
    assert not path.exists()
    assert "Object arrays cannot be loaded when allow_pickle=False" in caplog.text


def test_objects_and_json_round_trip(tmp_path):
    cache = Cache(tmp_path)
    cache.save_object("fits", "k", {"weights": [1.5, 2.5]})
    assert cache.load_object("fits", "k") == {"weights": [1.5, 2.5]}
    cache.save_json("probe", "k", {"b": 1, "a": [2]})
    assert cache.load_json("probe", "k") == {"a": [2], "b": 1}
    data = cache.path("probe", "k", "json").read_bytes()
    assert data.startswith(MAGIC) and data[len(MAGIC) + 32:] == b'{"a": [2], "b": 1}'  # sorted keys: stable bytes


def _refusal(caplog, cache: Cache, path: Path) -> str:
    with caplog.at_level(logging.WARNING):
        assert cache.load_object("fits", "k") is None
    assert not path.exists()
    (record,) = caplog.records
    return record.getMessage()


def test_the_warning_says_why_an_object_entry_was_refused(tmp_path, caplog):
    cache = Cache(tmp_path)
    path = cache.path("fits", "k", "pkl")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"plain pickle bytes")
    assert _refusal(caplog, cache, path) == (f"cache entry {path} cannot be loaded (UntaggedEntry: not an "
                                             "authenticated cache entry); removing and recomputing it (further "
                                             "untagged entries of this namespace are recomputed silently)")
    caplog.clear()
    path.write_bytes(MAGIC + b"\0" * 32 + b"payload")
    assert _refusal(caplog, cache, path) == (
        f"cache entry {path} cannot be loaded (ValueError: authentication tag does not match: entry altered, "
        "truncated or foreign; not used); removing and recomputing it")


def test_each_cache_root_gets_its_own_private_key(tmp_path, monkeypatch):
    keys = tmp_path / "config" / "nested" / "keys"  # the parents are created too
    monkeypatch.setenv("BENCH_CACHE_KEY_DIR", str(keys))
    key = cache_key(tmp_path / "a")
    assert len(key) == 64 and bytes.fromhex(key.decode())  # 32 random bytes, hex
    name = hashlib.sha256(str((tmp_path / "a").resolve()).encode()).hexdigest()[:32] + ".key"
    assert [p.name for p in keys.iterdir()] == [name]  # no temporary file left behind
    assert stat.S_IMODE(os.stat(keys).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(keys / name).st_mode) == 0o600
    assert cache_key(tmp_path / "a") == key and cache_key(tmp_path / "b") != key


def test_a_damaged_key_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_KEY_DIR", str(tmp_path / "keys"))
    cache_key(tmp_path / "cache")
    (path,) = (tmp_path / "keys").iterdir()
    path.write_bytes(b"x" * 31)
    with pytest.raises(BenchError) as error:
        cache_key(tmp_path / "cache")
    assert str(error.value) == (f"cache key {path} is damaged (too short); delete it (every cached entry will be "
                                "recomputed)")
    path.write_bytes(b"x" * 32)  # 32 bytes is the shortest key accepted
    assert cache_key(tmp_path / "cache") == b"x" * 32


def test_an_unwritable_key_folder_is_a_one_line_error(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("BENCH_CACHE_KEY_DIR", str(blocker / "keys"))
    name = hashlib.sha256(str((tmp_path / "cache").resolve()).encode()).hexdigest()[:32] + ".key"
    with pytest.raises(BenchError) as error:
        cache_key(tmp_path / "cache")
    assert str(error.value) == (f"cannot read or create the cache key {blocker / 'keys' / name}: Not a directory "
                                "(set BENCH_CACHE_KEY_DIR to a private writable folder)")


def test_the_key_is_created_once_even_when_two_processes_race(tmp_path, monkeypatch):
    """The key file is linked into place, never replaced: a key another process made meanwhile wins."""
    monkeypatch.setenv("BENCH_CACHE_KEY_DIR", str(tmp_path / "keys"))
    real_link = os.link

    def other_process_first(src, dst):
        Path(dst).write_bytes(b"k" * 64)
        return real_link(src, dst)

    monkeypatch.setattr(cache_module.os, "link", other_process_first)
    assert cache_key(tmp_path / "cache") == b"k" * 64
    assert len(list((tmp_path / "keys").iterdir())) == 1


def test_a_key_folder_inside_the_cache_is_a_one_line_error_naming_both(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_KEY_DIR", str(tmp_path / "cache" / "k"))
    with pytest.raises(BenchError) as error:
        cache_key(tmp_path / "cache")
    assert str(error.value) == (f"BENCH_CACHE_KEY_DIR {tmp_path / 'cache' / 'k'} lies inside the cache directory "
                                f"{tmp_path / 'cache'} whose entries its keys authenticate; choose a folder outside it")


def test_untagged_entries_warn_once_per_namespace(tmp_path, caplog):
    cache = Cache(tmp_path)
    for namespace, key in (("cells", "a"), ("cells", "b"), ("probe", "a")):
        path = cache.path(namespace, key, "json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")  # an entry written before entries were tagged
    with caplog.at_level(logging.WARNING):
        assert [cache.load_json(n, k) for n, k in (("cells", "a"), ("cells", "b"), ("probe", "a"))] == [None] * 3
    assert [r.getMessage().split(" cannot")[0] for r in caplog.records] == [
        f"cache entry {cache.path('cells', 'a', 'json')}", f"cache entry {cache.path('probe', 'a', 'json')}"]
    assert not any(tmp_path.rglob("*.json"))
