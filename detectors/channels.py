"""Pure functions that build the extra input channels of ``effnet_mc`` (NYCU, Defactify 4).

The multi-channel EfficientNet sees, at its input size:

- ``rgb``: the resized image on [0, 1];
- ``err``: the grey reconstruction error ``grey(|x - AE(x)|)`` of an autoencoder
  (the Stable Diffusion VAE in the paper): generated images that came out of
  that decoder are reconstructed more faithfully than photographs;
- ``fft``: the grey log-magnitude spectrum ``20 ln(1 + |fftshift(fft2(grey))|)``
  of the image on the 0..255 scale (the paper's ``20 log|F|``; the ``1 +``
  keeps a zero coefficient finite instead of ``-inf``).

Everything here is a pure function of its inputs: the autoencoder is passed in
as a callable, so that tests can give a perfect one (the identity) and check
that the error channel is exactly zero. Grey is ITU-R BT.601 luma.
"""

from __future__ import annotations

from typing import Callable

import torch

#: BT.601 luma weights (what PIL's ``convert("L")`` and OpenCV's RGB2GRAY use).
LUMA = (0.299, 0.587, 0.114)

#: The channel sets of the paper's model and of its ablation, in stacking order.
CHANNEL_SETS: dict[str, tuple[str, ...]] = {
    "rgb": ("r", "g", "b"),
    "rgb_fft": ("r", "g", "b", "fft"),
    "rgb_err": ("r", "g", "b", "err"),
    "rgb_err_fft": ("r", "g", "b", "err", "fft"),
}

Autoencoder = Callable[[torch.Tensor], torch.Tensor]  # (B, 3, H, W) on [0, 1] -> reconstruction, same shape


def to_grey(x: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) -> (..., 1, H, W), BT.601 luma."""
    if x.shape[-3] != 3:
        raise ValueError(f"to_grey expects 3 channels in dimension -3, got shape {tuple(x.shape)}")
    w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x * w).sum(dim=-3, keepdim=True)


def fft_log_magnitude(grey: torch.Tensor) -> torch.Tensor:
    """``20 ln(1 + |fftshift(fft2(grey))|)`` over the last two dimensions (DC at (H // 2, W // 2)).

    ``grey`` is on the 0..255 scale. The result has the input's shape and is float32.
    """
    spectrum = torch.fft.fftshift(torch.fft.fft2(grey.to(torch.float64)), dim=(-2, -1))
    return (20.0 * torch.log1p(spectrum.abs())).to(torch.float32)


def fft_channel(rgb01: torch.Tensor) -> torch.Tensor:
    """The FFT channel of an image: (..., 3, H, W) on [0, 1] -> (..., 1, H, W)."""
    return fft_log_magnitude(to_grey(rgb01) * 255.0)


def reconstruction_error(rgb01: torch.Tensor, autoencoder: Autoencoder) -> torch.Tensor:
    """The error channel: ``grey(|x - AE(x)|)`` for a batch (B, 3, H, W) on [0, 1] -> (B, 1, H, W) on [0, 1].

    ``autoencoder`` maps a batch on [0, 1] to its reconstruction on [0, 1] (clamped here).
    A perfect autoencoder (the identity) gives exactly zero.
    """
    recon = autoencoder(rgb01).clamp(0.0, 1.0)
    if recon.shape != rgb01.shape:
        raise ValueError(f"autoencoder changed the shape {tuple(rgb01.shape)} -> {tuple(recon.shape)}")
    return to_grey((rgb01 - recon.to(rgb01.dtype)).abs())


def vae_autoencoder(vae) -> Autoencoder:
    """Wrap a diffusers ``AutoencoderKL`` as an :data:`Autoencoder` (deterministic: the latent mode, no sampling).

    The image goes in on [-1, 1] as the VAE was trained; the latent scaling factor cancels
    between encoding and decoding, so it is not applied.
    """

    def reconstruct(rgb01: torch.Tensor) -> torch.Tensor:
        latent = vae.encode(rgb01 * 2.0 - 1.0).latent_dist.mode()
        return (vae.decode(latent).sample + 1.0) / 2.0

    return reconstruct


def build_channels(rgb01: torch.Tensor, err: torch.Tensor | None, channels: str) -> torch.Tensor:
    """Stack the raw (unnormalised) input of one image: (3, H, W) on [0, 1] + (1, H, W) error -> (C, H, W).

    Order: R, G, B, then the error channel, then the FFT channel, as present in ``channels``.
    """
    names = CHANNEL_SETS[channels]
    parts = [rgb01]
    if "err" in names:
        if err is None:
            raise ValueError(f"channels {channels!r} need the reconstruction-error map")
        parts.append(err.reshape(1, *rgb01.shape[-2:]).to(rgb01.dtype))
    if "fft" in names:
        parts.append(fft_channel(rgb01).to(rgb01.dtype))
    return torch.cat(parts, dim=0)
