import os

import pytest

from bench.core import atomic


def test_atomic_write_replaces_and_uses_normal_permissions(tmp_path):
    target = tmp_path / "sub" / "results.csv"
    atomic.write_text(target, "a")
    atomic.write_text(target, "b")
    assert target.read_text() == "b"
    assert os.stat(target).st_mode & 0o777 == 0o666 & ~atomic._UMASK
    assert [p.name for p in target.parent.iterdir()] == ["results.csv"]


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "run.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]
