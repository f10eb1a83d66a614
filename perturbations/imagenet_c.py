"""ImageNet-C's corruptions (Hendrycks and Dietterich 2019, ICLR), written from the paper's definitions.

The constants of each severity are those of the authors' release (hendrycks/robustness,
``imagenet_c/corruptions.py``), kept in the tables of ``perturbations/__init__.py``. Three of the
fifteen corruptions were already here and match the release: ``noise`` (Gaussian noise), ``jpeg``
and ``brighten`` (brightness). This module adds eleven; ``frost`` is left out (see below).

Departures, all deliberate:

- Randomness comes from the cell's generator, never numpy's global state.
- Results are rounded to uint8 (the release's ``np.uint8(...)`` truncates): a half-level shift.
- Sizes: the release assumes 224 x 224 inputs (some functions hard-code 224); here every function
  works at any size, non-square included, with the constants kept in pixels as the release has
  them (as ``blur`` keeps its sigma in pixels). ``fog``'s fractal is made at the next power of two
  of the long side and cropped.
- ``motion_blur`` and ``snow`` call ImageMagick's MotionBlurImage in the release (through Wand);
  here the same kernel is computed directly: width 2 * ceil(radius) + 1, weights
  exp(-i^2 / (2 sigma^2)) for i = 0 .. width-1 (one-sided: the streak trails the pixel), normalised,
  taps at (round(i cos a), round(i sin a)), edges clamped (ImageMagick's default virtual pixels).
- ``glass_blur`` reproduces what the release's loop does: its tuple "swap" of two numpy views
  copies the neighbour's pixel into the current one and leaves the neighbour as it was.
- ``frost`` blends the image with crops of six frost photographs shipped with the release; we do
  not ship those photographs, and a procedural imitation would be a different corruption whose
  numbers could not be compared with ImageNet-C's, so it is left out rather than imitated.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from PIL import Image
from scipy import ndimage

from perturbations.functions import _check, _to_uint8


def _unit(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) / 255


def _from_unit(values: np.ndarray) -> np.ndarray:
    return _to_uint8(np.clip(values, 0, 1) * 255)


def _tuple(param, n: int, name: str) -> tuple:
    _check(isinstance(param, tuple) and len(param) == n, f"{name} needs a {n}-tuple of constants, got {param!r}")
    return param


# -- noise ----------------------------------------------------------------------------------------


def shot_noise(image: np.ndarray, photons: float, rng: np.random.Generator) -> np.ndarray:
    """Poisson noise: x' = Poisson(x * photons) / photons on [0, 1] (fewer photons, more noise)."""
    _check(photons > 0, f"shot_noise photons must be > 0, got {photons!r}")
    return _from_unit(rng.poisson(_unit(image) * photons) / photons)


def impulse_noise(image: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Salt and pepper: each channel value is replaced with probability ``amount``, by 0 or 1 with equal odds."""
    _check(0 < amount <= 1, f"impulse_noise amount must be in (0, 1], got {amount!r}")
    out = _unit(image)
    hit = rng.random(image.shape) <= amount
    salt = rng.random(image.shape) <= 0.5
    out[hit & salt] = 1
    out[hit & ~salt] = 0
    return _from_unit(out)


# -- blur -----------------------------------------------------------------------------------------


def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """The release's defocus kernel: a disk on a 17 x 17 grid (radius <= 8) or a (2r+1)^2 one, normalised,
    then a small Gaussian (3 x 3, or 5 x 5 for the large grid) to antialias its edge."""
    half = 8 if radius <= 8 else int(radius)
    coords = np.arange(-half, half + 1)
    x, y = np.meshgrid(coords, coords)
    disk = ((x**2 + y**2) <= radius**2).astype(np.float32)
    disk /= disk.sum()
    size = 3 if radius <= 8 else 5
    return cv2.GaussianBlur(disk, (size, size), sigmaX=alias_blur)


def defocus_blur(image: np.ndarray, param: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """Convolution with an antialiased disk of ``radius`` px (mirrored borders)."""
    radius, alias_blur = _tuple(param, 2, "defocus_blur")
    _check(radius > 0, f"defocus_blur radius must be > 0, got {radius!r}")
    return _from_unit(cv2.filter2D(_unit(image), -1, disk_kernel(radius, alias_blur).astype(np.float64),
                                   borderType=cv2.BORDER_REFLECT_101))


def _skimage_gaussian(values: np.ndarray, sigma: float, mode: str = "nearest", truncate: float = 4.0) -> np.ndarray:
    """scikit-image's ``filters.gaussian`` on the spatial axes (what the release calls): scipy, per channel."""
    sigmas = (sigma, sigma, 0) if values.ndim == 3 else (sigma, sigma)
    return ndimage.gaussian_filter(values, sigmas, mode=mode, truncate=truncate)


def glass_blur(image: np.ndarray, param: tuple[float, int, int], rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur ``sigma``; ``iterations`` sweeps (bottom-right to top-left) in which each pixel takes the
    value of a random neighbour up to ``max_delta`` px away; Gaussian blur ``sigma`` again."""
    sigma, delta, iterations = _tuple(param, 3, "glass_blur")
    _check(sigma > 0 and delta >= 1 and iterations >= 1, f"glass_blur needs sigma > 0, delta >= 1, iterations >= 1, "
                                                         f"got {param!r}")
    height, width = image.shape[:2]
    pixels = (_skimage_gaussian(_unit(image), sigma) * 255).astype(np.uint8)  # the release truncates here
    rows, cols = range(height - delta, delta, -1), range(width - delta, delta, -1)
    moves = rng.integers(-delta, delta, size=(iterations, len(rows), len(cols), 2))  # (dx, dy) per visit
    for sweep in range(iterations):
        for r, h in enumerate(rows):
            for c, w in enumerate(cols):
                dx, dy = moves[sweep, r, c]
                pixels[h, w] = pixels[h + dy, w + dx]
    return _from_unit(_skimage_gaussian(pixels / 255, sigma))


def motion_kernel(radius: float, sigma: float) -> np.ndarray:
    """ImageMagick's one-sided motion blur weights: exp(-i^2 / (2 sigma^2)), i = 0 .. 2 ceil(radius), normalised."""
    taps = np.arange(2 * math.ceil(radius) + 1, dtype=np.float64)
    weights = np.exp(-(taps**2) / (2 * sigma**2))
    return weights / weights.sum()


def streak(values: np.ndarray, radius: float, sigma: float, angle_degrees: float) -> np.ndarray:
    """Motion blur along ``angle_degrees`` (ImageMagick's MotionBlurImage; clamped edges)."""
    height, width = values.shape[:2]
    angle = math.radians(angle_degrees)
    rows, cols = np.arange(height), np.arange(width)
    out = np.zeros(values.shape, dtype=np.float64)
    for i, weight in enumerate(motion_kernel(radius, sigma)):
        dx, dy = math.ceil(i * math.cos(angle) - 0.5), math.ceil(i * math.sin(angle) - 0.5)  # ImageMagick's rounding
        shifted = values[np.clip(rows + dy, 0, height - 1)][:, np.clip(cols + dx, 0, width - 1)]
        out += weight * shifted
    return out


def motion_blur(image: np.ndarray, param: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """A one-sided Gaussian streak of ``radius`` px and ``sigma``, at an angle drawn uniformly in [-45, 45] deg."""
    radius, sigma = _tuple(param, 2, "motion_blur")
    _check(radius > 0 and sigma > 0, f"motion_blur radius and sigma must be > 0, got {param!r}")
    return _to_uint8(streak(image.astype(np.float64), radius, sigma, rng.uniform(-45, 45)))


def clipped_zoom(values: np.ndarray, factor: float) -> np.ndarray:
    """Zoom into the centre by ``factor`` (linear interpolation) and keep the input's size."""
    height, width = values.shape[:2]
    crop_h, crop_w = math.ceil(height / factor), math.ceil(width / factor)
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    zoom = (factor, factor) + (1,) * (values.ndim - 2)
    zoomed = ndimage.zoom(values[top:top + crop_h, left:left + crop_w], zoom, order=1)
    trim_h, trim_w = (zoomed.shape[0] - height) // 2, (zoomed.shape[1] - width) // 2
    return zoomed[trim_h:trim_h + height, trim_w:trim_w + width]


def zoom_blur(image: np.ndarray, param: tuple[float, float, float], rng: np.random.Generator) -> np.ndarray:
    """The mean of the image and its centre zooms by every factor of ``np.arange(start, stop, step)``."""
    start, stop, step = _tuple(param, 3, "zoom_blur")
    _check(1 <= start < stop and step > 0, f"zoom_blur needs 1 <= start < stop and step > 0, got {param!r}")
    values = _unit(image).astype(np.float32)
    factors = np.arange(start, stop, step)
    total = values + sum(clipped_zoom(values, f) for f in factors)
    return _from_unit(total / (len(factors) + 1))


# -- weather ------------------------------------------------------------------------------------------


def plasma_fractal(size: int, decay: float, rng: np.random.Generator) -> np.ndarray:
    """A diamond-square height map on a ``size`` x ``size`` torus (size a power of two), scaled to [0, 1].

    Corner value 0; each pass sets square centres, then edge midpoints, to the mean of their four
    neighbours plus uniform noise of amplitude wibble^2, with wibble starting at 100 and divided by
    ``decay`` after each pass (the release's constants).
    """
    grid = np.zeros((size, size))
    stride, wibble = size, 100.0

    def noisy_mean(total: np.ndarray) -> np.ndarray:
        return total / 4 + wibble * rng.uniform(-wibble, wibble, total.shape)

    while stride >= 2:
        half = stride // 2
        corners = grid[0:size:stride, 0:size:stride]
        square = corners + np.roll(corners, -1, axis=0)
        square = square + np.roll(square, -1, axis=1)
        grid[half:size:stride, half:size:stride] = noisy_mean(square)
        centres = grid[half:size:stride, half:size:stride]
        corners = grid[0:size:stride, 0:size:stride]
        grid[0:size:stride, half:size:stride] = noisy_mean(
            centres + np.roll(centres, 1, axis=0) + corners + np.roll(corners, -1, axis=1))
        grid[half:size:stride, 0:size:stride] = noisy_mean(
            centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=0))
        stride = half
        wibble /= decay
    grid -= grid.min()
    return grid / grid.max()


def fog(image: np.ndarray, param: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """x + strength * plasma fractal (roughness ``decay``), rescaled by max(x) / (max(x) + strength)."""
    strength, decay = _tuple(param, 2, "fog")
    _check(strength > 0 and decay > 0, f"fog strength and decay must be > 0, got {param!r}")
    height, width = image.shape[:2]
    size = 1 << max(1, math.ceil(math.log2(max(height, width))))
    values = _unit(image)
    peak = values.max()
    values = values + strength * plasma_fractal(size, decay, rng)[:height, :width, None]
    return _from_unit(values * peak / (peak + strength))


def snow(image: np.ndarray, param: tuple, rng: np.random.Generator) -> np.ndarray:
    """Flakes: N(mean, std) noise zoomed by ``zoom``, cut below ``threshold``, streaked by a motion blur (radius,
    sigma, angle in [-135, -45] deg); the image is whitened towards 1.5 grey + 0.5 with weight 1 - ``keep``,
    and the flakes and their 180-degree rotation are added."""
    mean, std, zoom, threshold, radius, sigma, keep = _tuple(param, 7, "snow")
    values = _unit(image).astype(np.float32)
    flakes = clipped_zoom(rng.normal(mean, std, size=image.shape[:2])[..., None], zoom)[..., 0]
    flakes[flakes < threshold] = 0
    flakes = (np.clip(flakes, 0, 1) * 255).astype(np.uint8)  # the release passes the layer through an 8-bit PNG
    flakes = np.clip(np.rint(streak(flakes.astype(np.float64), radius, sigma, rng.uniform(-135, -45))), 0, 255) / 255
    grey = cv2.cvtColor(values, cv2.COLOR_RGB2GRAY)[..., None]
    values = keep * values + (1 - keep) * np.maximum(values, grey * 1.5 + 0.5)
    return _from_unit(values + flakes[..., None] + np.rot90(flakes, k=2)[..., None])


# -- digital --------------------------------------------------------------------------------------------


def contrast(image: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """(x - mean) * factor + mean, with each channel's mean over the image."""
    _check(0 < factor <= 1, f"contrast factor must be in (0, 1], got {factor!r}")
    values = _unit(image)
    means = values.mean(axis=(0, 1), keepdims=True)
    return _from_unit((values - means) * factor + means)


def elastic(image: np.ndarray, param: tuple[float, float, float], rng: np.random.Generator) -> np.ndarray:
    """A random affine (three points moved by up to ``shift`` px), then a displacement field of amplitude
    ``alpha`` px smoothed by a Gaussian of ``sigma`` px (uniform noise in [-1, 1]), bilinear, mirrored."""
    alpha, sigma, shift = _tuple(param, 3, "elastic")
    _check(alpha > 0 and sigma > 0 and shift >= 0, f"elastic needs alpha > 0, sigma > 0, shift >= 0, got {param!r}")
    values = _unit(image).astype(np.float32)
    height, width = values.shape[:2]
    centre = np.float32([width // 2, height // 2])
    side = min(height, width) // 3
    points = np.float32([centre + side, [centre[0] + side, centre[1] - side], centre - side])
    moved = points + rng.uniform(-shift, shift, size=points.shape).astype(np.float32)
    values = cv2.warpAffine(values, cv2.getAffineTransform(points, moved), (width, height),
                            borderMode=cv2.BORDER_REFLECT_101)
    dx, dy = (_skimage_gaussian(rng.uniform(-1, 1, size=(height, width)), sigma, "reflect", 3) * alpha
              for _ in range(2))
    y, x = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    out = np.stack([ndimage.map_coordinates(values[..., ch], [y + dy, x + dx], order=1, mode="reflect")
                    for ch in range(values.shape[2])], axis=-1)
    return _from_unit(out)


def pixelate(image: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Box downscale of each side to ``fraction`` (truncated to whole pixels), box upscale back (Pillow)."""
    _check(0 < fraction <= 1, f"pixelate fraction must be in (0, 1], got {fraction!r}")
    height, width = image.shape[:2]
    small = Image.fromarray(image).resize((max(1, int(width * fraction)), max(1, int(height * fraction))), Image.BOX)
    return np.array(small.resize((width, height), Image.BOX))
