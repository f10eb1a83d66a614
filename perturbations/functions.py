"""Pure perturbation functions: ``fn(image, param, rng) -> image``.

Every function takes an RGB ``uint8`` HxWx3 array (possibly read-only: decoded
images are shared between cells), returns a new array of the same shape and
dtype, never modifies its input, and draws randomness only from ``rng``. They
work at any size from 16x16 up, odd and non-square included.

Parameters are checked here, with a message naming the valid range, because
the libraries underneath either accept nonsense silently (a negative sigma, a
scale above 1) or fail with an error that does not say what was wrong.
"""

from __future__ import annotations

import io
import math

import cv2
import numpy as np
from PIL import Image
from scipy import ndimage

from bench.core.errors import BenchError

JPEG_SUBSAMPLING = 2  # Pillow's code for 4:2:0 chroma subsampling: libjpeg's and ImageNet-C's default
WEBP_METHOD = 4  # libwebp speed/quality trade-off 0..6; 4 is Pillow's default
UPSCALE = cv2.INTER_LINEAR  # bilinear back to full size: no ringing, no values invented beyond the neighbours
DOWNSCALE = cv2.INTER_AREA  # pixel-area averaging: the anti-aliased downscale that image pipelines use


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise BenchError(message)


def _check_quality(quality: int, codec: str) -> None:
    _check(
        isinstance(quality, (int, np.integer)) and 1 <= quality <= 100,
        f"{codec} quality must be an integer in 1..100, got {quality!r}",
    )


def _check_fraction(value: float, what: str) -> None:
    _check(0 < value <= 1, f"{what} must be in (0, 1], got {value!r}")


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """Round to the nearest integer and clip to 0..255."""
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _encode_decode(image: np.ndarray, codec: str, **options) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=codec, **options)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.array(decoded.convert("RGB"))


def _scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """``(height, width)`` times ``scale``, rounded, and at least one pixel each."""
    return max(1, round(height * scale)), max(1, round(width * scale))


def _resize(image: np.ndarray, height: int, width: int, interpolation: int) -> np.ndarray:
    return cv2.resize(image, (width, height), interpolation=interpolation)  # OpenCV takes (width, height)


def _downscale(image: np.ndarray, scale: float) -> np.ndarray:
    return _resize(image, *_scaled_size(*image.shape[:2], scale), DOWNSCALE)


def _upscale_to(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return _resize(image, shape[0], shape[1], UPSCALE)


def jpeg(image: np.ndarray, quality: int, rng: np.random.Generator) -> np.ndarray:
    """JPEG encode and decode with Pillow (libjpeg) at ``quality``, 4:2:0 chroma subsampling."""
    _check_quality(quality, "JPEG")
    return _encode_decode(image, "JPEG", quality=int(quality), subsampling=JPEG_SUBSAMPLING)


def webp(image: np.ndarray, quality: int, rng: np.random.Generator) -> np.ndarray:
    """Lossy WebP encode and decode with Pillow (libwebp) at ``quality``; WebP is always 4:2:0."""
    _check_quality(quality, "WebP")
    return _encode_decode(image, "WEBP", quality=int(quality), method=WEBP_METHOD, lossless=False)


def blur_kernel_size(sigma: float) -> int:
    """An odd kernel side covering +-3 sigma, beyond which the Gaussian is under 1.2% of its peak."""
    return 2 * math.ceil(3 * sigma) + 1


def gaussian_blur(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Isotropic Gaussian blur, ``sigma`` in pixels, borders mirrored without repeating the edge pixel."""
    _check(sigma > 0, f"blur sigma must be > 0 px, got {sigma!r}")
    size = blur_kernel_size(sigma)
    return cv2.GaussianBlur(image, (size, size), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101)


AEROBLADE_BLUR_KERNEL = 9


def gaussian_blur_fixed_kernel(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """AEROBLADE's blur (``torchvision.transforms.v2.GaussianBlur(kernel_size=9, sigma)``): a 9x9 kernel whatever
    sigma, so large sigmas are truncated at +-4 px (weaker than :func:`gaussian_blur`), mirrored borders."""
    _check(sigma > 0, f"blur sigma must be > 0 px, got {sigma!r}")
    size = AEROBLADE_BLUR_KERNEL
    return cv2.GaussianBlur(image, (size, size), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101)


def gaussian_blur_scipy(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """UnivFD's robustness blur (its ``validate.py``): ``scipy.ndimage.gaussian_filter`` per channel straight into
    uint8, so the kernel reaches +-4 sigma, borders reflect with the edge pixel repeated, and values are cast
    rather than rounded; about one grey level below :func:`gaussian_blur` on average."""
    _check(sigma > 0, f"blur sigma must be > 0 px, got {sigma!r}")
    out = np.empty_like(image)
    for channel in range(image.shape[2]):
        ndimage.gaussian_filter(image[:, :, channel], sigma=sigma, output=out[:, :, channel])
    return out


def gaussian_noise(image: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """Add i.i.d. Gaussian noise of ``std`` on the [0, 1] intensity scale to every pixel and channel.

    The noise is drawn in float32 (half the memory of float64 on large images);
    the result is clipped to the valid range and rounded.
    """
    _check(std >= 0, f"noise std must be >= 0, got {std!r}")
    noise = rng.standard_normal(image.shape, dtype=np.float32)
    return _to_uint8(image + noise * np.float32(std * 255))


def darken(image: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """Multiply every pixel value by ``factor`` < 1 (the NYCU paper's brightness reduction)."""
    _check_fraction(factor, "brightness factor")
    return _to_uint8(image * np.float32(factor))


def brighten_hsv(image: np.ndarray, delta: float, rng: np.random.Generator) -> np.ndarray:
    """ImageNet-C brightness: add ``delta`` to the HSV value channel on [0, 1], clip, convert back."""
    _check_fraction(delta, "brighten delta")
    hsv = cv2.cvtColor(image.astype(np.float32) / 255, cv2.COLOR_RGB2HSV)
    hsv[..., 2] = np.clip(hsv[..., 2] + delta, 0, 1)
    return _to_uint8(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255)


def resize(image: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Downscale each side by ``scale`` (area), then upscale back to the original size (bilinear)."""
    _check_fraction(scale, "resize scale")
    return _upscale_to(_downscale(image, scale), image.shape)


def center_crop(image: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Keep the central ``fraction`` of each side, then resize back to the original size (bilinear)."""
    _check_fraction(fraction, "crop fraction")
    height, width = image.shape[:2]
    crop_h, crop_w = _scaled_size(height, width, fraction)
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    return _upscale_to(image[top : top + crop_h, left : left + crop_w], image.shape)


def social(image: np.ndarray, param: tuple[float, int], rng: np.random.Generator) -> np.ndarray:
    """A social-media upload: downscale by ``scale`` (area), JPEG at ``quality``, upscale back.

    The JPEG artefacts are made at the reduced size, as a platform makes them;
    the final bilinear upscale only restores the original shape, which every
    perturbation keeps.
    """
    _check(
        isinstance(param, tuple) and len(param) == 2,
        f"social needs a (scale, quality) pair, got {param!r}",
    )
    scale, quality = param
    _check_fraction(scale, "social scale")
    return _upscale_to(jpeg(_downscale(image, scale), quality, rng), image.shape)
