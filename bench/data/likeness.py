"""A second, stronger look at the near-duplicate candidates of the difference hash.

The 64-bit difference hash sees an 8x9 grey layout: two unrelated images with the same coarse layout (a face
centred on a plain background, a horizon, a product shot) can fall within ``NEAR_DUP_BITS`` bits of each other,
and a leak check that trusted the hash alone would stop a run over images that share nothing. So each
candidate pair is confirmed on detail the hash cannot see: both images as ``THUMB_SIDE``-pixel grey thumbnails
(area average) with their ``LAYOUT_SIDE``-cell layout subtracted, and the Pearson correlation of what remains
must reach ``MIN_DETAIL_CORRELATION``. A re-encoded, resized or slightly blurred copy keeps that detail (0.98 or
more on wild-dev); unrelated images with the same layout do not (at most 0.68 on wild-dev's closest pairs:
``benchmarks/leak_false_positives.py``). Images without such detail (flat or smooth) are compared on the
thumbnails themselves.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from bench.core.errors import ImageSkip
from bench.data.images import decode_bytes, read_image_file

THUMB_SIDE = 32
LAYOUT_SIDE = 8  # the difference hash's grid, roughly: the layout both candidates already share
MIN_DETAIL_CORRELATION = 0.9
FLAT_DETAIL = 1.0  # grey levels: a detail standard deviation below this is no detail to correlate
FLAT_TOLERANCE = 4.0  # grey levels: two detail-free thumbnails within this mean difference are the same picture


def thumbnail(pixels: np.ndarray) -> np.ndarray:
    """The ``THUMB_SIDE`` x ``THUMB_SIDE`` grey thumbnail (area average) of an HxWx3 uint8 image, as float64."""
    grey = Image.fromarray(pixels).convert("L").resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BOX)
    return np.asarray(grey, dtype=np.float64)


def read_thumbnail(path: str) -> np.ndarray | None:
    """The thumbnail of the image file at ``path``, or None when it cannot be read now."""
    try:
        return thumbnail(decode_bytes(read_image_file(path)))
    except (ImageSkip, OSError):
        return None


def detail(thumb: np.ndarray) -> np.ndarray:
    """The thumbnail less its ``LAYOUT_SIDE`` x ``LAYOUT_SIDE`` cell means: what the difference hash cannot see."""
    cell = THUMB_SIDE // LAYOUT_SIDE
    layout = thumb.reshape(LAYOUT_SIDE, cell, LAYOUT_SIDE, cell).mean(axis=(1, 3))
    return thumb - np.kron(layout, np.ones((cell, cell)))


def same_picture(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two thumbnails show the same picture: their detail correlates at ``MIN_DETAIL_CORRELATION`` or
    more, or, when neither has detail, the thumbnails differ by at most ``FLAT_TOLERANCE`` grey levels."""
    da, db = detail(a), detail(b)
    sa, sb = da.std(), db.std()
    if sa < FLAT_DETAIL and sb < FLAT_DETAIL:
        return bool(np.abs(a - b).mean() <= FLAT_TOLERANCE)
    if sa < FLAT_DETAIL or sb < FLAT_DETAIL:
        return False
    return bool(np.corrcoef(da.ravel(), db.ravel())[0, 1] >= MIN_DETAIL_CORRELATION)
