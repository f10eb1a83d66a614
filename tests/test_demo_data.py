"""The embedded ``demo`` dataset: cached build, determinism, layout, and measurable artefacts."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.data import demo_data
from bench.data.demo_data import DEMO_VERSION, GENERATORS, IMAGE_SIZE, IMAGES_PER_CLASS, build_demo, demo_dataset_path
from bench.data.manifest import read_csv_manifest

pytestmark = pytest.mark.slow  # builds the demo dataset: the fast loop is pytest -m "not slow"

# Digest of the decoded pixels of the whole seed-0 dataset. If you change the
# generator on purpose, bump DEMO_VERSION and record the new digest here; if it
# changes by itself (new numpy/scipy, another CPU), the demo is not deterministic.
PIXEL_DIGESTS = {1: "5900c097c5bcfe547e9968be4d2a49c16b6c3fe21a2b22dc93331c3396a81668"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    # Its build time (budget: 30 s on 2 cores) is printed by benchmarks/demo_data.py, not asserted here.
    return demo_dataset_path(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def rows(demo):
    rows, skips = read_csv_manifest(demo / "manifest.csv")
    assert skips == []
    return rows


@pytest.fixture(scope="module")
def pixels(rows) -> dict[str, list[np.ndarray]]:
    out: dict[str, list[np.ndarray]] = {g: [] for g in GENERATORS}
    for row in rows:
        with Image.open(row.path) as im:
            out[row.generator].append(np.asarray(im.convert("RGB")))
    return out


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- cache ----------------------------------------------------------------------


def test_cached_under_versioned_folder(demo):
    assert demo.name == f"demo-v{DEMO_VERSION}-seed0"
    assert demo.parent.name == "datasets"
    marker = json.loads((demo / demo_data.MARKER).read_text())
    assert marker["version"] == DEMO_VERSION and marker["seed"] == 0
    assert marker["images"] == IMAGES_PER_CLASS * len(GENERATORS)
    assert [p.name for p in demo.parent.iterdir()] == [demo.name]  # no temporary folder left behind


def test_second_use_does_not_rebuild(demo, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("rebuilt a cached dataset")

    monkeypatch.setattr(demo_data, "build_demo", fail)
    assert demo_dataset_path(demo.parent.parent) == demo


def test_default_cache_dir_from_env(tmp_path, monkeypatch):
    final = tmp_path / "datasets" / f"demo-v{DEMO_VERSION}-seed0"
    final.mkdir(parents=True)
    (final / demo_data.MARKER).write_text("{}")
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(demo_data, "build_demo", lambda *a, **k: pytest.fail("should not build"))
    assert demo_dataset_path() == final


def _fake_build(root, seed=0, **kwargs):
    root = Path(root)
    (root / "real").mkdir(parents=True, exist_ok=True)
    (root / "real" / "x.png").write_bytes(b"png")
    (root / "manifest.csv").write_text("path,label,generator,caption\nreal/x.png,real,real,a\n")
    (root / ".pixels.sha256").write_text("0\n")
    return root


def test_interrupted_build_leaves_nothing(tmp_path, monkeypatch):
    def interrupted(root, seed=0, **kwargs):
        _fake_build(root)
        raise KeyboardInterrupt

    monkeypatch.setattr(demo_data, "build_demo", interrupted)
    with pytest.raises(KeyboardInterrupt):
        demo_dataset_path(tmp_path)
    assert list((tmp_path / "datasets").iterdir()) == []


def test_incomplete_folder_and_stale_temporaries_are_replaced(tmp_path, monkeypatch):
    datasets = tmp_path / "datasets"
    final = datasets / f"demo-v{DEMO_VERSION}-seed0"
    (final / "real").mkdir(parents=True)  # no completion marker: someone else's half copy
    (final / "real" / "junk.png").write_bytes(b"junk")
    stale = datasets / f".{final.name}.building-dead"
    stale.mkdir()
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    fresh = datasets / f".{final.name}.building-live"  # may belong to a concurrent build: kept
    fresh.mkdir()
    monkeypatch.setattr(demo_data, "build_demo", _fake_build)
    assert demo_dataset_path(tmp_path) == final
    assert (final / demo_data.MARKER).is_file()
    assert not (final / "real" / "junk.png").exists()
    assert sorted(p.name for p in datasets.iterdir()) == sorted([final.name, fresh.name])


def test_registered_as_synthetic_dataset():
    from bench.core.registries import DATASETS, load_plugins

    load_plugins()
    entry = DATASETS.entry("demo")
    assert entry.meta["synthetic"] is True and "not a measure" in entry.meta["description"].lower()
    assert DATASETS.get("demo") is demo_dataset_path


# --- layout -----------------------------------------------------------------------


def test_manifest_counts_and_labels(demo, rows):
    assert len(rows) == IMAGES_PER_CLASS * len(GENERATORS)
    assert Counter(r.generator for r in rows) == {g: IMAGES_PER_CLASS for g in GENERATORS}
    assert len(GENERATORS) >= 4 and GENERATORS[0] == "real"
    for r in rows:
        assert r.label == (0 if r.generator == "real" else 1)
        assert r.caption and r.caption.startswith("a photo of ")
        assert Path(r.path).is_file()
    on_disk = sorted(p.relative_to(demo).as_posix() for p in demo.rglob("*.png"))
    assert on_disk == sorted(r.id for r in rows)
    header = (demo / "manifest.csv").read_text().splitlines()[0]
    assert header == "path,label,generator,caption"


def _png_chunks(data: bytes) -> list[bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, names = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        names.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return names


def test_all_images_same_size_format_and_no_metadata(rows):
    for r in rows:
        data = Path(r.path).read_bytes()
        assert set(_png_chunks(data)) == {b"IHDR", b"IDAT", b"IEND"}, r.id
        with Image.open(io.BytesIO(data)) as im:
            assert (im.format, im.mode, im.size) == ("PNG", "RGB", (IMAGE_SIZE, IMAGE_SIZE)), r.id
            assert im.info == {}, (r.id, im.info)


def test_captions_carry_no_label(rows):
    """Captions come from the same scene sampler for every class: no text shortcut."""
    words = {g: Counter() for g in GENERATORS}
    for r in rows:
        words[r.generator].update(r.caption.split())
    vocab = set().union(*words.values())
    for g in GENERATORS[1:]:
        assert set(words[g]) <= vocab and len(set(words[g]) & set(words["real"])) > 0.8 * len(set(words[g]))


# --- determinism -----------------------------------------------------------------


def test_rebuild_is_byte_identical_and_per_image(demo, tmp_path):
    """A second, smaller build elsewhere gives the same bytes for the same images."""
    n = 5
    small = build_demo(tmp_path / "again", seed=0, images_per_class=n)
    assert small == tmp_path / "again"
    small_rows, _ = read_csv_manifest(small / "manifest.csv")
    assert len(small_rows) == n * len(GENERATORS)
    for r in small_rows:
        assert _sha(small / r.id) == _sha(demo / r.id), r.id
    full = {line.split(",")[0]: line for line in (demo / "manifest.csv").read_text().splitlines()[1:]}
    for line in (small / "manifest.csv").read_text().splitlines()[1:]:
        assert full[line.split(",")[0]] == line


def test_seed_changes_content():
    a, _ = demo_data.render_image("real", 3, seed=0)
    b, _ = demo_data.render_image("real", 3, seed=1)
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_pixel_fingerprint(demo, rows, pixels):
    digest = hashlib.sha256()
    index = {g: 0 for g in GENERATORS}
    for r in rows:
        digest.update(r.id.encode() + b"\0" + pixels[r.generator][index[r.generator]].tobytes())
        index[r.generator] += 1
    marker = json.loads((demo / demo_data.MARKER).read_text())
    assert marker["pixels_sha256"] == digest.hexdigest()
    assert digest.hexdigest() == PIXEL_DIGESTS[DEMO_VERSION], (
        "demo pixels changed: bump DEMO_VERSION (and this digest) if that was intended"
    )


# --- artefacts ----------------------------------------------------------------------


def _gray(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float64).mean(axis=2)


def _power(img: np.ndarray) -> np.ndarray:
    g = _gray(img)
    g = g - g.mean()
    w = np.hanning(g.shape[0])
    return np.abs(np.fft.fft2(g * w[:, None] * w[None, :])) ** 2


def nyquist_peak(img: np.ndarray) -> float:
    """Log ratio of the power at the three Nyquist frequencies to nearby frequencies."""
    p = _power(img)
    h = p.shape[0] // 2
    peak = (p[h, 0] + p[0, h] + p[h, h]) / 3
    ref = np.median(np.r_[p[h, 1:8], p[1:8, h], p[h - 4 : h, h], p[h, h - 4 : h]])
    return float(np.log(peak / ref))


def high_frequency_ratio(img: np.ndarray) -> float:
    """Log ratio of the power above 0.4 cycles/px to the power in 0.15-0.25 cycles/px."""
    p = _power(img)
    f = np.fft.fftfreq(p.shape[0])
    r = np.hypot(f[:, None], f[None, :])
    return float(np.log(p[r > 0.4].mean() / p[(r > 0.15) & (r < 0.25)].mean()))


def flat_noise(img: np.ndarray) -> float:
    """Noise level in the flattest regions: 10th percentile of the std of the finest Haar detail."""
    x = img.astype(np.float64)
    hh = (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2
    m = hh.shape[0] // 4
    blocks = hh[: 4 * m, : 4 * m].reshape(m, 4, m, 4, 3).std(axis=(1, 3))
    return float(np.percentile(blocks, 10))


def grid_peak(img: np.ndarray) -> float:
    """Log ratio of the power at 1/8 and 2/8 cycles/px (both axes) to its 4 neighbours."""
    p = _power(img)
    s = p.shape[0] // 8
    idx = [(0, s), (0, 2 * s), (s, 0), (2 * s, 0), (s, s), (s, -s)]
    peak = np.mean([p[i, j] for i, j in idx])
    ref = np.mean([(p[i, j + 1] + p[i, j - 1] + p[i + 1, j] + p[i - 1, j]) / 4 for i, j in idx])
    return float(np.log(peak / ref))


def _auc(neg: np.ndarray, pos: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative."""
    return float(((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean())


@pytest.mark.parametrize(
    "generator, statistic, direction",
    [
        ("upsampler", nyquist_peak, +1),  # checkerboard: peaks at Nyquist
        ("smooth", flat_noise, -1),  # no sensor noise
        ("bandlimited", high_frequency_ratio, -1),  # nothing above the cut-off
        ("bandlimited", grid_peak, +1),  # 8-px periodic pattern
    ],
)
def test_artefact_is_measurable(pixels, generator, statistic, direction):
    real = np.array([statistic(x) for x in pixels["real"]]) * direction
    fake = np.array([statistic(x) for x in pixels[generator]]) * direction
    assert fake.mean() > real.mean()
    floor = 0.6 if statistic is grid_peak else 0.9  # the grid is deliberately faint
    assert _auc(real, fake) > floor, (generator, statistic.__name__, _auc(real, fake))


def test_content_statistics_match(pixels):
    """Brightness and contrast do not give the class away."""
    real = np.array([x.mean() for x in pixels["real"]])
    for g in GENERATORS[1:]:
        fake = np.array([x.mean() for x in pixels[g]])
        assert abs(fake.mean() - real.mean()) < 10, g
        assert 0.3 < _auc(real, fake) < 0.7, g


def _spectrum_features(img: np.ndarray) -> np.ndarray:
    p = np.fft.fftshift(_power(img))
    n = p.shape[0]
    f = np.fft.fftshift(np.fft.fftfreq(n))
    r = np.hypot(f[:, None], f[None, :])
    bins = np.minimum((r / 0.5 * 32).astype(int), 45)
    s = np.bincount(bins.ravel(), p.ravel(), minlength=46) / np.maximum(np.bincount(bins.ravel(), minlength=46), 1)
    return np.log(s[1:] + 1e-6)


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"))


def test_spectrum_detector_separates_clean_but_not_jpeg(pixels):
    """Strong enough to learn from clean images, weak enough that JPEG 50 breaks it."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    for g in GENERATORS[1:]:
        imgs = pixels["real"] + pixels[g]
        y = np.r_[np.zeros(len(pixels["real"])), np.ones(len(pixels[g]))]
        train = np.arange(len(y)) % 2 == 0
        x = np.array([_spectrum_features(im) for im in imgs])
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000)).fit(x[train], y[train])
        clean = (clf.predict(x[~train]) == y[~train]).mean()
        xj = np.array([_spectrum_features(_jpeg(im, 50)) for im, t in zip(imgs, train) if not t])
        jpeg = (clf.predict(xj) == y[~train]).mean()
        assert clean >= 0.9, (g, clean)
        assert jpeg <= clean - 0.15, (g, clean, jpeg)
