"""The autoencoders AEROBLADE reconstructs with (:mod:`baselines.aeroblade`) and its pure helpers.

Architectures are diffusers config keys; the pretrained ones only build a randomly initialised
stand-in under ``--random-weights`` (a resolved component loads its own config.json), and the
``test_*`` ones are tiny, for tests. The helpers crop to the autoencoder's factor, reconstruct,
quantise like a saved image, take the max over autoencoders, and share built models in process.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from bench.core.errors import BenchError
from bench.core.hashing import stable_hash


KL, VQ, TINY = "kl", "vq", "tiny"  # diffusers AutoencoderKL, diffusers VQModel, a TAESD-family tiny autoencoder

# Architectures (diffusers config keys). The pretrained ones are only used to build a randomly initialised
# stand-in under --random-weights; a resolved component is loaded from its own config.json.
SD_VAE_CONFIG: dict[str, Any] = {  # CompVis/stable-diffusion-v1-4 and stabilityai/stable-diffusion-2-base "vae"
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32,
    "act_fn": "silu", "sample_size": 512, "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4, "up_block_types": ("UpDecoderBlock2D",) * 4,
}
MOVQ_CONFIG: dict[str, Any] = {  # kandinsky-community/kandinsky-2-1 "movq"
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32,
    "act_fn": "silu", "sample_size": 32, "norm_type": "spatial", "num_vq_embeddings": 16384, "vq_embed_dim": 4,
    "block_out_channels": (128, 256, 256, 512),
    "down_block_types": ("DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "AttnDownEncoderBlock2D"),
    "up_block_types": ("AttnUpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"),
}
TINY_KL_CONFIG: dict[str, Any] = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 1, "norm_num_groups": 8,
    "sample_size": 32, "block_out_channels": (16, 32),
    "down_block_types": ("DownEncoderBlock2D",) * 2, "up_block_types": ("UpDecoderBlock2D",) * 2,
}
TINY_VQ_CONFIG: dict[str, Any] = {  # SpatialNorm hard-codes 32 groups: channels are multiples of 32
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 1, "norm_num_groups": 8,
    "sample_size": 32, "norm_type": "spatial", "num_vq_embeddings": 12, "vq_embed_dim": 4,
    "block_out_channels": (32, 64),
    "down_block_types": ("DownEncoderBlock2D", "AttnDownEncoderBlock2D"),
    "up_block_types": ("AttnUpDecoderBlock2D", "UpDecoderBlock2D"),
}


def _tiny_config(name: str, latent_channels: int, midblock_gn: bool = False) -> dict[str, Any]:
    """A TAESD-family autoencoder (:mod:`baselines.tiny_autoencoder`); ``name`` is its weight files' prefix."""
    return {"files": name, "latent_channels": latent_channels, "midblock_gn": midblock_gn, "factor": 8}


@dataclass(frozen=True)
class AutoencoderSpec:
    """One autoencoder AEROBLADE can use: its weights component (None: always random) and its architecture."""

    name: str
    kind: str  # KL (diffusers AutoencoderKL), VQ (diffusers VQModel) or TINY (baselines.tiny_autoencoder)
    component: str | None
    config: dict[str, Any] = field(compare=False, hash=False)
    description: str = ""

    @property
    def factor(self) -> int:
        """Spatial downsampling factor: one halving per encoder block but the last (TAESD family: 8)."""
        if "factor" in self.config:
            return int(self.config["factor"])
        return 2 ** (len(self.config["block_out_channels"]) - 1)


AUTOENCODERS: dict[str, AutoencoderSpec] = {s.name: s for s in (
    AutoencoderSpec("sd1", KL, "sd_vae_sd1", SD_VAE_CONFIG, "Stable Diffusion 1.x VAE"),
    AutoencoderSpec("sd2", KL, "sd_vae_sd2", SD_VAE_CONFIG, "Stable Diffusion 2 VAE"),
    AutoencoderSpec("kd21", VQ, "kandinsky21_movq", MOVQ_CONFIG, "Kandinsky 2.1 MoVQ"),
    AutoencoderSpec("taesd", TINY, "taesd", _tiny_config("taesd", 4), "TAESD (tiny SD 1/2 VAE)"),
    AutoencoderSpec("taesdxl", TINY, "taesdxl", _tiny_config("taesdxl", 4), "TAESDXL (tiny SDXL VAE)"),
    AutoencoderSpec("taesd3", TINY, "taesd3", _tiny_config("taesd3", 16), "TAESD3 (tiny SD 3 VAE)"),
    AutoencoderSpec("taef1", TINY, "taef1", _tiny_config("taef1", 16), "TAEF1 (tiny FLUX.1 VAE)"),
    AutoencoderSpec("taef2", TINY, "taef2", _tiny_config("taef2", 32, True), "TAEF2 (tiny FLUX.2 VAE)"),
    AutoencoderSpec("test_kl", KL, None, TINY_KL_CONFIG, "tiny random AutoencoderKL (tests)"),
    AutoencoderSpec("test_vq", VQ, None, TINY_VQ_CONFIG, "tiny random VQModel, spatial norm (tests)"),
    AutoencoderSpec("test_tiny", TINY, None, _tiny_config("test_tiny", 4), "random TAESD-shaped autoencoder (tests)"),
)}


# --------------------------------------------------------------------------- pure helpers


def crop_box(height: int, width: int, factor: int, max_side: int) -> tuple[int, int, int, int]:
    """(top, left, h, w) of the centred crop AEROBLADE measures: sides <= max_side and multiples of factor."""
    h = min(height, max_side) // factor * factor
    w = min(width, max_side) // factor * factor
    if h < factor or w < factor:
        raise BenchError(f"aeroblade: a {height}x{width} image is smaller than the autoencoder's "
                         f"downsampling factor {factor}")
    return (height - h) // 2, (width - w) // 2, h, w


def max_over_autoencoders(distances: np.ndarray) -> np.ndarray:
    """AEROBLADE's rule: score = max over autoencoders (rows) of the negated distance = -min distance."""
    distances = np.asarray(distances, dtype=np.float64)
    if distances.ndim != 2 or distances.shape[0] == 0:
        raise ValueError("distances must be (autoencoders, images)")
    return (-distances).max(axis=0)


def to_model_input(images_u8: Iterable[np.ndarray]):
    """uint8 HWC images of one size -> float32 NCHW tensor in [-1, 1] (the reference: /255, then *2-1)."""
    import torch

    arr = np.stack([np.asarray(im) for im in images_u8])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div(255.0).mul(2.0).sub(1.0)


def quantize_reconstruction(rec):
    """Decoder output in [-1, 1] -> uint8 NCHW as the reference stores it: clamp to [0, 1], x.mul(255).byte()."""
    import torch

    return (rec / 2 + 0.5).clamp(0, 1).mul(255).to(torch.uint8)


def reconstruct(model, kind: str, x, generators=None):
    """decode(encode(x)) for x in [-1, 1] (N, 3, H, W); H, W multiples of the model's factor.

    KL: the latent is a posterior sample drawn with ``generators`` (one CPU ``torch.Generator`` per image),
    or the posterior mean when ``generators`` is None. VQ: the encoder output is decoded without quantisation.
    TINY: deterministic; the model works in [0, 1], so x is mapped there and the output back to [-1, 1].
    """
    if kind == TINY:
        return model((x + 1) / 2).mul(2).sub(1)
    if kind == KL:
        posterior = model.encode(x).latent_dist
        z = posterior.mode() if generators is None else posterior.sample(generator=list(generators))
        return model.decode(z).sample
    if kind == VQ:
        return model.decode(model.encode(x).latents, force_not_quantize=True).sample
    raise ValueError(f"unknown autoencoder kind {kind!r}")


def build_tiny(spec: AutoencoderSpec, path, init_seed: int, device: str):
    """A TAESD-family autoencoder: its two state dicts from folder ``path`` loaded strictly, or seeded random
    weights when ``path`` is None (``--random-weights``)."""
    from baselines.tiny_autoencoder import TinyAutoencoder
    from bench.nn.training import seeded_torch

    cfg = spec.config
    with seeded_torch(seed_int("aeroblade.init", init_seed, spec.name)):
        model = TinyAutoencoder(cfg["latent_channels"], cfg["midblock_gn"])
    if path is not None:
        model.load_folder(path, cfg["files"])
    return model.eval().requires_grad_(False).to(device)


def build_autoencoder(spec: AutoencoderSpec, path, init_seed: int, device: str):
    """Any autoencoder of :data:`AUTOENCODERS`, in eval mode without gradients, float32 on ``device``: loaded
    from the resolved component folder ``path``, or seeded random weights when ``path`` is None."""
    if spec.kind == TINY:
        return build_tiny(spec, path, init_seed, device)
    import torch
    from diffusers import AutoencoderKL, VQModel

    from bench.nn.training import seeded_torch
    from bench.weights import diffusers_variant

    cls = AutoencoderKL if spec.kind == KL else VQModel
    if path is None:
        with seeded_torch(seed_int("aeroblade.init", init_seed, spec.name)):
            model = cls(**spec.config)
    else:
        model = cls.from_pretrained(str(path), local_files_only=True, torch_dtype=torch.float32,
                                    variant=diffusers_variant(path))
        factor = 2 ** (len(model.config.block_out_channels) - 1)
        if factor != spec.factor:
            raise BenchError(f"aeroblade: {path} has downsampling factor {factor}, expected {spec.factor} "
                             f"for {spec.description}")
    model.eval().requires_grad_(False)
    return model.to(device)  # float32: built so, or loaded with torch_dtype


def seed_int(*parts: Any) -> int:
    return int(stable_hash(list(parts), 15), 16)


SHARED_MODELS: "weakref.WeakValueDictionary[str, Any]" = weakref.WeakValueDictionary()


def shared_model(identity: Any, build):
    """The model of that identity already loaded by another detector in this process, else ``build()``."""
    key = stable_hash(identity, 32)
    model = SHARED_MODELS.get(key)
    if model is None:
        model = build()
        SHARED_MODELS[key] = model
    return model


def pixel_batches(members: list, pixels_each: int, budget: int) -> Iterable[list]:
    per = max(1, budget // max(1, pixels_each))
    for start in range(0, len(members), per):
        yield members[start:start + per]
