"""Decode any image file into RGB uint8 (H, W, 3), or say in one line why not.

Every image in the benchmark passes through :func:`decode_image`, so the modes
that silently go wrong elsewhere are handled here once: EXIF orientation is
applied, 16-bit integer images (and 32-bit ones holding 0..65535) are rescaled, not clipped, to 8 bits
(32-bit values beyond that range have no defined 8-bit scale, like floating-point images: skipped),
grayscale/CMYK/palette images are converted to RGB, an alpha channel is
discarded, and images that are truncated, empty, not images, smaller than
``min_side`` or larger than ``max_pixels`` raise :class:`ImageSkip` with the
reason.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from bench.core.errors import ImageSkip
from bench.data.parquet_images import read_member, split_member
from bench.data.urls import is_url, local_path, read_url

MIN_SIDE = 16
MAX_PIXELS = 64_000_000
# No file is read past this size: 64 megapixels of 16-bit RGBA stored uncompressed stay below it.
MAX_FILE_BYTES = 512 * 1024 * 1024

# Decompression-bomb protection is ours (max_pixels); PIL's own check would
# raise a different error type before we can give a clear reason.
Image.MAX_IMAGE_PIXELS = None


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str
    mode: str
    metadata: bool  # EXIF or text chunks present


def _to_uint8_rgb(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img).astype(np.float64)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise ImageSkip(f"32-bit integer image with values {arr.min():.0f}..{arr.max():.0f} beyond 0..65535 "
                            "has no defined 8-bit range")
        top = 65535.0 if (mode.startswith("I;16") or arr.max(initial=0) > 255) else 255.0
        grey = np.clip(np.round(arr / top * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode == "F":
        raise ImageSkip("floating-point image (mode F) has no defined 8-bit range")
    if mode == "P":
        img = img.convert("RGBA")  # honours palette transparency before it is dropped
    if mode == "CMYK":
        img = img.convert("RGB")
    rgb = img.convert("RGB")  # L, LA, RGBA, RGBX, YCbCr, 1 ...
    return np.asarray(rgb, dtype=np.uint8).copy()


def probe_bytes(data: bytes, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE) -> ImageInfo:
    """Read only the header: format, mode and size, with the size limits applied."""
    if not data:
        raise ImageSkip("empty file")
    try:
        with Image.open(io.BytesIO(data)) as img:
            w, h = img.size
            text = getattr(img, "text", None) or {}
            info = ImageInfo(w, h, img.format or "unknown", img.mode, bool(text) or len(img.getexif()) > 0)
    except UnidentifiedImageError:
        raise ImageSkip("not a readable image file") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageSkip(f"corrupt or truncated image: {exc}") from None
    if w * h > max_pixels:
        raise ImageSkip(f"too large: {w}x{h} exceeds {max_pixels} pixels (raise --max-pixels to allow)")
    if min(w, h) < min_side:
        raise ImageSkip(f"too small: {w}x{h}, shorter side below {min_side} px")
    return info


def decode_bytes(data: bytes, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE) -> np.ndarray:
    """Decode image bytes to an RGB uint8 array with EXIF orientation applied."""
    probe_bytes(data, max_pixels, min_side)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as img:
                img.load()
                img = ImageOps.exif_transpose(img)
                arr = _to_uint8_rgb(img)
    except ImageSkip:
        raise
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageSkip(f"corrupt or truncated image: {exc}") from None
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ImageSkip(f"decoded to unexpected shape {arr.shape}")
    return arr


def read_image_file(path: str, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``; anything else is an ImageSkip, and is not read.

    The file is opened without blocking and checked on the open descriptor, so a FIFO, socket or
    device (or a file swapped for one after a check) is never read at all, and a file that is too
    large (or grows while being read) is never read past the limit. A Parquet member path
    (:mod:`bench.data.parquet_images`) reads the image cell it names, an fsspec URL
    (:mod:`bench.data.urls`) the object it names; a ``file://`` URL is a local path, with every check above.
    """
    if split_member(path) is not None:
        return read_member(path, max_bytes)
    if is_url(path):
        local = local_path(path)  # file://: the same checks as a local path, never fsspec's plain open
        if local is None:
            return read_url(path, max_bytes)
        path = local
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ImageSkip("file not found") from None
    except IsADirectoryError:
        raise ImageSkip("path is a directory") from None
    except OSError as exc:
        raise ImageSkip(f"cannot read file: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as fh:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise ImageSkip("path is a directory")
        if not stat.S_ISREG(mode):
            raise ImageSkip("not a regular file (FIFO, socket or device): not read")
        try:
            data = fh.read(max_bytes + 1)
        except OSError as exc:
            raise ImageSkip(f"cannot read file: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise ImageSkip(f"file larger than {max_bytes} bytes: not read past the limit")
    return data


def decode_image(path: str, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE) -> np.ndarray:
    return decode_bytes(read_image_file(path), max_pixels, min_side)
