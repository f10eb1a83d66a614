"""One layer of LPIPS (VGG, v0.1): the distance AEROBLADE uses.

LPIPS (Zhang et al. 2018) compares two images in [-1, 1] layer by layer: the
input is shifted and scaled (``ScalingLayer``), passed through the VGG-16
trunk, each layer's activations are unit-normalised over channels, the
squared difference is weighted per channel by a learned 1x1 convolution
(``lin_k``, no bias, non-negative weights) and averaged over the spatial map;
LPIPS proper sums the five layers. AEROBLADE (Ricker et al. 2024, their
``lpips_vgg_2``) keeps only the second term, the one on ``relu2_2`` (128
channels, half resolution):

    d(x, y) = mean_{h,w} sum_c w_c (f_c(x)/|f(x)| - f_c(y)/|f(y)|)^2,  f = relu2_2 activations

with ``|f| = sqrt(sum_c f_c^2) + 1e-10`` per position (``lpips.normalize_tensor``).

Everything here comes from the ``lpips`` package (trunk slicing, scaling
layer, normalisation, the v0.1 linear weights that ship inside the package);
only the forward pass stops after the layer asked for, so the three deeper
VGG slices are never run. The VGG-16 backbone is not downloaded by lpips:
``lpips.LPIPS(pnet_rand=True)`` builds it randomly initialised and
:func:`load_vgg16_features` copies a torchvision VGG-16 state dict (the
resolved ``lpips_vgg`` weights component) into it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

#: lpips' VGG slices as ranges of torchvision's ``vgg16().features`` indices (lpips/pretrained_networks.py).
VGG_SLICES = ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30))
#: Channels of the five LPIPS VGG layers (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3).
VGG_CHANNELS = (64, 128, 256, 512, 512)


def lin_weights_path() -> Path:
    """The LPIPS v0.1 VGG linear-layer weights that ship inside the lpips package."""
    import lpips

    return Path(os.path.dirname(lpips.__file__)) / "weights" / "v0.1" / "vgg.pth"


def build_lpips(vgg_state: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """``lpips.LPIPS(net="vgg")`` with the package's linear layers and, if given, a VGG-16 state dict as trunk.

    Without ``vgg_state`` the trunk stays randomly initialised (torch's global RNG: seed it around
    this call for a reproducible trunk). Nothing is downloaded either way.
    """
    import lpips

    with warnings.catch_warnings():  # lpips passes torchvision's deprecated pretrained=False
        warnings.simplefilter("ignore")
        model = lpips.LPIPS(net="vgg", version="0.1", lpips=True, pretrained=True, pnet_rand=True,
                            model_path=str(lin_weights_path()), verbose=False)
    if vgg_state is not None:
        load_vgg16_features(model.net, vgg_state)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def load_vgg16_features(trunk: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy torchvision VGG-16 weights into lpips' sliced trunk.

    Accepts a whole ``vgg16()`` state dict (``features.<i>.weight``/``.bias``, classifier ignored) or one
    of ``vgg16().features`` alone (``<i>.weight``/``.bias``, e.g. the shared ``vgg16_features.pth``).
    lpips stores ``features[i]`` as ``slice<k>.<i>`` (module names keep torchvision's index), so
    ``features.5.weight`` becomes ``slice2.5.weight``. Every convolution of the trunk must be covered.
    """
    prefix = "features." if any(k.startswith("features.") for k in state) else ""
    mapped: dict[str, torch.Tensor] = {}
    for k, (lo, hi) in enumerate(VGG_SLICES, start=1):
        for i in range(lo, hi):
            for kind in ("weight", "bias"):
                src = f"{prefix}{i}.{kind}"
                if src in state:
                    mapped[f"slice{k}.{i}.{kind}"] = state[src]
    expected = set(trunk.state_dict())
    missing = sorted(expected - set(mapped))
    if missing:
        raise ValueError(f"not a torchvision VGG-16 state dict: {len(missing)} trunk tensors missing "
                         f"(e.g. features.{missing[0].split('.', 1)[1]})")
    trunk.load_state_dict(mapped, strict=True)


def feature_distance(f0: torch.Tensor, f1: torch.Tensor, lin: nn.Module) -> torch.Tensor:
    """LPIPS' per-layer term on given activations (N, C, H, W): spatial mean of lin((n(f0) - n(f1))^2) -> (N,)."""
    import lpips

    diff = (lpips.normalize_tensor(f0) - lpips.normalize_tensor(f1)) ** 2
    return lpips.spatial_average(lin(diff), keepdim=False).flatten()


class LPIPSLayer(nn.Module):
    """The LPIPS VGG term of one layer (1-based: 2 = relu2_2, AEROBLADE's choice), spatially averaged.

    ``forward(x, y)`` takes two batches (N, 3, H, W) in [-1, 1] and returns (N,) distances; it equals
    ``lpips.LPIPS(net="vgg")(x, y, retPerLayer=True)[1][layer - 1]`` flattened.
    """

    def __init__(self, lpips_model: nn.Module, layer: int = 2):
        super().__init__()
        if not 1 <= layer <= len(VGG_SLICES):
            raise ValueError(f"LPIPS VGG layer must be 1..{len(VGG_SLICES)}, got {layer}")
        self.layer = layer
        self.scaling = lpips_model.scaling_layer
        self.slices = nn.ModuleList([getattr(lpips_model.net, f"slice{k}") for k in range(1, layer + 1)])
        self.lin = lpips_model.lins[layer - 1]
        self.eval()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.scaling(x)
        for s in self.slices:
            h = s(h)
        return h

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape:
            raise ValueError(f"LPIPS needs equal shapes, got {tuple(x.shape)} and {tuple(y.shape)}")
        f = self.features(torch.cat([x, y]))
        return feature_distance(f[: len(x)], f[len(x):], self.lin)
