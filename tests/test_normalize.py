"""`--normalize`: a planted format or size shortcut that the audit finds is gone after normalising, the spec
is checked before any work, the images are rewritten deterministically, and a run records the spec, keys
its caches on it, stores the audit before/after in run.json and warns in the leaderboard header."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from bench.cli.main import main
from bench.core.cache import Cache
from bench.core.errors import BenchError, ImageSkip
from bench.data.audit import audit_dataset
from bench.data.dataset import load_dataset
from bench.data.file_meta import file_features
from bench.data.normalize import canonical_spec, normalize_dataset, normalize_image, parse_normalize_spec
from bench.report.audit_section import WARN_ABOVE, audit_html, shortcut_warning
from bench.report.write import write_leaderboards
from bench.run.config import RunConfig
from bench.run.runner import Runner
from test_audit import N, _pixels

pytestmark = pytest.mark.slow  # whole runs with --normalize: the fast loop is pytest -m "not slow"


def _jpeg(arr: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _make_same_pixels(root: Path, shortcut: str) -> Path:
    """Both classes drawn alike; only the planted shortcut differs.

    format: real images are JPEG files, generated ones PNG files of the very pixels such a JPEG decodes to;
    size: every image is one 96 px texture downscaled, to 32 px for real and 48 px for generated images.
    """
    rng = np.random.default_rng(1)
    for label in ("real", "fake/gen"):
        folder = root / label
        folder.mkdir(parents=True)
        for i in range(N):
            if shortcut == "format":
                data = _jpeg(_pixels(rng, 32))
                if label == "real":
                    (folder / f"{i:03d}.jpg").write_bytes(data)
                else:
                    Image.open(io.BytesIO(data)).convert("RGB").save(folder / f"{i:03d}.png")
            else:
                side = 32 if label == "real" else 48
                Image.fromarray(_pixels(rng, 96)).resize((side, side), Image.Resampling.LANCZOS).save(
                    folder / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    base = tmp_path_factory.mktemp("planted")
    return {kind: _make_same_pixels(base / kind, kind) for kind in ("format", "size")}


# ---------------------------------------------------------------- the spec


def test_spec_is_canonical_and_keeps_order():
    assert canonical_spec(" Size:512 , JPEG:95") == "size:512,jpeg:95"
    assert [str(op) for op in parse_normalize_spec("jpeg:95,size:512,png")] == ["jpeg:95", "size:512", "png"]


@pytest.mark.parametrize("spec,message", [
    ("jpeg:0", "quality from 1 to 100"), ("jpeg:101", "quality from 1 to 100"), ("jpeg", "quality"),
    ("size:x", "side in pixels"), ("crop:8", "side in pixels"), ("webp:80", "unknown operation"),
    ("png:3", "png takes no value"), ("size:256,,png", "unknown operation"), ("  ", "empty spec"),
])
def test_bad_spec_is_one_line_error(spec, message):
    with pytest.raises(BenchError, match=message) as err:
        parse_normalize_spec(spec)
    assert "\n" not in str(err.value)


def test_bad_spec_fails_before_any_work(tmp_path, capsys):
    cache = tmp_path / "cache"
    assert main(["run", "--detectors", "spectral", "--normalize", "jpeg:0", "--cache-dir", str(cache),
                 "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith("error: --normalize: jpeg needs a quality")
    assert not cache.exists() and not (tmp_path / "out").exists()
    with pytest.raises(BenchError, match="unknown operation"):
        RunConfig.from_dict({"normalize": "resize:256"})  # the YAML key
    assert RunConfig.from_dict({"normalize": "none"}).normalize is None


# ---------------------------------------------------------------- the images


def _png_with_text(arr: np.ndarray) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a prompt, Steps: 20")
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def test_operations_give_deterministic_metadata_free_files():
    arr = _pixels(np.random.default_rng(0), 64)[:, :48]  # 64 x 48, not square
    source = _png_with_text(arr)
    assert file_features(source)["generator_tag"] == 1
    png, ext = normalize_image(source, parse_normalize_spec("png"))
    assert ext == "png" and normalize_image(source, parse_normalize_spec("png"))[0] == png
    feats = file_features(png)
    assert feats["text_chunks"] == 0 and feats["generator_tag"] == 0
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), arr)  # png keeps the pixels
    jpeg, ext = normalize_image(source, parse_normalize_spec("size:32,jpeg:75"))
    feats = file_features(jpeg)
    assert ext == "jpg" and (feats["format"], feats["width"], feats["height"]) == ("JPEG", 32, 32)
    assert abs(feats["jpeg_quality"] - 75) <= 1 and feats["exif_bytes"] == 0
    after_jpeg, ext = normalize_image(source, parse_normalize_spec("jpeg:75,crop:40"))  # pixels changed last
    assert ext == "png" and Image.open(io.BytesIO(after_jpeg)).size == (40, 40)
    with pytest.raises(ImageSkip, match="smaller than --normalize crop:56"):
        normalize_image(source, parse_normalize_spec("crop:56"))


# ---------------------------------------------------------------- the audit before and after


def test_planted_format_shortcut_is_gone_after_png(planted, tmp_path, capsys):
    out = tmp_path / "audit.json"
    assert main(["audit", str(planted["format"]), "--normalize", "png", "--baselines", "metadata", "--bootstrap",
                 "20", "--quiet", "--cache-dir", str(tmp_path / "c"), "--json", str(out), "--fail-above", "0.8"]) == 0
    saved = json.loads(out.read_text())
    before, after = (saved[k]["scores"]["metadata"][0]["auc"] for k in ("before", "after"))
    assert before >= 0.95 and saved["before"]["importance"][0][0] == "format"
    assert 0.3 <= after <= 0.7, after
    assert "verdict after: metadata alone" in capsys.readouterr().out


def test_planted_size_shortcut_is_gone_after_size(planted, tmp_path):
    cache = Cache(tmp_path / "c")
    dataset = load_dataset(str(planted["size"]), cache, progress=False)
    before = audit_dataset(dataset, seed=0, n_boot=20, baselines=("metadata",))
    normalized = normalize_dataset(dataset, "size:24", cache, progress=False)
    after = audit_dataset(normalized, seed=0, n_boot=20, baselines=("metadata",))
    assert before.auc("metadata") >= 0.95 and before.importance[0][0] in {"width", "height", "megapixels", "aspect"}
    assert 0.3 <= after.auc("metadata") <= 0.7, after.auc("metadata")
    assert {(it.width, it.height) for it in normalized.items} == {(24, 24)}
    assert [it.split for it in normalized.items] == [it.split for it in dataset.items]  # same split as before


# ---------------------------------------------------------------- a run


@pytest.fixture(scope="module")
def runs(planted, tmp_path_factory):
    """The format-shortcut dataset run as stored and with --normalize png, sharing one cache."""
    base = tmp_path_factory.mktemp("runs")
    cache = Cache(base / "cache")
    records = {}
    for name, spec in (("plain", None), ("png", "png")):
        cfg = RunConfig(detectors=["spectral"], dataset=str(planted["format"]), perturb="jpeg:1", bootstrap=20,
                        device="cpu", workers=1, normalize=spec)
        records[name] = Runner(cfg, base / name, cache, progress=False, log=lambda *_: None, audit=True).run()
        write_leaderboards([base / name])
    return base, cache, records


def test_run_records_the_audit_before_and_after(runs):
    _, _, records = runs
    plain, png = records["plain"].audit, records["png"].audit
    assert plain["normalize"] is None and "normalized" not in plain
    assert plain["original"]["scores"]["metadata"][0]["auc"] >= 0.95
    assert set(plain["original"]["scores"]) == {"metadata", "content"}
    assert plain["original"]["verdicts"]["metadata"].startswith("metadata alone separates")
    assert png["normalize"] == "png" and png["original"] == plain["original"]
    assert 0.3 <= png["normalized"]["scores"]["metadata"][0]["auc"] <= 0.7
    assert records["png"].config["normalize"] == "png" and records["png"].normalize["spec"] == "png"
    assert records["png"].normalize["source_hashes"]["format"] == records["plain"].dataset_hash


def test_normalize_changes_every_pixel_cache_key(runs):
    _, _, records = runs
    plain, png = records["plain"], records["png"]
    assert plain.splits == png.splits
    for key in ("test_hash", "train_hash", "dataset_hash"):
        assert getattr(plain, key) != getattr(png, key), key
    assert plain.detectors["spectral"].fit_key != png.detectors["spectral"].fit_key


def test_second_run_reuses_the_cached_audit(runs, planted, monkeypatch):
    import bench.run.run_audit as run_audit

    base, cache, records = runs
    monkeypatch.setattr(run_audit, "audit_dataset", lambda *a, **k: pytest.fail("the audit was recomputed"))
    cfg = RunConfig(detectors=["spectral"], dataset=str(planted["format"]), perturb="jpeg:1", bootstrap=20,
                    device="cpu", workers=1, normalize="png")
    again = Runner(cfg, base / "again", cache, progress=False, log=lambda *_: None, audit=True).run()
    for part in ("original", "normalized"):  # the same numbers, in the same order (json.dumps keeps order)
        assert json.dumps(again.audit[part]) == json.dumps(records["png"].audit[part])


def test_leaderboard_warns_above_the_threshold_and_names_the_normalisation(runs):
    base, _, records = runs
    plain, png = (base / name / "leaderboard.md" for name in ("plain", "png"))
    assert "Shortcut warning: metadata alone" in plain.read_text() and "(top feature: format)" in plain.read_text()
    assert "Shortcut warning" not in png.read_text() and "images normalised: png" in png.read_text()
    section = audit_html([records["png"].to_dict()])
    assert "After --normalize png" in section and "metadata AUC [95% CI]" in section


@pytest.mark.parametrize("auc,warns", [(WARN_ABOVE - 0.01, False), (WARN_ABOVE + 0.01, True)])
def test_warning_threshold(auc, warns):
    audit = {"dataset": "d", "scores": {"metadata": [{"generator": "all", "auc": auc, "lo": auc, "hi": auc}]},
             "importance": [["icc_bytes", 0.2]]}
    record = {"run_id": "r", "audit": {"dataset": "d", "normalize": None, "original": audit}}
    assert bool(shortcut_warning([record], "d")) is warns
    assert shortcut_warning([{"run_id": "old"}], "d") == ""  # runs from before the audit


@pytest.mark.parametrize("flags,audits", [([], True), (["--no-audit"], False)])
def test_bench_run_audits_unless_told_not_to(flags, audits, tmp_path, monkeypatch):
    seen = {}

    def stop(self):
        seen["audit"] = self.audit
        raise BenchError("stopped before any work")

    monkeypatch.setattr(Runner, "run", stop)
    assert main(["run", "--detectors", "spectral", "--cache-dir", str(tmp_path / "c"), *flags]) == 2
    assert seen == {"audit": audits}
