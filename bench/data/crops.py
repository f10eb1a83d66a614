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
    top, left = _centre_offsets(h, w, size)
    return image[top:top + size, left:left + size]


def centre_crop_pad_tensor(image01, size: int):
    """:func:`centre_crop_pad` on a torch CHW tensor, differentiable (white-box attacks see the same pixels)."""
    from torch.nn import functional

    h, w = image01.shape[-2:]
    if h < size or w < size:
        pad_h, pad_w = max(0, size - h), max(0, size - w)
        image01 = functional.pad(image01, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        h, w = image01.shape[-2:]
    top, left = _centre_offsets(h, w, size)
    return image01[..., top:top + size, left:left + size]


def shorter_side_size(h: int, w: int, size: int) -> tuple[int, int]:
    """(height, width) with the shorter side ``size`` and the other side truncated, as torchvision's Resize(int)
    (the evaluation resize of CNNDetection's fast profile and of open_clip's eval transform)."""
    return (size, int(size * w / h)) if h <= w else (int(size * h / w), size)


def _centre_offsets(h: int, w: int, size: int) -> tuple[int, int]:
    """Top-left corner of torchvision's ``CenterCrop`` (rounded half-offsets)."""
    return int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
