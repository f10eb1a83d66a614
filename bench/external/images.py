"""The images an external scorer receives: lossless PNG of exactly the pixels an in-process detector gets
(``images[i]``: decoded, perturbed, uint8 RGB), so a program, a server or a scored export sees what the harness
scores, bit for bit."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from bench.core import atomic


def png_bytes(image: np.ndarray, compress_level: int = 1) -> bytes:
    """``image`` (uint8 HWC RGB) as PNG; level 1: lossless like any level, and the fastest to write."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def image_name(i: int) -> str:
    """The file name of image ``i`` of a cell handed to a program: its position, zero-padded."""
    return f"{i:06d}.png"


def write_pngs(images, folder: Path) -> list[Path]:
    """Every image of ``images`` as ``folder/NNNNNN.png`` (position in the set), in order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(len(images)):
        path = folder / image_name(i)
        path.write_bytes(png_bytes(images[i]))
        paths.append(path)
    return paths


def save_png(image: np.ndarray, path: Path) -> bytes:
    """``image`` as PNG at ``path``, written atomically (an exported grid is kept); returns the bytes."""
    data = png_bytes(image, compress_level=6)
    atomic.write_bytes(path, data)
    return data
