"""AEROBLADE (Ricker, Lukovnikov & Fischer, CVPR 2024): training-free detection by autoencoder reconstruction.

An image made by a latent diffusion model was decoded by that model's
autoencoder, so the autoencoder reconstructs it better than it reconstructs a
real photograph. For each autoencoder ``AE`` the detector computes

    d_AE(x) = LPIPS_2(x, AE(x))          AE(x) = decode(encode(x)), x in [-1, 1]

where ``LPIPS_2`` is the LPIPS (VGG, v0.1) term of the second VGG layer
(relu2_2), spatially averaged (:mod:`baselines.lpips_layer`); the score is
``max_AE(-d_AE(x))`` (higher = more likely generated). Variants:

=================  ====================================================
``aeroblade``      SD 1 VAE, SD 2 VAE and Kandinsky 2.1 MoVQ (the paper's set)
``aeroblade.sd1``  Stable Diffusion 1.x VAE only (``sd_vae_sd1``)
``aeroblade.sd2``  Stable Diffusion 2 VAE only (``sd_vae_sd2``)
``aeroblade.kd21`` Kandinsky 2.1 MoVQ only (``kandinsky21_movq``), decoded without quantisation
``aeroblade.taef2`` the tiny FLUX.2 autoencoder TAEF2 (``taef2``, 5 MB; deterministic, runs on a CPU);
                   likewise ``aeroblade.taef1``, ``.taesd3``, ``.taesdxl``, ``.taesd`` (TAESD family)
``test_aeroblade`` two tiny randomly initialised autoencoders + random VGG trunk (tests only)
=================  ====================================================

No training and no built-in threshold: scores are negated distances
(``outputs_probability=False``), so the runner reports no 0.5-threshold
metrics; it fixes a threshold at 95% TNR on the clean real validation images
and applies it to every cell (``acc_at_val_threshold``), next to AP, ROC-AUC and
TPR at 5% FPR.

Follows the reference implementation (github.com/jonasricker/aeroblade) in:
the KL autoencoders' latent is a *sample* of the posterior (``retrieve_latents``
with a generator), the MoVQ latent is decoded with ``force_not_quantize=True``;
the reconstruction is clamped to [0, 1] and quantised to 8 bits as
``x.mul(255).byte()`` (the reference saves it as PNG through torchvision's
``to_pil_image`` and reads it back); LPIPS gets both images in [-1, 1].

Departures, all recorded in :meth:`Aeroblade.config`:

- **Seeding.** The reference draws all posterior samples from one generator
  seeded once per dataset, so a sample depends on the image's position. Here
  each image draws from its own ``torch.Generator`` seeded by
  (run seed, autoencoder, image content hash): the noise does not depend on
  the order, batch or device, and the clean and perturbed versions of an
  image share their noise. ``sample_latents=False`` uses the posterior mean instead.
- **Sizes.** Images keep their own size (no resize: resampling would destroy
  the very traces AEROBLADE measures); images of different sizes are batched
  by size. Each image is centre-cropped so that both sides are multiples of
  the autoencoder's downsampling factor (8 for all three; at most 7 pixels
  lost per side) and at most ``max_side`` (default 1024, the largest size in
  the paper's evaluation, Midjourney's 1024x1024). Larger images are thus
  measured on their central ``max_side`` x ``max_side`` window; the distance
  is a spatial mean, so the window estimates the whole image's distance.
  Cropping instead of padding keeps every measured pixel a real pixel.
  Every cache entry records the original size and the crop box.
- **Precision.** Everything runs in float32 from the full-precision weight files
  (the reference loads the ``fp16`` weight variant, runs the MoVQ in float16, upcasts
  the SD VAEs to float32 and stores distances in float16). Expected effect: distances
  differ in the third or fourth digit; rankings essentially the same.
- **SD 1 VAE.** ``sd_vae_sd1`` is the VAE of ``CompVis/stable-diffusion-v1-4``; the
  reference loads ``CompVis/stable-diffusion-v1-1``'s. The SD 1.x checkpoints share one
  autoencoder, so no effect is expected (not checked here by hash).

Caching (``ctx.cache``, a :class:`bench.core.cache.Cache`): one entry per
(autoencoder, image cell) in namespace ``aeroblade_dist`` holding the distance,
the original size and the crop box, under the key

    stable_hash(["aeroblade.dist", rec_key, lpips_identity])
    rec_key = stable_hash(["aeroblade.rec", version, AE name + kind + weights sha256 (or "random" + init
                           seed + architecture), crop rule (factor, max_side), sampling (sample|mode, run seed),
                           "float32", images.cell_key(i)])

``cell_key(i)`` is the image's content hash plus perturbation table and
severity, so a rerun, another variant sharing an autoencoder (``aeroblade`` and
``aeroblade.sd1``), or a new perturbation only computes what is missing. With
``cache_reconstructions=True`` the 8-bit reconstruction itself is also kept
(namespace ``aeroblade_rec``, key ``rec_key``, up to 3 MB per image and
autoencoder at 1024 px): a change of the LPIPS backbone then reuses the
reconstructions. It is off by default because the distances are what saves the
work and reconstructions of a whole grid are large.

Scored through the runner's stream: the crops are the preparation (worker processes, which also
pass each image's content hash and cell key), ``forward_batch`` gives a batch's distances to every
autoencoder (cache first, then the missing ones computed and stored as above), ``finish`` takes the
max. ``predict`` is the same pieces in this process and, when every distance of the set is cached,
reads only the cache (no image decoded, no model loaded); the stream always decodes and crops.

Pretrained components (resolved by the runner, never downloaded here):
``sd_vae_sd1`` (335 MB), ``sd_vae_sd2`` (335 MB), ``kandinsky21_movq`` (271 MB),
``lpips_vgg`` (torchvision VGG-16, 528 MB); LPIPS' linear layers (7 kB) ship
inside the ``lpips`` package. With ``--random-weights`` a missing autoencoder is
built from its published architecture with random weights (smoke runs only).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import Any, Iterable

import numpy as np

from baselines.aeroblade_models import (
    AUTOENCODERS,
    KL,
    TINY,
    AutoencoderSpec,
    build_autoencoder,
    crop_box,
    max_over_autoencoders,
    pixel_batches,
    quantize_reconstruction,
    reconstruct,
    seed_int,
    shared_model,
    to_model_input,
)
from bench.core.detector import Detector, DetectorInfo, FitContext, Prediction, Preparation, rows_in_process
from bench.core.errors import BenchError
from bench.core.hashing import sha256_file, stable_hash
from bench.data.imageset import ImageSet

log = logging.getLogger(__name__)

DIST_NAMESPACE = "aeroblade_dist"
REC_NAMESPACE = "aeroblade_rec"
DTYPE = "float32"

#: Keyword arguments that change how fast scores are computed, never which scores: left out of config().
_NON_SEMANTIC = ("batch_pixels", "cache_reconstructions")


# --------------------------------------------------------------------------- the detector


class Aeroblade(Detector):
    info = DetectorInfo(
        family="reconstruction",
        paper="Ricker, Lukovnikov & Fischer 2024, AEROBLADE: Training-Free Detection of Latent Diffusion Images "
              "Using Autoencoder Reconstruction Error (CVPR)",
        trains=False, weights=("sd_vae_sd1", "sd_vae_sd2", "kandinsky21_movq", "lpips_vgg"), gpu="recommended",
        tasks=("binary",), outputs_probability=False,
        notes="score = max over autoencoders of -LPIPS_vgg layer 2 (x, AE(x)); per-image seeded posterior sample; "
              "centre crop to multiples of 8 and at most max_side (default 1024) instead of whole images of one "
              "size; float32 throughout (reference: fp16 weight files, MoVQ in fp16); SD 1 VAE of v1-4 (reference: "
              "v1-1, the same autoencoder). Only sees generators whose autoencoder resembles the ones it uses.",
    )
    version = "1"

    def __init__(self, autoencoders: Iterable[str] = ("sd1", "sd2", "kd21"), layer: int = 2, max_side: int = 1024,
                 sample_latents: bool = True, lpips_backbone: str = "lpips_vgg", init_seed: int = 0,
                 cache_reconstructions: bool = False, batch_pixels: int = 1 << 20):
        autoencoders = tuple(autoencoders)
        unknown = [a for a in autoencoders if a not in AUTOENCODERS]
        if not autoencoders or unknown:
            raise BenchError(f"aeroblade: unknown autoencoder(s) {', '.join(unknown) or '(none given)'}; "
                             f"known: {', '.join(AUTOENCODERS)}")
        if len(set(autoencoders)) != len(autoencoders):
            raise BenchError("aeroblade: an autoencoder is listed twice")
        if not 1 <= int(layer) <= 5:
            raise BenchError(f"aeroblade: LPIPS VGG layer must be 1..5, got {layer}")
        if int(max_side) < 16:
            raise BenchError(f"aeroblade: max_side must be at least 16 pixels, got {max_side}")
        if int(batch_pixels) < 1:
            raise BenchError("aeroblade: batch_pixels must be positive")
        super().__init__(autoencoders=autoencoders, layer=int(layer), max_side=int(max_side),
                         sample_latents=bool(sample_latents), lpips_backbone=lpips_backbone,
                         init_seed=int(init_seed), cache_reconstructions=bool(cache_reconstructions),
                         batch_pixels=int(batch_pixels))
        self.specs = [AUTOENCODERS[a] for a in autoencoders]
        self.layer, self.max_side = int(layer), int(max_side)
        self.sample_latents, self.lpips_backbone = bool(sample_latents), lpips_backbone
        self.init_seed = int(init_seed)
        self.cache_reconstructions, self.batch_pixels = bool(cache_reconstructions), int(batch_pixels)
        self._reset_runtime()

    # -- runtime state (models, counters) is never pickled into the runner's fit cache ------------
    def _reset_runtime(self) -> None:
        self._models: dict[str, Any] = {}
        self._lpips = None
        self._device: str | None = None
        self._identities: dict[str, Any] = {}
        self.stats = {"reconstructions": 0, "reconstructions_cached": 0, "distances": 0, "distances_cached": 0,
                      "cropped_to_max_side": 0}
        self.last_distances: dict[str, np.ndarray] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in ("_models", "_lpips", "_device", "_identities", "stats", "last_distances"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_runtime()

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        cfg["params"] = {k: v for k, v in self.params.items() if k not in _NON_SEMANTIC}
        cfg["processing"] = {
            "crop": f"centre crop, sides <= {self.max_side} px and multiples of the autoencoder's factor",
            "factors": {s.name: s.factor for s in self.specs},
            "latent": ("deterministic encoder output (tiny autoencoder)" if all(s.kind == TINY for s in self.specs)
                       else "posterior sample, torch.Generator seeded by (run seed, autoencoder, image sha256)"
                       if self.sample_latents else "posterior mean"),
            "reconstruction": "clamp [0, 1], x.mul(255).byte()", "dtype": DTYPE,
            "distance": f"LPIPS v0.1 VGG layer {self.layer}, spatial mean; score = max over AEs of -distance",
        }
        return cfg

    def fit(self, train: ImageSet, val: ImageSet, ctx: FitContext) -> None:
        """Training-free: nothing to fit (the runner sets the 95%-TNR threshold on clean validation reals)."""

    # -- identities (cache keys) --------------------------------------------------------------------
    def _component_identity(self, component: str | None) -> dict[str, Any]:
        if component is None:
            return {"random": True, "init_seed": self.init_seed}
        record = self.weights_provenance.get(component)
        if record is None:
            self.weight_path(component)  # raises the standard "not resolved by the runner" error
        if record.get("random"):
            return {"random": True, "init_seed": self.init_seed}
        return {"sha256": record["sha256"]}

    def ae_identity(self, spec: AutoencoderSpec) -> dict[str, Any]:
        if spec.name not in self._identities:
            ident = {"ae": spec.name, "kind": spec.kind, "weights": self._component_identity(spec.component)}
            if ident["weights"].get("random"):
                ident["architecture"] = stable_hash(spec.config)
            self._identities[spec.name] = ident
        return self._identities[spec.name]

    def lpips_identity(self) -> dict[str, Any]:
        if "lpips" not in self._identities:
            from baselines.lpips_layer import lin_weights_path

            backbone = (self._component_identity(None) if self.lpips_backbone == "random"
                        else self._component_identity(self.lpips_backbone))
            self._identities["lpips"] = {"net": "vgg", "version": "0.1", "layer": self.layer, "backbone": backbone,
                                         "lin_sha256": sha256_file(str(lin_weights_path()))}
        return self._identities["lpips"]

    def rec_key(self, spec: AutoencoderSpec, cell_key: str, seed: int) -> str:
        sampling = {"mode": "sample", "seed": int(seed)} if self.sample_latents and spec.kind == KL else \
            {"mode": {KL: "mean", TINY: "deterministic"}.get(spec.kind, "vq-unquantised")}
        return stable_hash(["aeroblade.rec", self.version, self.ae_identity(spec),
                            {"factor": spec.factor, "max_side": self.max_side}, sampling, DTYPE, cell_key])

    def dist_key(self, rec_key: str) -> str:
        return stable_hash(["aeroblade.dist", rec_key, self.lpips_identity()])

    # -- models -------------------------------------------------------------------------------------------
    def _load_models(self, device: str) -> None:
        """Load (or share) the autoencoders and the LPIPS layer on ``device``.

        Loaded models are shared through a weak memo keyed by their identity and device, so the four
        published variants in one run hold one copy of each autoencoder; they are freed with the last
        detector that uses them.
        """
        if self._device != device:
            self._models, self._lpips, self._device = {}, None, device
        for spec in self.specs:
            if spec.name not in self._models:
                self._models[spec.name] = shared_model(["ae", self.ae_identity(spec), device],
                                                  lambda spec=spec: self._build_autoencoder(spec, device))
        if self._lpips is None:
            self._lpips = shared_model(["lpips", self.lpips_identity(), device], lambda: self._build_lpips(device))

    def _build_autoencoder(self, spec: AutoencoderSpec, device: str):
        path = None if spec.component is None else self.weight_path(spec.component)
        return build_autoencoder(spec, path, self.init_seed, device)

    def _build_lpips(self, device: str):
        import torch

        from baselines.lpips_layer import LPIPSLayer, build_lpips
        from bench.nn.training import seeded_torch

        path = None if self.lpips_backbone == "random" else self.weight_path(self.lpips_backbone)
        if path is None:
            with seeded_torch(seed_int("aeroblade.lpips", self.init_seed)):
                model = build_lpips(None)
        else:
            model = build_lpips(torch.load(path, map_location="cpu", weights_only=True))
        return LPIPSLayer(model, self.layer).to(device)

    # -- scoring ---------------------------------------------------------------------------------------------
    # Streamed: the crops are the preparation (worker processes), forward_batch gives each image's distance
    # to every autoencoder (from the cache where present), finish takes the max; predict is the same pieces
    # in this process, and reads nothing but the cache when every distance of the set is there.
    def preparation(self) -> Preparation:
        factors = tuple(sorted({spec.factor for spec in self.specs}))
        return Preparation(("aeroblade.crops", factors, self.max_side), partial(_prepare, factors=factors,
                                                                                  max_side=self.max_side),
                           identified=True, collate=list)

    def predict(self, images: ImageSet, ctx: FitContext) -> Prediction:
        cached = self._cached([images.cell_key(i) for i in range(len(images))], ctx)
        if not np.isnan(cached).any():  # nothing to compute: no image decoded, no model loaded
            self.stats["distances_cached"] += cached.size
            return self.finish(cached.T)
        return self.finish(rows_in_process(self, images, ctx))

    def forward_batch(self, batch: list["_Prepared"], ctx: FitContext) -> np.ndarray:
        """(images, autoencoders) LPIPS layer distances of a batch, from the cache where present."""
        dist = self._cached([item.cell_key for item in batch], ctx)
        self.stats["distances_cached"] += int(np.isfinite(dist).sum())
        missing = [j for j in range(len(batch)) if np.isnan(dist[:, j]).any()]
        if missing:
            self._load_models(str(ctx.device))
            self._compute(batch, missing, dist, ctx)
        return dist.T

    def finish(self, rows: np.ndarray) -> Prediction:
        distances = np.asarray(rows, dtype=np.float64).reshape(-1, len(self.specs)).T
        self.last_distances = {s.name: distances[a] for a, s in enumerate(self.specs)}
        return Prediction(score=max_over_autoencoders(distances))

    def _cached(self, cell_keys: list[str], ctx: FitContext) -> np.ndarray:
        """(autoencoders, images) distances found in the run cache; NaN where missing."""
        cache = ctx.cache
        dist = np.full((len(self.specs), len(cell_keys)), np.nan)
        if cache is not None:
            for a, spec in enumerate(self.specs):
                for j, cell_key in enumerate(cell_keys):
                    hit = cache.load_arrays(DIST_NAMESPACE, self.dist_key(self.rec_key(spec, cell_key, ctx.seed)))
                    if hit is not None:
                        dist[a, j] = float(hit["distance"])
        return dist

    def _compute(self, batch: list["_Prepared"], missing: list[int], dist: np.ndarray, ctx: FitContext) -> None:
        """Fill the missing distances of ``batch``: per autoencoder, crops of one size in batches of at most
        ``batch_pixels`` pixels (the three published autoencoders share factor 8, hence one crop each)."""
        cache = ctx.cache
        self.stats["cropped_to_max_side"] += sum(max(batch[j].shape) > self.max_side for j in missing)
        for a, spec in enumerate(self.specs):
            groups: dict[tuple[int, int], list[_Prepared]] = {}
            for j in missing:
                if np.isnan(dist[a, j]):
                    groups.setdefault(batch[j].boxes[spec.factor][2:], []).append(j)
            for (h, w), members in groups.items():
                for part in pixel_batches(members, h * w, self.batch_pixels):
                    items = [batch[j] for j in part]
                    keys = [self.rec_key(spec, item.cell_key, ctx.seed) for item in items]
                    values = self._measure(spec, items, keys, cache, ctx)
                    for j, item, key, value in zip(part, items, keys, values):
                        dist[a, j] = value
                        if cache is not None:
                            cache.save_arrays(DIST_NAMESPACE, self.dist_key(key), distance=np.float64(value),
                                              shape=np.array(item.shape), box=np.array(item.boxes[spec.factor]))

    def _measure(self, spec: AutoencoderSpec, batch: list["_Prepared"], keys: list[str], cache,
                 ctx: FitContext) -> np.ndarray:
        """LPIPS layer distances between a same-size batch of crops and their reconstructions."""
        import torch

        device = str(ctx.device)
        x = to_model_input([item.crops[item.boxes[spec.factor]] for item in batch])
        rec_u8: list = [None] * len(batch)
        if cache is not None and self.cache_reconstructions:
            for j, key in enumerate(keys):
                hit = cache.load_arrays(REC_NAMESPACE, key)
                if hit is not None and tuple(hit["reconstruction"].shape) == tuple(x.shape[1:]):
                    rec_u8[j] = torch.from_numpy(hit["reconstruction"])
                    self.stats["reconstructions_cached"] += 1
        todo = [j for j in range(len(batch)) if rec_u8[j] is None]
        with torch.inference_mode():
            if todo:
                gens = None
                if spec.kind == KL and self.sample_latents:
                    gens = [torch.Generator(device="cpu").manual_seed(
                        seed_int("aeroblade.latent", ctx.seed, spec.name, batch[j].content_hash))
                        for j in todo]
                out = self._reconstruct(spec, x[todo].to(device), gens)
                out = quantize_reconstruction(out).cpu()
                self.stats["reconstructions"] += len(todo)
                for k, j in enumerate(todo):
                    rec_u8[j] = out[k]
                    if cache is not None and self.cache_reconstructions:
                        cache.save_arrays(REC_NAMESPACE, keys[j], reconstruction=out[k].numpy(),
                                          box=np.array(batch[j].boxes[spec.factor]))
            rec = torch.stack(rec_u8).float().div(255.0).mul(2.0).sub(1.0)
            values = self._lpips(x.to(device), rec.to(device)).double().cpu().numpy()
        self.stats["distances"] += len(batch)
        return values

    def _reconstruct(self, spec: AutoencoderSpec, x, generators):
        """One autoencoder pass (a method so tests can count or stub it)."""
        return reconstruct(self._models[spec.name], spec.kind, x, generators)


# --------------------------------------------------------------------------- the preparation


@dataclass
class _Prepared:
    """One image as AEROBLADE's forward pass takes it: its identity (the latent noise and the cache keys
    derive from it), its size, and its centre crop for each autoencoder factor (``boxes[factor]``: top,
    left, height, width; factors with the same box share one crop)."""

    content_hash: str
    cell_key: str
    shape: tuple[int, int]
    boxes: dict[int, tuple[int, int, int, int]]
    crops: dict[tuple[int, int, int, int], np.ndarray]


def _prepare(image: np.ndarray, content_hash: str, cell_key: str, factors: tuple[int, ...],
             max_side: int) -> _Prepared:
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise BenchError(f"aeroblade: expected RGB uint8 HWC images, got {arr.dtype} {arr.shape}")
    boxes = {factor: crop_box(*arr.shape[:2], factor, max_side) for factor in factors}
    crops = {box: np.ascontiguousarray(arr[box[0]:box[0] + box[2], box[1]:box[1] + box[3]])
             for box in set(boxes.values())}
    return _Prepared(content_hash, cell_key, arr.shape[:2], boxes, crops)
