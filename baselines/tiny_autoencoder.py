"""The TAESD family of tiny autoencoders (taesd, taesdxl, taesd3, taef1, taef2), written from their description.

Each is a pair of ``nn.Sequential`` modules whose state dicts the upstream project publishes as
``<name>_encoder.pth`` and ``<name>_decoder.pth`` (catalog kind ``"files"``, see
:mod:`bench.weights.catalog`). The layout, index by index, is what those state dicts hold:

- 3x3 convolutions, padding 1, 64 channels throughout;
- a residual :class:`Block` is three 3x3 convolutions with ReLUs between them, added to a skip (a 1x1
  convolution without bias where the channels change, else the identity), then a ReLU;
- the encoder: conv(3, 64), Block, then three times [conv stride 2 without bias, 3 Blocks], then a
  conv to the latent channels (8x downsampling);
- the decoder: a soft clamp ``tanh(x / 3) * 3``, conv(latent, 64), ReLU, then three times
  [3 Blocks, nearest upsampling x2, conv without bias], a Block and a conv to 3 channels;
- TAEF2 only: the Blocks at the lowest resolution (the encoder's last three, the decoder's first
  three) first add to their input a branch 1x1 conv to 4x the channels (no bias), GroupNorm with
  4 groups, ReLU, 1x1 conv back (no bias). The group norm takes its statistics over the whole
  image, so the branch carries global information into the block.

Input and output are in [0, 1] (no [-1, 1] scaling); the decoder's output is clamped to [0, 1].
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

WIDTH = 64
FACTOR = 8


def _conv(n_in: int, n_out: int, **kwargs) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, padding=1, **kwargs)


class SoftClamp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


class Block(nn.Module):
    """relu(conv3(relu(conv2(relu(conv1(x'))))) + skip(x')) with x' = x + gn_branch(x) when ``midblock_gn``."""

    def __init__(self, n_in: int, n_out: int, midblock_gn: bool = False):
        super().__init__()
        self.conv = nn.Sequential(_conv(n_in, n_out), nn.ReLU(), _conv(n_out, n_out), nn.ReLU(), _conv(n_out, n_out))
        self.skip = nn.Conv2d(n_in, n_out, 1, bias=False) if n_in != n_out else nn.Identity()
        self.fuse = nn.ReLU()
        self.pool = (nn.Sequential(nn.Conv2d(n_in, 4 * n_in, 1, bias=False), nn.GroupNorm(4, 4 * n_in), nn.ReLU(),
                                   nn.Conv2d(4 * n_in, n_in, 1, bias=False)) if midblock_gn else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + self.skip(x))


def build_encoder(latent_channels: int, midblock_gn: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = [_conv(3, WIDTH), Block(WIDTH, WIDTH)]
    for stage in range(3):
        gn = midblock_gn and stage == 2
        layers += [_conv(WIDTH, WIDTH, stride=2, bias=False), *(Block(WIDTH, WIDTH, gn) for _ in range(3))]
    layers.append(_conv(WIDTH, latent_channels))
    return nn.Sequential(*layers)


def build_decoder(latent_channels: int, midblock_gn: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = [SoftClamp(), _conv(latent_channels, WIDTH), nn.ReLU()]
    for stage in range(3):
        gn = midblock_gn and stage == 0
        layers += [*(Block(WIDTH, WIDTH, gn) for _ in range(3)), nn.Upsample(scale_factor=2),
                   _conv(WIDTH, WIDTH, bias=False)]
    layers += [Block(WIDTH, WIDTH), _conv(WIDTH, 3)]
    return nn.Sequential(*layers)


class TinyAutoencoder(nn.Module):
    """A TAESD-family autoencoder; :meth:`forward` is the round trip of an image batch in [0, 1]."""

    factor = FACTOR

    def __init__(self, latent_channels: int = 4, midblock_gn: bool = False):
        super().__init__()
        self.latent_channels = int(latent_channels)
        self.encoder = build_encoder(self.latent_channels, midblock_gn)
        self.decoder = build_decoder(self.latent_channels, midblock_gn)

    def load_folder(self, folder: str | Path, name: str) -> "TinyAutoencoder":
        """Load ``<name>_encoder.pth`` and ``<name>_decoder.pth`` from ``folder``, every key matched (strict)."""
        folder = Path(folder)
        for part, module in (("encoder", self.encoder), ("decoder", self.decoder)):
            state = torch.load(folder / f"{name}_{part}.pth", map_location="cpu", weights_only=True)
            module.load_state_dict(state, strict=True)
        return self

    def encode(self, x01: torch.Tensor) -> torch.Tensor:
        return self.encoder(x01)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z).clamp(0, 1)

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x01))
