"""The embedded ``demo`` dataset: synthetic scenes, one real class and three fake ones.

Nothing here is downloaded. On first use :func:`demo_dataset_path` renders
~480 small PNG images (a few seconds on two CPU cores), caches them under
``<cache>/datasets/demo-v<DEMO_VERSION>-seed0`` and returns that folder, which
holds the images and a ``manifest.csv`` (path,label,generator,caption).

This is a *demo*, not a measure of real-world performance: every class is drawn
from the same procedural scene generator (:mod:`bench.data.demo_scenes`: sky/ground or wall, 1/f textures,
anti-aliased circles, squares and triangles, lighting gradient, exposure), so
size, format, content and captions carry no label information. The classes
differ only in how the scene becomes pixels, each leaving one documented trace:

``real``
    A simulated camera: full-resolution scene, Gaussian optical blur, an RGGB
    Bayer mosaic with signal-dependent Poisson-Gaussian sensor noise
    (variance ``a*x + b``, ``a`` drawn per image like an ISO setting), bilinear
    demosaicing, gamma 2.2.
``upsampler``
    Scene rendered at *half* resolution (same optics, same noise model, no
    mosaic), then upsampled 2x by zero insertion and the fixed 3-tap kernel
    ``[0.49, 1, 0.49]`` per axis: a transposed convolution whose even and odd
    output phases have gains differing by 2 %, i.e. a faint period-2
    checkerboard (2-3 grey levels), seen as peaks at the Nyquist
    frequency of the power spectrum.
``smooth``
    The camera pipeline without the sensor: same scene and optical blur, but no
    mosaic and no noise. The noise residual (image minus its denoised version)
    is only 8-bit quantisation: over-smooth, low energy at the highest
    frequencies.
``bandlimited``
    The noisy camera image (as ``real``) through an isotropic low-pass filter
    (full gain below 0.25, none above 0.35 cycles/pixel, raised cosine
    between), plus a fixed 8x8-periodic pattern of about 1 grey level rms
    made of its two lowest harmonics (like a latent-grid decoder): almost no
    energy above 0.35 cycles/pixel and faint peaks at 1/8 and 2/8 cycles/pixel.

The artefacts are strong enough for a logistic regression on an azimuthally
averaged power spectrum to separate each class from ``real`` on clean images,
and weak enough that JPEG, blur, resizing or added noise erase or imitate them.

Determinism: image ``i`` of class ``g`` draws every random choice from
``bench.core.rng.derive_rng(seed, "demo", g, i)`` and the pipeline is plain float64
numpy/scipy arithmetic on continuous values (no sampler or threshold that a
last-bit difference could flip), so the decoded pixels do not depend on the
machine or on how many images are built; the PNG bytes are those of PIL's encoder with fixed settings
(``compress_level=6``, no metadata chunks) and are identical wherever the same
Pillow/zlib build is used. The completion marker records a digest of the
decoded pixels, which is the machine-independent fingerprint.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.core.rng import derive_rng
from bench.data.demo_scenes import render_scene, sample_scene


# Bump whenever anything below changes a single output pixel or manifest field:
# the cache folder name carries it, so a stale cache is never reused.
DEMO_VERSION = 1

IMAGE_SIZE = 128
IMAGES_PER_CLASS = 120
GENERATORS: tuple[str, ...] = ("real", "upsampler", "smooth", "bandlimited")
MARKER = ".complete.json"

# --- artefact parameters (documented in the module docstring and README) -----
UPSAMPLE_KERNEL = np.array([0.49, 1.0, 0.49])  # transposed-conv taps; 0.5 would be exact bilinear
LOWPASS_PASS = 0.25  # cycles/pixel: full gain below
LOWPASS_STOP = 0.35  # cycles/pixel: zero gain above (raised-cosine between)
GRID_PERIOD = 8
GRID_AMPLITUDE = 1.0 / 255.0  # rms of the fixed periodic pattern, display units
GAMMA = 1.0 / 2.2


# --- pipelines: how a scene becomes pixels ------------------------------------------


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    from scipy import ndimage

    return ndimage.gaussian_filter(img, sigma=(sigma, sigma, 0), mode="mirror", truncate=3.0)


def _noise(lin: np.ndarray, rng: np.random.Generator, a: float, b: float) -> np.ndarray:
    """Signal-dependent (Poisson-Gaussian, heteroscedastic normal approximation) sensor noise."""
    return lin + np.sqrt(a * np.clip(lin, 0.0, None) + b) * rng.standard_normal(lin.shape)


def _bayer_masks(n: int) -> np.ndarray:
    m = np.zeros((n, n, 3))
    m[0::2, 0::2, 0] = 1  # R
    m[0::2, 1::2, 1] = 1  # G
    m[1::2, 0::2, 1] = 1  # G
    m[1::2, 1::2, 2] = 1  # B
    return m


_K_RB = np.array([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 4.0
_K_G = np.array([[0.0, 1.0, 0.0], [1.0, 4.0, 1.0], [0.0, 1.0, 0.0]]) / 4.0


def _camera(lin: np.ndarray, rng: np.random.Generator, a: float, b: float) -> np.ndarray:
    """RGGB mosaic, noise on the raw values, bilinear demosaic ('mirror' keeps the Bayer phase)."""
    from scipy import ndimage

    masks = _bayer_masks(lin.shape[0])
    raw = _noise(np.sum(lin * masks, axis=2), rng, a, b)
    out = np.empty_like(lin)
    for c, k in ((0, _K_RB), (1, _K_G), (2, _K_RB)):
        out[..., c] = ndimage.convolve(raw * masks[..., c], k, mode="mirror")
    return out


def _tone(lin: np.ndarray) -> np.ndarray:
    return np.clip(lin, 0.0, 1.0) ** GAMMA


def _upsample2(img: np.ndarray) -> np.ndarray:
    """Transposed-convolution 2x upsampling: zero insertion + fixed separable kernel, mean gain 1."""
    from scipy import ndimage

    n = img.shape[0]
    src = np.pad(img, ((0, 1), (0, 1), (0, 0)), mode="edge")  # so the last odd row/column has two neighbours
    up = np.zeros((2 * n + 1, 2 * n + 1, img.shape[2]))
    up[0::2, 0::2] = src
    k = UPSAMPLE_KERNEL / (UPSAMPLE_KERNEL.sum() / 2.0)  # average of the even/odd phase gains = 1
    up = ndimage.convolve1d(up, k, axis=0, mode="constant")
    up = ndimage.convolve1d(up, k, axis=1, mode="constant")
    up = up[: 2 * n, : 2 * n]
    return up


def _lowpass(img: np.ndarray) -> np.ndarray:
    """Isotropic raised-cosine low-pass (LOWPASS_PASS..LOWPASS_STOP cycles/px), reflect-padded FFT."""
    n = img.shape[0]
    p = n // 4
    padded = np.pad(img, ((p, p), (p, p), (0, 0)), mode="symmetric")
    m = padded.shape[0]
    f1 = np.fft.fftfreq(m)
    f = np.hypot(f1[:, None], f1[None, :])
    t = np.clip((f - LOWPASS_PASS) / (LOWPASS_STOP - LOWPASS_PASS), 0.0, 1.0)
    gain = 0.5 * (1.0 + np.cos(np.pi * t))
    out = np.fft.ifft2(np.fft.fft2(padded, axes=(0, 1)) * gain[..., None], axes=(0, 1)).real
    return out[p : p + n, p : p + n]


def _grid_pattern(n: int) -> np.ndarray:
    """The fixed 8x8-periodic pattern of the ``bandlimited`` generator (same for every image).

    Only its first two harmonics (1/8 and 2/8 cycles/px) are kept, so it stays
    below the low-pass cut-off: peaks inside the pass band, nothing above it.
    """
    rng = np.random.default_rng(np.random.SeedSequence([0x6D0D, GRID_PERIOD]))
    spectrum = np.fft.fft2(rng.standard_normal((GRID_PERIOD, GRID_PERIOD, 3)), axes=(0, 1))
    k = np.fft.fftfreq(GRID_PERIOD) * GRID_PERIOD
    keep = (np.hypot(k[:, None], k[None, :]) <= 2.0) & (np.hypot(k[:, None], k[None, :]) > 0)
    tile = np.fft.ifft2(spectrum * keep[..., None], axes=(0, 1)).real
    tile = tile / tile.std()
    reps = -(-n // GRID_PERIOD)
    return np.tile(tile, (reps, reps, 1))[:n, :n] * GRID_AMPLITUDE


def _quantize(img: np.ndarray) -> np.ndarray:
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)


def render_image(generator: str, index: int, seed: int = 0, size: int = IMAGE_SIZE) -> tuple[np.ndarray, str]:
    """Pixels (size, size, 3) uint8 and caption of image ``index`` of class ``generator``."""
    if generator not in GENERATORS:
        raise ValueError(f"unknown demo generator {generator!r} (known: {', '.join(GENERATORS)})")
    rng = derive_rng(seed, "demo", generator, int(index))
    scene = sample_scene(rng)
    sigma = float(rng.uniform(0.5, 0.9))  # optical blur, px
    a = float(np.exp(rng.uniform(np.log(8e-4), np.log(6e-3))))  # shot-noise gain ("ISO")
    b = float(a * rng.uniform(0.005, 0.05))  # read-noise variance
    if generator == "real":
        out = _tone(_camera(_blur(render_scene(scene, size), sigma), rng, a, b))
    elif generator == "smooth":
        out = _tone(_blur(render_scene(scene, size), sigma))
    elif generator == "bandlimited":
        out = _tone(_lowpass(_camera(_blur(render_scene(scene, size), sigma), rng, a, b)))
        out = out + _grid_pattern(size) * (0.5 + out)
    else:  # upsampler
        half = size // 2
        low = _noise(_blur(render_scene(scene, half), sigma / 2), rng, a, b)
        out = _upsample2(_tone(low))
    return _quantize(out), scene.caption()


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes with fixed encoder settings and no metadata chunks."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels, mode="RGB").save(buf, format="PNG", compress_level=6, optimize=False)
    return buf.getvalue()


def build_demo(root: Path, seed: int = 0, *, images_per_class: int = IMAGES_PER_CLASS) -> Path:
    """Write the demo images and ``manifest.csv`` into ``root`` and return ``root``.

    Deterministic: the same ``seed`` gives byte-identical files, and image ``i``
    of a class does not depend on how many images are built.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    pixel_digest = hashlib.sha256()
    for generator in GENERATORS:
        (root / generator).mkdir(exist_ok=True)
        for i in range(images_per_class):
            pixels, caption = render_image(generator, i, seed)
            rel = f"{generator}/{generator}_{i:04d}.png"
            (root / rel).write_bytes(encode_png(pixels))
            pixel_digest.update(rel.encode() + b"\0" + pixels.tobytes())
            rows.append((rel, "real" if generator == "real" else "fake", generator, caption))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(("path", "label", "generator", "caption"))
    writer.writerows(rows)
    (root / "manifest.csv").write_text(buf.getvalue(), encoding="utf-8", newline="")
    (root / ".pixels.sha256").write_text(pixel_digest.hexdigest() + "\n")
    return root


# --- cache ---------------------------------------------------------------------------


def demo_dataset_path(cache_root: Path | None = None, seed: int = 0) -> Path:
    """The demo dataset folder, built on first use into ``<cache>/datasets/demo-v<N>-seed<seed>``.

    The build goes into a temporary sibling folder that is renamed into place
    only when complete (with its completion marker inside), so an interrupted
    build never leaves a half dataset, and concurrent first uses are safe.
    """
    from bench.core.cache import default_cache_dir

    base = Path(cache_root) if cache_root is not None else default_cache_dir()
    final = base / "datasets" / f"demo-v{DEMO_VERSION}-seed{seed}"
    if (final / MARKER).is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.building-", dir=final.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp's 0700 would make a shared cache unreadable to others
        print(f"building the demo dataset into {final} (first use, a few seconds)...", file=sys.stderr)
        start = time.perf_counter()
        build_demo(tmp, seed)
        marker = {
            "dataset": "demo",
            "version": DEMO_VERSION,
            "seed": seed,
            "images": IMAGES_PER_CLASS * len(GENERATORS),
            "pixels_sha256": (tmp / ".pixels.sha256").read_text().strip(),
            "build_seconds": round(time.perf_counter() - start, 2),
        }
        (tmp / MARKER).write_text(json.dumps(marker, indent=1, sort_keys=True) + "\n")
        _fsync_tree(tmp)  # the rename below must not publish files still in the page cache only
        if final.exists() and not (final / MARKER).is_file():
            _discard(final)  # an incomplete folder someone else left there: never trust it
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / MARKER).is_file():  # not a concurrent builder that won the race
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*"), key=lambda p: -len(p.parts)) + [root]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _discard(path: Path) -> None:
    trash = Path(tempfile.mkdtemp(prefix=f".{path.name}.trash-", dir=path.parent))
    os.rename(path, trash / path.name)
    shutil.rmtree(trash, ignore_errors=True)


def _remove_stale_builds(final: Path, max_age_s: float = 3600.0) -> None:
    """Delete temporary build folders of killed builds (older than an hour)."""
    now = time.time()
    for p in final.parent.glob(f".{final.name}.*-*"):
        try:
            if p.is_dir() and now - p.stat().st_mtime > max_age_s:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass
