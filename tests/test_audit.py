"""`bench audit`: planted format and size shortcuts are found, a clean dataset stays near chance, and the
metadata baseline never decodes pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.cli.main import main
from bench.core.cache import Cache
from bench.data.audit import audit_dataset, audit_report
from bench.data.dataset import load_dataset

pytestmark = pytest.mark.slow  # audits of whole datasets: the fast loop is pytest -m "not slow"

N = 40
FORMAT_FEATURES = {"format", "jpeg_quality", "chroma_subsampling", "progressive"}
SIZE_FEATURES = {"width", "height", "megapixels", "aspect"}


def _pixels(rng: np.random.Generator, side: int) -> np.ndarray:
    base = rng.integers(0, 256, (side // 4, side // 4, 3), dtype=np.uint8)
    arr = np.kron(base, np.ones((4, 4, 1), dtype=np.uint8))
    return np.clip(arr.astype(np.int16) + rng.integers(-20, 21, arr.shape), 0, 255).astype(np.uint8)


def _make(root: Path, real_fmt: str = "PNG", fake_fmt: str = "PNG", real_side: int = 32,
          fake_side: int = 32) -> Path:
    rng = np.random.default_rng(1)
    for label, fmt, side in (("real", real_fmt, real_side), ("fake/gen", fake_fmt, fake_side)):
        folder = root / label
        folder.mkdir(parents=True)
        for i in range(N):  # the same pixel distribution for both classes
            Image.fromarray(_pixels(rng, side)).save(folder / f"{i:03d}.{fmt.lower()}", fmt,
                                                     **({"quality": 90} if fmt == "JPEG" else {}))
    return root


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    base = tmp_path_factory.mktemp("audit")
    return {"format": _make(base / "format", real_fmt="JPEG"), "size": _make(base / "size", fake_side=48),
            "clean": _make(base / "clean")}


def _audit(path: Path, tmp_path: Path, **kw):
    dataset = load_dataset(str(path), Cache(tmp_path / "cache"), progress=False)
    return audit_dataset(dataset, seed=0, n_boot=50, **kw)


def test_planted_format_shortcut_is_found(datasets, tmp_path):
    result = _audit(datasets["format"], tmp_path, baselines=("metadata",))
    assert result.auc("metadata") >= 0.95
    assert result.importance[0][0] in FORMAT_FEATURES, result.importance[:3]
    assert "top feature" in audit_report(result)


def test_planted_size_shortcut_is_found(datasets, tmp_path):
    result = _audit(datasets["size"], tmp_path, baselines=("metadata",))
    assert result.auc("metadata") >= 0.95
    assert result.importance[0][0] in SIZE_FEATURES, result.importance[:3]


def test_clean_dataset_stays_near_chance(datasets, tmp_path):
    result = _audit(datasets["clean"], tmp_path)
    assert 0.3 <= result.auc("metadata") <= 0.7
    assert 0.3 <= result.auc("content") <= 0.7
    s = result.scores["metadata"][0]
    assert s.lo <= s.auc <= s.hi
    assert [x.generator for x in result.scores["content"]] == ["all", "gen"]
    assert "near chance" in audit_report(result)


def test_audit_is_seeded(datasets, tmp_path):
    a = _audit(datasets["clean"], tmp_path, baselines=("metadata",))
    b = _audit(datasets["clean"], tmp_path, baselines=("metadata",))
    assert a.to_dict() == b.to_dict()


def test_metadata_baseline_never_decodes_pixels(datasets, tmp_path, monkeypatch):
    import PIL.ImageFile

    import bench.data.audit as audit_mod
    import bench.data.images as images_mod

    dataset = load_dataset(str(datasets["format"]), Cache(tmp_path / "cache"), progress=False)

    def refuse(*args, **kwargs):
        raise AssertionError("the metadata baseline decoded pixels")

    monkeypatch.setattr(Image.Image, "load", refuse)
    monkeypatch.setattr(PIL.ImageFile.ImageFile, "load", refuse)
    monkeypatch.setattr(images_mod, "decode_bytes", refuse)
    monkeypatch.setattr(audit_mod, "decode_image", refuse)
    result = audit_dataset(dataset, seed=0, n_boot=20, baselines=("metadata",))
    assert result.auc("metadata") >= 0.95
    with pytest.raises(AssertionError, match="decoded pixels"):  # the content baseline does decode
        audit_dataset(dataset, seed=0, n_boot=20, baselines=("content",))


def test_cli_fail_above_exit_codes(datasets, tmp_path, capsys):
    common = ["--cache-dir", str(tmp_path / "c"), "--quiet", "--bootstrap", "20", "--baselines", "metadata"]
    assert main(["audit", str(datasets["format"]), "--fail-above", "0.9", *common]) == 1
    assert "audit failed: the metadata baseline" in capsys.readouterr().err
    assert main(["audit", str(datasets["clean"]), "--fail-above", "0.9", *common]) == 0
    out = capsys.readouterr().out
    assert "verdict: metadata alone separates real from generated with AUC" in out


@pytest.mark.parametrize("args,message", [
    (["--baselines", "pixels"], "unknown baseline"),
    (["--baselines", "content", "--fail-above", "0.7"], "--fail-on metadata needs"),
])
def test_cli_bad_input_is_one_line_exit_2(datasets, tmp_path, capsys, args, message):
    assert main(["audit", str(datasets["clean"]), "--cache-dir", str(tmp_path / "c"), "--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_cli_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["audit", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "--fail-above" in out
