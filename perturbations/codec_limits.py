"""The largest image each codec can encode, and the rule for images beyond it.

libjpeg encodes at most 65,500 px on a side and libwebp at most 16,383 px. An image whose long side
is over the limit of a perturbation that encodes (``Perturbation.max_side``) is downscaled (area) so
that its long side is the limit, perturbed, and resized back to its own size (bilinear), the way
``social`` downscales before its JPEG. Images within the limit are perturbed exactly as before, so no
cell that could be computed before changes (README, "Bad input").
"""

from __future__ import annotations

import cv2
import numpy as np

from perturbations.functions import DOWNSCALE, UPSCALE

JPEG_MAX_SIDE = 65_500  # libjpeg's JPEG_MAX_DIMENSION
WEBP_MAX_SIDE = 16_383  # libwebp's WEBP_MAX_DIMENSION


def within_limit(perturb, image: np.ndarray, max_side: int) -> np.ndarray:
    """``perturb(image)`` on the image fitted to ``max_side`` on its long side, resized back to its size."""
    height, width = image.shape[:2]
    scale = max_side / max(height, width)
    fitted = (max(1, min(max_side, round(width * scale))), max(1, min(max_side, round(height * scale))))
    small = cv2.resize(image, fitted, interpolation=DOWNSCALE)  # OpenCV takes (width, height)
    return cv2.resize(perturb(small), (width, height), interpolation=UPSCALE)
