"""The centre crop that the detectors' original evaluation code takes at native resolution.

CNNDetection, UnivFD and NPR evaluate with torchvision's ``CenterCrop`` on the unresized
image: a side shorter than the crop is zero-padded (black, centred) first, so every image
gives one crop of the same size whatever its resolution. Doing the same here keeps each
perturbation at the strength it was applied with (a resize would shrink blur, JPEG
blocks and noise by the downscale factor).
"""

from __future__ import annotations

import numpy as np


def centre_crop_pad(image: np.ndarray, size: int) -> np.ndarray:
    """The centre ``size`` x ``size`` crop of an HWC image; shorter sides are zero-padded as torchvision pads."""
    h, w = image.shape[:2]
    if h < size or w < size:
        pad_h, pad_w = max(0, size - h), max(0, size - w)
        image = np.pad(image, ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
        h, w = image.shape[:2]
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return image[top:top + size, left:left + size]
