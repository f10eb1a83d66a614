"""Re-digitisation: an image shown on a screen and captured again, as a screenshot or a photo of the screen.

Both are seeded simulations with one explicit parameter tuple per severity (the tables are in
``perturbations/__init__.py``); both end at the input's size, the shape every perturbation keeps.

``screenshot`` (zoom, gamma): the image is shown at ``zoom`` times its size, the product of a
non-integer display scaling (Windows and macOS offer 125 %, 150 %, 175 %) and the viewer's fit to
the window; the browser resamples it (bilinear, no subpixel rendering: greyscale antialiasing);
a colour-management or display-profile mismatch applies a power ``gamma`` to the values; the
screenshot tool stores the displayed pixels as PNG (lossless: the PNG round trip is kept so that
the chain is the real one, and it changes nothing). To compare with the original, the capture is
resampled back to the original size (area when shrinking, bilinear when enlarging).

``recapture`` (tilt, blur sigma, noise std, JPEG quality): a phone photographs the screen. The
camera is not parallel to the screen, so the image is seen through a perspective: each corner of
the region kept moves inwards by up to ``tilt`` of the side (drawn from the cell's generator), and
that quadrilateral is rectified to the full frame. The lens and the screen's pixel grid are
low-passed by a Gaussian blur of ``sigma`` px (we model no moire: a blur before sampling is what
phone cameras' optics and demosaicing give on average); the sensor adds signal-dependent shot noise
plus read noise, std = ``noise`` * sqrt(0.5 * (value + 0.5)) on [0,1] (a Poisson-Gaussian model,
half of the variance at mid grey from each); the phone stores a JPEG at ``quality`` (4:2:0).
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from perturbations.functions import DOWNSCALE, UPSCALE, _check, _resize, _to_uint8, jpeg


def _png_round_trip(image: np.ndarray) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.array(decoded.convert("RGB"))


def _resample(image: np.ndarray, height: int, width: int) -> np.ndarray:
    shrinking = height * width < image.shape[0] * image.shape[1]
    return _resize(image, height, width, DOWNSCALE if shrinking else UPSCALE)


def screenshot(image: np.ndarray, param: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """Displayed at ``zoom`` x (bilinear/area), values to the power ``gamma``, captured as PNG, back to size."""
    _check(isinstance(param, tuple) and len(param) == 2, f"screenshot needs a (zoom, gamma) pair, got {param!r}")
    zoom, gamma = param
    _check(0 < zoom <= 4 and zoom != 1, f"screenshot zoom must be in (0, 4] and not 1, got {zoom!r}")
    _check(0.5 <= gamma <= 2, f"screenshot gamma must be in [0.5, 2], got {gamma!r}")
    height, width = image.shape[:2]
    shown = _resample(image, max(1, round(height * zoom)), max(1, round(width * zoom)))
    if gamma != 1:
        shown = _to_uint8(255 * (shown.astype(np.float32) / 255) ** np.float32(gamma))
    return _resample(_png_round_trip(shown), height, width)


def _perspective(image: np.ndarray, tilt: float, rng: np.random.Generator) -> np.ndarray:
    height, width = image.shape[:2]
    inward = rng.uniform(0, tilt, size=(4, 2)) * np.array([width - 1, height - 1])
    corners = np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], dtype=np.float64)
    towards_centre = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]])
    source = (corners + towards_centre * inward).astype(np.float32)
    matrix = cv2.getPerspectiveTransform(source, corners.astype(np.float32))
    return cv2.warpPerspective(image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT_101)


def recapture(image: np.ndarray, param: tuple[float, float, float, int], rng: np.random.Generator) -> np.ndarray:
    """Perspective (corners in by up to ``tilt``), Gaussian blur ``sigma`` px, shot+read noise, JPEG ``quality``."""
    _check(isinstance(param, tuple) and len(param) == 4,
           f"recapture needs a (tilt, sigma, noise, quality) tuple, got {param!r}")
    tilt, sigma, noise, quality = param
    _check(0 <= tilt < 0.25, f"recapture tilt must be in [0, 0.25), got {tilt!r}")
    _check(sigma > 0 and noise >= 0, f"recapture blur sigma must be > 0 and noise >= 0, got {sigma!r}, {noise!r}")
    out = _perspective(image, tilt, rng)
    out = cv2.GaussianBlur(out, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101).astype(np.float32) / 255
    std = np.float32(noise) * np.sqrt(np.float32(0.5) * (out + np.float32(0.5)))
    out = out + std * rng.standard_normal(out.shape, dtype=np.float32)
    return jpeg(_to_uint8(out * 255), quality, rng)
