"""An image's round trip through an autoencoder of the weights catalog: what ``vae_roundtrip:AE`` applies.

Laundering an image through a latent-diffusion autoencoder (encode, decode) rewrites the pixel
statistics that many detectors read, and makes real images look generated to reconstruction
detectors such as AEROBLADE. Every autoencoder AEROBLADE knows can be used
(:data:`baselines.aeroblade_models.AUTOENCODERS`: the SD 1/2 VAEs and the Kandinsky 2.1 MoVQ through
diffusers, the TAESD family, and two tiny random ones for tests); the weights are resolved through
:mod:`bench.weights` like a detector's (store, library caches, download unless offline) and their
sha256 is the round trip's identity, which the perturbation puts in every cell's fingerprint.

The pass is deterministic: the KL autoencoders decode the posterior mean (no sampling), the VQ
model its unquantised latent, the tiny ones are deterministic anyway. It runs in float32 on the
CPU, so the pixels do not depend on the machine's accelerator. Sides are reflect-padded up to a
multiple of the downsampling factor and the output cropped back, so any size keeps its shape; the
decoded image is rounded to uint8 as a saved image would be.

These loaders are registered lazily in ``bench.core.registries.AUTOENCODERS`` (``baselines/__init__``):
``perturbations`` sits below the plugins and may not import them, and resolves the name there.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from baselines.aeroblade_models import AUTOENCODERS, KL, build_autoencoder, reconstruct

INIT_SEED = 0  # random-weight test autoencoders only
VERSION = 1  # bump when the pass changes (padding, rounding, latent choice): cached cells key on it


@dataclass
class Roundtrip:
    """``roundtrip(image_uint8_hwc) -> image_uint8_hwc`` through one loaded autoencoder."""

    name: str
    kind: str
    factor: int
    model: Any
    sha256: str  # of the weights ("random:<seed>" for the random test autoencoders)

    @property
    def identity(self) -> str:
        """What the pixels depend on besides the image: the weights and this code's version."""
        return f"{self.sha256}:v{VERSION}"

    def __call__(self, image: np.ndarray) -> np.ndarray:
        import torch

        height, width = image.shape[:2]
        pad_h, pad_w = -height % self.factor, -width % self.factor
        padded = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="symmetric") if pad_h or pad_w else image
        x = torch.from_numpy(np.array(padded)).permute(2, 0, 1)[None].float().div(255.0).mul(2).sub(1)
        with torch.no_grad():
            rec = reconstruct(self.model, self.kind, x, None)  # KL: posterior mean (generators=None)
        out = (rec[0] / 2 + 0.5).clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        return np.ascontiguousarray(out[:height, :width])


_LOADED: dict[str, Roundtrip] = {}
_LOCK = threading.Lock()


def load_roundtrip(name: str) -> Roundtrip:
    """The round trip through autoencoder ``name``, loaded once per process (weights resolved and hashed)."""
    with _LOCK:
        if name not in _LOADED:
            from bench.weights import resolve

            spec = AUTOENCODERS[name]
            if spec.component is None:
                path, sha256 = None, f"random:{INIT_SEED}"
            else:
                resolved = resolve(spec.component, progress=False)
                path, sha256 = resolved.path, resolved.sha256
            model = build_autoencoder(spec, path, INIT_SEED, "cpu")
            _LOADED[name] = Roundtrip(name, spec.kind, spec.factor, model, sha256)
        return _LOADED[name]


def describe(name: str) -> str:
    spec = AUTOENCODERS[name]
    weights = f"weights component {spec.component!r}" if spec.component else "random weights (tests)"
    sampling = "posterior mean" if spec.kind == KL else "deterministic"
    return f"{spec.description}, {weights}, {sampling}"
