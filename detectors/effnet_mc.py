"""``effnet_mc``: the multi-channel EfficientNet-B0 of team NYCU (Defactify 4).

ImageNet-pretrained EfficientNet-B0 (timm ``efficientnet_b0.ra_in1k``) whose stem
takes five channels instead of three: RGB, the grey reconstruction error
``|x - VAE(x)|`` of the Stable Diffusion (1.x) VAE, and the grey log-magnitude FFT
spectrum ``20 log|fftshift(fft2(grey))|`` (see :mod:`detectors.channels`). The
pretrained RGB filters of the stem are kept and each extra channel's filters
start as the mean of the RGB filters. Adam, lr 1e-4, cross-entropy; the epoch
kept is the one with the best validation F1 (macro F1 over the sources for
attribution). Variants with fewer channels (``effnet_mc.rgb``, ``.rgb_fft``,
``.rgb_err``) give the paper's ablation.

How it is computed here (and where that departs from, or adds to, the paper):

- Profiles: ``paper`` (the defaults) works at 512 x 512 as the original, batch 8,
  30 epochs without early stopping, the best validation F1 epoch kept; ``fast`` (a CPU
  smoke run): 224 px, batch 32, 3 epochs, the best kept.
- Everything happens at the network input size (``size``, paper 512): the image
  is resized (bilinear, antialiased), and the error and FFT channels are computed
  from that resized image. The error and FFT channels are always recomputed from
  the pixels the detector is given, so in a perturbed cell they come from the
  perturbed image.
- The VAE is deterministic here (the latent mode, not a sample), in fp32 even on a
  GPU. Its error maps are expensive (a full encoder + decoder pass per image), so
  each is computed once and cached in the run cache (``ctx.cache``,
  namespace ``effnet_mc_err``) under a key made of the VAE (its sha256, or the
  seed of a random one), the input size and ``images.cell_key(i)`` (image content
  hash + perturbation + table + severity, plus the perturbation seed): the
  channel is shared between ``effnet_mc`` and ``effnet_mc.rgb_err``, between
  refits, and between runs. Stored as float16 (about 100 kB per image at 224 px).
- Scored through the runner's stream: resizing, the FFT channel and the normalisation are the
  preparation (worker processes); the error channel (cache, else the VAE in batches of at most 16
  of the batch's missing maps) and the network run in ``forward_batch`` on the stream's batches of
  ``ctx.batch_size``; ``predict`` is the same pieces in this process, so both give the same numbers.
- A white-box attack target (``differentiable_score``): the same pieces in torch on one image (the
  resize, the VAE's error map, the FFT channel, the normalisation, the network), so its score is
  ``predict``'s. The error map is stored as float16, so :func:`error_maps` rounds it there and in the
  attack alike, with a straight-through gradient (the value is the rounded one, the gradient that of
  the unrounded map). Each attack step is a VAE encoder + decoder forward and backward pass at ``size``.
- Training augmentation is a horizontal flip of the whole stack (the error map
  flipped with the image, the spectrum computed from the flipped image), so the
  VAE runs once per training image rather than once per epoch. The paper's
  perturbation-aware augmentation is not reproduced.
- Normalisation: RGB with the ImageNet mean and std; the error and FFT channels
  are standardised with their mean and std over (up to 1000 of) the training
  images, kept with the fitted detector.
- One model serves both tasks by default (``task="attribution"``: classes are
  the training generators, "real" included; P(generated) = 1 - P(real)). With
  ``task="binary"`` it is trained on real/generated and selected by binary F1,
  as the paper's Task A model.
- Normalisation of the error and FFT channels: standardised with training-set
  statistics (the original's per-channel normalisation constants are not published
  in the write-up).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from sklearn.metrics import f1_score
from torch import nn
from tqdm.auto import tqdm

from bench.core.detector import Detector, DetectorInfo, FitContext, Prediction, Preparation, rows_in_process
from bench.core.errors import BenchError
from bench.core.hashing import stable_hash
from bench.data.imageset import ImageSet
from bench.weights import diffusers_variant, is_safetensors
from bench.nn.training import (
    CpuPickledModel,
    TrainConfig,
    batch_probs,
    macro_f1,
    resize_square,
    resize_to_tensor,
    resolve_device,
    seeded_torch,
    train_classifier,
)
from detectors.channels import CHANNEL_SETS, build_channels, reconstruction_error, vae_autoencoder

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BACKBONE_WEIGHTS = "effnet_b0"
VAE_WEIGHTS = "sd_vae_sd1"
ERR_NAMESPACE = "effnet_mc_err"
ERR_VERSION = "1"  # bump when the error channel's computation changes
STATS_IMAGES = 1000  # training images used for the extra channels' mean and std

#: diffusers AutoencoderKL configurations: the SD 1.x VAE's (for random initialisation with
#: --random-weights) and a tiny one for tests.
VAE_CONFIGS: dict[str, dict[str, Any]] = {
    "sd1": dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512),
                layers_per_block=2, act_fn="silu", latent_channels=4, norm_num_groups=32, sample_size=512,
                scaling_factor=0.18215),
    "tiny": dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                 up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), layers_per_block=1,
                 latent_channels=4, norm_num_groups=4, sample_size=32),
}


def adapt_stem_weight(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """(out, 3, k, k) pretrained RGB filters -> (out, in_chans, k, k): RGB kept, each extra channel = their mean."""
    if weight.shape[1] != 3:
        raise BenchError(f"expected a 3-channel stem, got weight of shape {tuple(weight.shape)}")
    extra = weight.mean(dim=1, keepdim=True).expand(-1, in_chans - 3, -1, -1)
    return torch.cat([weight, extra], dim=1).contiguous()


def load_state_dict_file(path) -> dict[str, torch.Tensor]:
    """A state dict from a safetensors file, or a torch .pth/.bin (possibly wrapped in 'state_dict'/'model').

    The format is read from the bytes, not the name: a hub cache blob has no suffix.
    """
    path = str(path)
    if is_safetensors(path):
        from safetensors.torch import load_file

        return load_file(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    return state


def load_pretrained_backbone(model: nn.Module, state: dict[str, torch.Tensor], in_chans: int,
                             stem: str = "conv_stem.weight", head: str = "classifier.") -> None:
    """Load ImageNet weights into a timm EfficientNet with ``in_chans`` inputs and a new head."""
    state = {k: v for k, v in state.items() if not k.startswith(head)}
    if stem not in state:
        raise BenchError(f"pretrained weights have no {stem!r}: not an EfficientNet state dict?")
    if in_chans != 3:
        state[stem] = adapt_stem_weight(state[stem], in_chans)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(head)]
    if missing or unexpected:
        raise BenchError(f"pretrained weights do not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}")


def error_maps(rgb01: torch.Tensor, reconstruct: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """The error maps as stored (float16 values in a float32 tensor): (B, 3, S, S) -> (B, S, S).

    The rounding is a straight-through estimator: the value is the float16 map (what ``predict`` reads
    from the cache), the gradient is the unrounded map's, so an attack sees ``predict``'s input exactly
    and still has a gradient to follow.
    """
    err = reconstruction_error(rgb01, reconstruct)[:, 0].float()
    return err + (err.half().float() - err).detach()


def binary_f1(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Validation metric of the binary model: F1 of the generated class (index 1) at the arg-max."""
    return float(f1_score(y_true, probs.argmax(axis=1), pos_label=1, zero_division=0))


class _Inputs:
    """What the training loop indexes: ``(image, error map or None)`` per item, with the items' hashes."""

    def __init__(self, images: ImageSet, indices, errors: list[np.ndarray] | None):
        self.images, self.indices, self.errors = images, list(indices), errors
        self.hashes = [images.hashes[i] for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, j: int):
        return self.images[self.indices[j]], None if self.errors is None else self.errors[j]


class EffNetMC(CpuPickledModel, Detector):
    info = DetectorInfo(
        family="cnn",
        paper="Yang et al. 2025, Team NYCU at Defactify4: Robust Detection and Source Identification of "
              "AI-Generated Images Using CNN and CLIP-Based Models",
        trains=True, weights=(BACKBONE_WEIGHTS, VAE_WEIGHTS), gpu="recommended", tasks=("binary", "attribution"),
        notes="paper: 512 px, batch 8, 30 epochs, best validation F1; deterministic VAE (latent mode), error maps "
              "cached; augmentation: horizontal flip only (the paper's perturbation-aware augmentation is not "
              "reproduced); extra channels standardised with training statistics (original constants unpublished); "
              "fast: 224 px, batch 32, 3 epochs",
    )
    version = "1"

    profiles = {"fast": {"size": 224, "epochs": 3, "batch_size": 32}}

    def __init__(self, channels: str = "rgb_err_fft", task: str = "attribution", size: int = 512,
                 epochs: int = 30, patience: int | None = None, lr: float = 1e-4, batch_size: int = 8,
                 arch: str = "efficientnet_b0", pretrained: bool = True, vae: str = "sd1",
                 cache_errors: bool = True):
        if channels not in CHANNEL_SETS:
            raise BenchError(f"effnet_mc: channels must be one of {', '.join(CHANNEL_SETS)}, got {channels!r}")
        if task not in ("attribution", "binary"):
            raise BenchError(f"effnet_mc: task must be 'attribution' or 'binary', got {task!r}")
        if vae not in VAE_CONFIGS:
            raise BenchError(f"effnet_mc: vae must be one of {', '.join(VAE_CONFIGS)}, got {vae!r}")
        if size % 8:
            raise BenchError(f"effnet_mc: size must be a multiple of 8 (the VAE's stride), got {size}")
        super().__init__(channels=channels, task=task, size=size, epochs=epochs, patience=patience, lr=lr,
                         batch_size=batch_size, arch=arch, pretrained=pretrained, vae=vae, cache_errors=cache_errors)
        self.channels, self.task, self.size, self.arch = channels, task, int(size), arch
        self.pretrained, self.vae_name, self.cache_errors = bool(pretrained), vae, bool(cache_errors)
        self.names = CHANNEL_SETS[channels]
        self.cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, optimizer="adam",
                               patience=epochs if patience is None else patience)
        self.model: nn.Module | None = None
        self.classes: list[str] = []  # attribution classes ("real" included); empty for the binary model
        self.labels: list[str] = []  # the model's output classes
        self.stats: dict[str, tuple[float, float]] = {}  # extra channel -> (mean, std) on the training images
        self.vae_seed = 0
        self.history: dict = {}
        self._vae = None  # loaded lazily, never pickled

    # -- pickling: the fitted detector is cached by the runner; the VAE is reloaded on demand ------------------
    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["_vae"] = None
        return state

    # -- models ------------------------------------------------------------------------------------------------
    def _build_model(self, n_classes: int) -> nn.Module:
        import timm

        in_chans = len(self.names)
        model = timm.create_model(self.arch, pretrained=False, num_classes=n_classes, in_chans=in_chans)
        path = self.weight_path(BACKBONE_WEIGHTS) if self.pretrained else None
        if path is not None:
            load_pretrained_backbone(model, load_state_dict_file(path), in_chans)
        return model

    def _vae_path(self):
        return self.weight_path(VAE_WEIGHTS) if self.pretrained else None

    def vae_id(self) -> str:
        """Identifies the autoencoder in the error cache: the weights' sha256, or a random one's config and seed."""
        if self._vae_path() is not None:
            return f"{VAE_WEIGHTS}:{self.weights_provenance[VAE_WEIGHTS].get('sha256')}"
        return f"random:{self.vae_name}:{self.vae_seed}"

    def _load_vae(self, device: torch.device):
        if self._vae is None:
            from diffusers import AutoencoderKL

            path = self._vae_path()
            if path is not None:
                vae = AutoencoderKL.from_pretrained(str(path), local_files_only=True, torch_dtype=torch.float32,
                                                    variant=diffusers_variant(path))
            else:
                with seeded_torch(self.vae_seed):
                    vae = AutoencoderKL(**VAE_CONFIGS[self.vae_name])
            self._vae = vae.eval().requires_grad_(False)
        return self._vae.to(device)

    # -- the error channel ---------------------------------------------------------------------------------------
    def _err_key(self, cell_key: str) -> str:
        return stable_hash([ERR_VERSION, self.vae_id(), self.size, cell_key])  # cell_key has the seed

    def _error_maps(self, keys: list[str], rgb: Callable[[list[int]], torch.Tensor], ctx: FitContext,
                    desc: str = "VAE errors") -> list[np.ndarray]:
        """The error maps (size x size, float16) of the images whose cache keys are ``keys``: from the cache,
        else computed by the VAE in batches of min(ctx.batch_size, 16) of the missing ones (and cached);
        ``rgb(positions)`` gives those images resized, (B, 3, size, size)."""
        cache = ctx.cache if self.cache_errors else None
        out: list[np.ndarray | None] = [None] * len(keys)
        for j, key in enumerate(keys):
            hit = cache.load_arrays(ERR_NAMESPACE, key) if cache is not None else None
            if hit is not None:
                out[j] = hit["err"]
        todo = [j for j, e in enumerate(out) if e is None]
        if todo:
            device = resolve_device(ctx.device)
            reconstruct = vae_autoencoder(self._load_vae(device))
            step = max(1, min(ctx.batch_size, 16))
            for start in tqdm(range(0, len(todo), step), desc=desc, leave=False,
                              disable=not ctx.progress or len(todo) <= step):
                batch = todo[start:start + step]
                with torch.no_grad():
                    err = error_maps(rgb(batch).to(device), reconstruct).half().cpu().numpy()
                for j, e in zip(batch, err):
                    out[j] = e
                    if cache is not None:
                        cache.save_arrays(ERR_NAMESPACE, keys[j], err=e)
        return out  # type: ignore[return-value]

    def errors(self, images: ImageSet, indices, ctx: FitContext, desc: str = "VAE errors") -> list[np.ndarray] | None:
        """The error maps of the training or validation images ``images[indices]`` (scoring computes them in
        forward_batch, on the stream's batches)."""
        if "err" not in self.names:
            return None
        indices = list(indices)
        return self._error_maps([self._err_key(images.cell_key(i)) for i in indices],
                                lambda js: torch.stack([resize_to_tensor(images[indices[j]], self.size) for j in js]),
                                ctx, desc)

    # -- input pipeline --------------------------------------------------------------------------------------------
    def raw_input(self, image: np.ndarray, err: np.ndarray | None, flip: bool = False) -> torch.Tensor:
        """The unnormalised C x size x size stack of one image (its error map computed at this size)."""
        rgb = resize_to_tensor(image, self.size)
        err_t = None if err is None else torch.from_numpy(np.asarray(err, dtype=np.float32))
        if flip:
            rgb = rgb.flip(-1)
            err_t = None if err_t is None else err_t.flip(-1)
        return build_channels(rgb, err_t, self.channels)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """The network's input from a raw (..., C, H, W) stack: RGB with the ImageNet mean and std, each extra
        channel with its training statistics (:meth:`standardise`). Out of place, so autograd passes through."""
        mean, std = (torch.tensor(v, dtype=x.dtype, device=x.device).view(3, 1, 1)
                     for v in (IMAGENET_MEAN, IMAGENET_STD))
        extra = [self.standardise(name, x[..., c:c + 1, :, :]) for c, name in enumerate(self.names[3:], start=3)]
        return torch.cat([(x[..., :3, :, :] - mean) / std, *extra], dim=-3)

    def standardise(self, name: str, channel: torch.Tensor) -> torch.Tensor:
        """An extra channel (``err`` or ``fft``) standardised with its mean and std over the training images."""
        mean, std = self.stats[name]
        return (channel - mean) / std

    def _transform(self, item, rng) -> torch.Tensor:
        image, err = item
        flip = rng is not None and rng.random() < 0.5
        return self.normalise(self.raw_input(image, err, flip))

    def _channel_stats(self, inputs: _Inputs) -> dict[str, tuple[float, float]]:
        extra = self.names[3:]
        if not extra:
            return {}
        picks = np.unique(np.linspace(0, len(inputs) - 1, min(len(inputs), STATS_IMAGES)).round().astype(int))
        sums = {n: np.zeros(2) for n in extra}
        count = 0
        for j in picks:
            x = self.raw_input(*inputs[int(j)]).double()
            for c, name in enumerate(extra, start=3):
                sums[name] += [float(x[c].sum()), float((x[c] ** 2).sum())]
            count += x[0].numel()
        stats = {}
        for name, (s, s2) in sums.items():
            mean = s / count
            std = float(np.sqrt(max(s2 / count - mean ** 2, 0.0)))
            stats[name] = (float(mean), std if std > 1e-6 else 1.0)
        return stats

    # -- the detector interface -------------------------------------------------------------------------------------
    def fit(self, train: ImageSet, val: ImageSet, ctx: FitContext) -> None:
        if self.task == "attribution":
            self.labels = sorted(set(train.generators))
            if "real" not in self.labels or len(self.labels) < 2:
                raise BenchError(f"{self.name}: training split needs real images and at least one generator")
            index = {c: i for i, c in enumerate(self.labels)}
            y_train = np.array([index[g] for g in train.generators])
            y_val_all = np.array([index.get(g, -1) for g in val.generators])
            self.classes = list(self.labels)
            select = macro_f1
        else:
            self.labels, self.classes = ["real", "generated"], []
            y_train, y_val_all = train.labels.copy(), val.labels.copy()
            select = binary_f1
        keep = [i for i, y in enumerate(y_val_all) if y >= 0]
        self.vae_seed = int(ctx.seed)
        train_in = _Inputs(train, range(len(train)), self.errors(train, range(len(train)), ctx, "VAE errors (train)"))
        val_in = _Inputs(val, keep, self.errors(val, keep, ctx, "VAE errors (val)"))
        self.stats = self._channel_stats(train_in)
        with seeded_torch(ctx.seed):
            self.model = self._build_model(len(self.labels))
            self.history = train_classifier(self.model, train_in, val_in, y_train, y_val_all[keep], self._transform,
                                            self.cfg, ctx, select=select, checkpoint=ctx.checkpoint)

    def fit_passes(self, n_train: int, n_val: int, n_classes: int) -> int:
        vae = 2 * (n_train + n_val) if "err" in self.names else 0  # the VAE's encoder and decoder once per image
        return self.cfg.passes(n_train, n_val) + vae

    # -- scoring: streamed (bench.run.stream); predict is the same pieces in this process ---------------------------
    def predict(self, images: ImageSet, ctx: FitContext) -> Prediction:
        return self.finish(rows_in_process(self, images, ctx))

    def preparation(self) -> Preparation:
        return Preparation((type(self).__qualname__, id(self)), self._prepare, identified=True)

    def _prepare(self, image: np.ndarray, content_hash: str, cell_key: str) -> dict[str, Any]:
        """The CPU part: the resized image and its normalised channel stack, the FFT channel included; the error
        channel (a placeholder here) is the VAE's work, done in forward_batch from ``rgb`` (cache key ``key``)."""
        rgb = resize_to_tensor(image, self.size)
        if "err" not in self.names:
            return {"x": self.normalise(build_channels(rgb, None, self.channels))}
        placeholder = torch.zeros(rgb.shape[-2:])
        return {"x": self.normalise(build_channels(rgb, placeholder, self.channels)), "rgb": rgb,
                "key": self._err_key(cell_key)}

    def forward_batch(self, batch: dict[str, Any], ctx: FitContext) -> np.ndarray:
        """Class probabilities of a batch: the error channel from the cache or the VAE, normalised as
        :meth:`normalise` does, then the network."""
        if self.model is None:
            raise BenchError(f"{self.name}: scored before fit()")
        x = batch["x"]
        if "err" in self.names:
            maps = self._error_maps(batch["key"], lambda js: batch["rgb"][js], ctx)
            err = torch.from_numpy(np.stack(maps).astype(np.float32))
            x[:, self.names.index("err")] = self.standardise("err", err)
        device = resolve_device(ctx.device)
        return batch_probs(self.model.eval().to(device), x, device, ctx.mixed_precision)

    def finish(self, rows: np.ndarray) -> Prediction:
        probs = np.asarray(rows).reshape(-1, len(self.labels))
        if self.task == "binary":
            return Prediction(score=self.p_generated(probs))
        return Prediction(score=self.p_generated(probs),
                          source=np.array(self.labels, dtype=object)[probs.argmax(axis=1)])

    def p_generated(self, probs):
        """The score from class probabilities (..., classes), NumPy or torch: P(generated) for the binary model,
        1 - P(real) for attribution."""
        return probs[..., 1] if self.task == "binary" else 1.0 - probs[..., self.labels.index("real")]

    # -- white-box attacks: the same pieces in torch, differentiable with respect to the pixels --------------------
    differentiable = True

    def differentiable_score(self, image01: torch.Tensor, caption: str | None = None) -> torch.Tensor:
        """``predict``'s score of one image (a probability): the resize, the error map through the VAE (rounded
        as stored, straight-through), the FFT channel, the normalisation and the network, all in torch."""
        if self.model is None:
            raise BenchError(f"{self.name}: differentiable_score() called before fit()")
        model = self.model.eval()
        device = next(model.parameters()).device
        rgb = resize_square(image01.to(device), self.size)
        err = None
        if "err" in self.names:
            err = error_maps(rgb[None], vae_autoencoder(self._load_vae(device)))[0]
        x = self.normalise(build_channels(rgb, err, self.channels))
        return self.p_generated(model(x[None]).float().softmax(dim=1)[0])
