"""``share``: an image re-shared through social platforms, one platform-like re-encode per hop.

A hop is what a platform does to an uploaded photo: shrink it so that its long side is at most
the platform's limit (area averaging; smaller images are left as they are), optionally sharpen,
and re-encode it as a baseline JPEG at the platform's quality with 4:2:0 chroma subsampling.
The next hop starts from what the previous one served, as when a downloaded image is posted
again. After the last hop the image is brought back to its original size (bilinear), the
shape every perturbation keeps. Severity = number of hops.

``share`` follows a fixed chain of platforms (``CHAIN``): hop k is the k-th profile, so the
levels nest (level 3 is level 2 plus one hop). ``share:NAME`` repeats one profile.

Where the numbers come from, honestly. Platforms publish size limits in their help pages, but
none publishes its JPEG quality, and all change both without notice. The qualities below are
commonly reported estimates, read from the quantisation tables of downloaded images in image
forensics studies and practitioner measurements (e.g. Moltisanti et al. 2015, "Image
manipulation on Facebook for forensics evidence"; Giudice et al. 2017, "A classification engine
for image ballistics of social data"); we have not measured them ourselves. They are
*platform-like*, not measurements of any platform today. Sharpening after downscaling is a
reported behaviour of some apps (amount and radius are our assumption).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from perturbations.functions import DOWNSCALE, _check, _resize, _to_uint8, _upscale_to, jpeg


@dataclass(frozen=True)
class ShareProfile:
    name: str
    long_side: int  # px: images larger than this are shrunk so their long side equals it
    quality: int  # JPEG quality of the re-encode (4:2:0)
    sharpen: float  # unsharp-mask amount after the resize (0: none); radius SHARPEN_SIGMA
    source: str  # where the numbers come from


SHARPEN_SIGMA = 1.0  # px, Gaussian radius of the unsharp mask

PROFILES: dict[str, ShareProfile] = {p.name: p for p in (
    ShareProfile("whatsapp", 1600, 70, 0.0,
                 "long side 1600 px and quality ~70 for standard-quality photos: commonly reported estimates"),
    ShareProfile("facebook", 2048, 71, 0.0,
                 "long side 2048 px: Facebook help pages' recommended upload width; quality ~71: estimated from "
                 "quantisation tables (Moltisanti et al. 2015; Giudice et al. 2017), varies with the image"),
    ShareProfile("instagram", 1080, 75, 0.3,
                 "long side 1080 px: Instagram help pages; quality ~75 and light sharpening: commonly reported "
                 "estimates (the sharpening amount is our assumption)"),
    ShareProfile("twitter", 4096, 85, 0.0,
                 "long side 4096 px: X/Twitter media documentation; quality ~85: commonly reported estimate"),
    ShareProfile("telegram", 1280, 87, 0.0,
                 "long side 1280 px for compressed photos and quality ~87: commonly reported estimates"),
)}

#: The platforms an image passes through in ``share``, hop by hop.
CHAIN = ("whatsapp", "facebook", "instagram", "twitter", "telegram")


def _fit_long_side(image: np.ndarray, long_side: int) -> np.ndarray:
    height, width = image.shape[:2]
    scale = long_side / max(height, width)
    if scale >= 1:
        return image
    return _resize(image, max(1, round(height * scale)), max(1, round(width * scale)), DOWNSCALE)


def _unsharp(image: np.ndarray, amount: float) -> np.ndarray:
    blurred = cv2.GaussianBlur(image, (0, 0), SHARPEN_SIGMA, borderType=cv2.BORDER_REFLECT_101)
    return _to_uint8(image.astype(np.float32) * (1 + amount) - blurred.astype(np.float32) * amount)


def share_hop(image: np.ndarray, profile: ShareProfile, rng: np.random.Generator) -> np.ndarray:
    """One upload: fit the long side, sharpen (if the profile does), JPEG at the profile's quality, 4:2:0."""
    out = _fit_long_side(image, profile.long_side)
    if profile.sharpen > 0:
        out = _unsharp(out, profile.sharpen)
    return jpeg(out, profile.quality, rng)


def _share_chain(image: np.ndarray, profiles: list[ShareProfile], rng: np.random.Generator) -> np.ndarray:
    out = image
    for profile in profiles:
        out = share_hop(out, profile, rng)
    return out if out.shape == image.shape else _upscale_to(out, image.shape)


def share(image: np.ndarray, hops: int, rng: np.random.Generator) -> np.ndarray:
    """``hops`` uploads along :data:`CHAIN` (whatsapp, facebook, instagram, twitter, telegram)."""
    _check(isinstance(hops, (int, np.integer)) and 1 <= hops <= len(CHAIN),
           f"share hops must be an integer in 1..{len(CHAIN)}, got {hops!r}")
    return _share_chain(image, [PROFILES[name] for name in CHAIN[:hops]], rng)


def share_profile(profile: str):
    """``fn(image, hops, rng)``: ``hops`` uploads through the one platform-like ``profile``."""
    selected = PROFILES[profile]

    def share_repeated(image: np.ndarray, hops: int, rng: np.random.Generator) -> np.ndarray:
        _check(isinstance(hops, (int, np.integer)) and hops >= 1, f"share hops must be an integer >= 1, got {hops!r}")
        return _share_chain(image, [selected] * int(hops), rng)

    return share_repeated
