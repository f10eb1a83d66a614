"""The shared, on-disk CLIP feature cache: each backbone's features computed once per image and cell.

:class:`ClipFeatures` turns an image set into ``encode_image`` embeddings
(float32, not normalised; each head normalises as its paper does), batched, with
the backbone's own preprocessing (open_clip's eval transform: bicubic resize of
the short side, centre crop, CLIP mean/std; ``crop="resize"``) or, with
``crop="native"``, the centre crop of the backbone's input size at native
resolution (zero-padded when smaller, :func:`bench.data.crops.centre_crop_pad`, as
UnivFD's evaluation), on the GPU under fp16 autocast when
there is one (``precision="auto"``; ``"fp32"`` keeps full precision there too, for a
released head that its authors ran on fp32 features). Every embedding goes into the cache (``ctx.cache``), so
all heads on one backbone share one forward pass per image and grid cell, and a
re-run computes none.

Two paths compute rows with the same code (:class:`PixelPreparation`, then
:meth:`ClipFeatures.encode`, then :meth:`ClipFeatures.add`): :meth:`ClipFeatures.images`
in this process (preparation in threads), and the runner's scoring stream, which
asks :meth:`ClipFeatures.lookup` what a cell lacks, prepares those images in its
worker processes and hands the rows back to the driver (:mod:`bench.run.clip_stream`).
Both batch the missing images of a pixel group in index order, so the rows agree
bit for bit.

Cache layout and keys. An embedding is identified by

* the backbone identity ``<backbone>@<weights sha256[:16] | random-s<seed>>-<fp32|fp16>-v<FEATURE_VERSION>``
  (random-init backbones depend on the seed; GPU fp16 features differ slightly
  from CPU fp32 ones, so they are kept apart), plus ``-native`` for the
  ``crop="native"`` preprocessing (below): heads share a forward pass only where
  their preprocessing coincides;
* the pixel group: everything in ``ImageSet.cell_key(i)`` after the content hash
  (``<perturbation>@<table>:<severity>``), plus the run seed for perturbed
  severities (the perturbation's randomness depends on it) and, for training
  views (augmentations), ``+<view>~s<seed>``;
* the image's content hash (sha256).

Files live at ``<cache>/clip_features/<identity>/<group>/<hash of keys>.npz``,
each holding up to :data:`CHUNK` rows (``keys`` = content hashes, ``feats``). A
lookup reads the ``keys`` of every file in the group folder (memoised in
process), loads the rows it needs and computes only the missing ones, so a
different test set in the same cell reuses every image it shares, a killed run
keeps the chunks it finished, and the number of files grows with (images /
CHUNK) per cell, not with images. Without a cache in ``ctx.cache`` features are
computed and not stored.

Text embeddings (captions, prompts) are cached the same way in the group
``text``, keyed by the sha256 of the text.

:data:`FORWARD` counts images through each backbone's image encoder, per
(identity, group, hash) and in total; :data:`TEXT_FORWARD` counts texts. Tests
assert with them that each image and cell costs one forward pass.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from bench.core.cache import Cache
from bench.core.detector import Detector, FitContext
from bench.core.hashing import stable_hash
from bench.core.rng import derive_rng
from bench.data.crops import centre_crop_pad, centre_crop_pad_tensor, shorter_side_size
from bench.nn.backbones import (OPENAI_MEAN, OPENAI_STD, BackboneSpec, ClipBackbone, backbone_weights, eval_transform,
                                get_backbone, load_backbone)


FEATURE_VERSION = "1"  # bump when preprocessing or what is stored changes
CROPS = ("resize", "native")  # the backbone's eval resize + centre crop, or a centre crop at native resolution
PRECISIONS = ("auto", "fp32")  # fp16 autocast on a GPU (fp32 on the CPU), or fp32 everywhere
CHUNK = 4096  # rows per cache file
NAMESPACE = "clip_features"


# --------------------------------------------------------------------------- forward-pass counters

FORWARD: Counter = Counter()  # (identity, group, hash) -> images through the image encoder
TEXT_FORWARD: Counter = Counter()  # (identity, text sha256) -> texts through the text encoder


def forward_passes(identity: str | None = None) -> int:
    """Images passed through a backbone's image encoder in this process (all backbones when None)."""
    return sum(n for (ident, *_), n in FORWARD.items() if identity is None or ident == identity)


def reset_counters() -> None:
    FORWARD.clear()
    TEXT_FORWARD.clear()


# --------------------------------------------------------------------------- views (training augmentations)


@dataclass(frozen=True)
class View:
    """A deterministic augmentation applied before preprocessing: ``fn(image_uint8_hwc, rng) -> image``.

    Its rng comes from (seed, "clip-view", name, image content hash), so a view's pixels, and
    therefore its cached embedding, are the same in every run with that seed.
    """

    name: str
    fn: Callable[[np.ndarray, np.random.Generator], np.ndarray]
    seed: int = 0


# --------------------------------------------------------------------------- differentiable preprocessing


def differentiable_pixels(image01, image_size: int, crop: str):
    """The CLIP input of one CHW image in [0, 1] as :class:`ClipFeatures` prepares it, differentiable (for
    white-box attacks): ``crop="native"`` the centre crop at native resolution (exactly the pixels of
    ``predict``), ``crop="resize"`` the short side resized to ``image_size`` then the centre crop (torch's
    antialiased bicubic approximates open_clip's PIL bicubic; exact when the short side is already
    ``image_size``), then the CLIP mean/std normalisation."""
    import torch
    from torch.nn import functional

    x = image01
    if crop == "resize" and min(x.shape[-2:]) != image_size:
        x = functional.interpolate(x[None], size=shorter_side_size(*x.shape[-2:], image_size), mode="bicubic",
                                   antialias=True, align_corners=False)[0]
    x = centre_crop_pad_tensor(x, image_size)
    mean, std = (torch.tensor(v).to(x)[:, None, None] for v in (OPENAI_MEAN, OPENAI_STD))
    return (x - mean) / std


# --------------------------------------------------------------------------- pixels and lookups


@dataclass(frozen=True)
class PixelPreparation:
    """One image (uint8 HWC, after any view) to the backbone's input tensor: the native centre crop when
    ``crop="native"``, then the eval transform (:func:`bench.nn.backbones.eval_transform`). The same code
    for in-process extraction and the scoring stream's worker processes; picklable, loads no model."""

    spec: BackboneSpec
    crop: str

    def __call__(self, image: np.ndarray):
        from PIL import Image

        if self.crop == "native":
            image = centre_crop_pad(image, self.spec.image_size)
        return eval_transform(self.spec)(Image.fromarray(np.ascontiguousarray(image)))


@dataclass
class Lookup:
    """An image set's rows as far as the cache has them (:meth:`ClipFeatures.lookup`): per pixel group, the
    (index, content hash) pairs, the rows found by hash and the missing hashes with the first index of each."""

    dim: int
    n: int
    where: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    found: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    missing: dict[str, dict[str, int]] = field(default_factory=dict)

    def matrix(self) -> np.ndarray:
        out = np.zeros((self.n, self.dim), dtype=np.float32)
        for group, pairs in self.where.items():
            for i, k in pairs:
                out[i] = self.found[group][k]
        return out


# --------------------------------------------------------------------------- the extractor


def _safe(text: str) -> str:
    clean = re.sub(r"[^A-Za-z0-9._@=+~-]", "_", text)
    return f"{clean[:80]}-{stable_hash(text, 8)}"


def pixel_group(images, i: int) -> str:
    """What, besides the content hash, decides the pixels of item i (see the module docstring)."""
    if getattr(images, "perturbation", "none") != "none" and getattr(images, "severity", 0) == 0:
        return "none@default:0"  # severity 0 is the identity: the clean pixels
    return images.cell_key(i).partition(":")[2]


class _GroupIndex:
    """Which cached file holds which key, for one group folder (files are immutable once written). Files are
    read through the cache, so an entry whose authentication tag fails is removed and its keys recomputed."""

    def __init__(self, cache: Cache, namespace: str):
        self.cache, self.namespace = cache, namespace
        self.folder = cache.root / namespace
        self.seen: set[str] = set()
        self.where: dict[str, tuple[str, int]] = {}

    def load(self, name: str) -> dict[str, np.ndarray] | None:
        """The arrays of the file ``name`` (``KEY.npz``), or None when it is gone or cannot be trusted."""
        return self.cache.load_arrays(self.namespace, name.removesuffix(".npz"))

    def refresh(self) -> None:
        if not self.folder.is_dir():
            return
        for entry in os.scandir(self.folder):
            if entry.name.endswith(".npz") and not entry.name.startswith(".") and entry.name not in self.seen:
                data = self.load(entry.name)
                if data is None or "keys" not in data:
                    continue  # unreadable or untrusted (removed): recompute what it held
                self.seen.add(entry.name)
                for row, key in enumerate(data["keys"].tolist()):
                    self.where.setdefault(key, (entry.name, row))

    def add(self, name: str, keys: Sequence[str]) -> None:
        self.seen.add(name)
        for row, key in enumerate(keys):
            self.where.setdefault(key, (name, row))

    def forget(self) -> None:
        self.seen.clear()
        self.where.clear()


_INDEXES: dict[Path, _GroupIndex] = {}
_INDEX_LOCK = threading.Lock()


def _index(cache: Cache, namespace: str) -> _GroupIndex:
    folder = cache.root / namespace
    with _INDEX_LOCK:
        idx = _INDEXES.get(folder)
        if idx is None:
            idx = _INDEXES[folder] = _GroupIndex(cache, namespace)
        return idx


class ClipFeatures:
    """Embeddings of one backbone, cached; the model is loaded only when something is missing."""

    def __init__(self, spec: BackboneSpec, path: Path | None, weights_sha: str, init_seed: int,
                 device: str = "cpu", cache: Cache | None = None, batch_size: int = 32, workers: int = 0,
                 progress: bool = False, crop: str = "resize", precision: str = "auto"):
        from bench.nn.training import resolve_device

        if crop not in CROPS:
            raise ValueError(f"unknown crop {crop!r} ({' or '.join(CROPS)})")
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r} ({' or '.join(PRECISIONS)})")
        self.spec, self.path, self.init_seed, self.crop = spec, path, int(init_seed), crop
        self.device = str(resolve_device(device))
        self.cache, self.batch_size, self.workers, self.progress = cache, max(1, batch_size), workers, progress
        weights = f"random-s{self.init_seed}" if weights_sha == "random" else weights_sha[:16]
        self.half = precision == "auto" and self.device.startswith("cuda")
        precision = "fp16" if self.half else "fp32"
        self.identity = f"{spec.name}@{weights}-{precision}-v{FEATURE_VERSION}" + ("-native" if crop == "native"
                                                                                   else "")

    @classmethod
    def for_detector(cls, detector: Detector, backbone: str, ctx: FitContext, init_seed: int,
                     crop: str = "resize", precision: str = "auto") -> "ClipFeatures":
        spec = get_backbone(backbone)
        path, sha = backbone_weights(detector, spec)
        return cls(spec, path, sha, init_seed, ctx.device, ctx.cache, ctx.batch_size, ctx.workers,
                   ctx.progress, crop, precision)

    # -- the model, on demand ---------------------------------------------------------------
    def backbone(self) -> ClipBackbone:
        return load_backbone(self.spec, self.path, self.init_seed, self.identity, self.device)

    def _autocast(self):
        import torch

        if self.half:
            return torch.autocast(device_type="cuda", dtype=torch.float16)
        return torch.autocast(device_type="cpu", enabled=False)

    # -- cache plumbing ---------------------------------------------------------------------
    def _namespace(self, group: str) -> str | None:
        if self.cache is None:
            return None
        return f"{NAMESPACE}/{_safe(self.identity)}/{_safe(group)}"

    def _lookup(self, group: str, keys: list[str]) -> dict[str, np.ndarray]:
        namespace = self._namespace(group)
        if namespace is None or not keys:
            return {}
        idx = _index(self.cache, namespace)  # type: ignore[arg-type]
        if any(k not in idx.where for k in keys):
            idx.refresh()
        by_file: dict[str, list[tuple[str, int]]] = {}
        for k in keys:
            if k in idx.where:
                name, row = idx.where[k]
                by_file.setdefault(name, []).append((k, row))
        out: dict[str, np.ndarray] = {}
        for name, pairs in by_file.items():
            data = idx.load(name)
            if data is None or "feats" not in data:  # removed, damaged or untrusted since indexed: recompute
                idx.forget()
                continue
            feats = data["feats"]
            for k, row in pairs:
                out[k] = feats[row]
        return out

    def _store(self, group: str, keys: list[str], feats: np.ndarray) -> None:
        namespace = self._namespace(group)
        if namespace is None or not keys:
            return
        name = stable_hash(sorted(keys), 24)
        self.cache.save_arrays(namespace, name, keys=np.array(keys, dtype=str),  # type: ignore[union-attr]
                               feats=np.ascontiguousarray(feats, dtype=np.float32))
        _index(self.cache, namespace).add(f"{name}.npz", keys)  # type: ignore[arg-type]

    # -- images -----------------------------------------------------------------------------
    def images(self, images, view: View | None = None) -> np.ndarray:
        """``encode_image`` embeddings [len(images), embed_dim] in input order (float32)."""
        lookup = self.lookup(images, view)
        for group, missing in lookup.missing.items():
            lookup.found[group].update(self._compute(images, group, missing, view))
        return lookup.matrix()

    def lookup(self, images, view: View | None = None) -> Lookup:
        """What the cache holds for ``images`` and what is missing, per pixel group (one row per content hash)."""
        groups: dict[str, list[int]] = {}
        for i in range(len(images)):
            group = pixel_group(images, i) + (f"+{view.name}~s{view.seed}" if view is not None else "")
            groups.setdefault(group, []).append(i)
        lookup = Lookup(self.spec.embed_dim, len(images))
        for group, idx in groups.items():
            keys = [images.hashes[i] for i in idx]
            lookup.where[group] = list(zip(idx, keys))
            lookup.found[group] = found = self._lookup(group, sorted(set(keys)))
            missing: dict[str, int] = {}
            for i, k in zip(idx, keys):
                if k not in found and k not in missing:
                    missing[k] = i
            if missing:
                lookup.missing[group] = missing
        return lookup

    def preparation(self) -> PixelPreparation:
        return PixelPreparation(self.spec, self.crop)

    def encode(self, x) -> np.ndarray:
        """``encode_image`` of a batch of prepared pixels (:class:`PixelPreparation`), float32 rows."""
        import torch

        bb = self.backbone()
        with torch.no_grad(), self._autocast():
            return bb.model.encode_image(x.to(bb.device, non_blocking=True)).float().cpu().numpy()

    def add(self, group: str, keys: list[str], feats: np.ndarray) -> None:
        """Newly computed rows: counted (:data:`FORWARD`) and stored in chunks of at most :data:`CHUNK`."""
        for k in keys:
            FORWARD[(self.identity, group, k)] += 1
        for start in range(0, len(keys), CHUNK):
            self._store(group, keys[start : start + CHUNK], feats[start : start + CHUNK])

    def _compute(self, images, group: str, missing: dict[str, int], view: View | None) -> dict[str, np.ndarray]:
        import torch
        from tqdm.auto import tqdm

        prepare = self.preparation()
        items = list(missing.items())
        result: dict[str, np.ndarray] = {}
        pending_keys: list[str] = []
        pending: list[np.ndarray] = []

        def prep(pair):
            image = images[pair[1]]
            if view is not None:
                image = view.fn(image, derive_rng(view.seed, "clip-view", view.name, images.hashes[pair[1]]))
            return prepare(image)

        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            bar = tqdm(total=len(items), desc=f"{self.spec.name} features", leave=False, disable=not self.progress)
            for start in range(0, len(items), self.batch_size):
                chunk = items[start : start + self.batch_size]
                feats = self.encode(torch.stack(list(pool.map(prep, chunk))))
                for (k, _), f in zip(chunk, feats):
                    result[k] = f
                    pending_keys.append(k)
                    pending.append(f)
                if len(pending_keys) >= CHUNK:
                    self.add(group, pending_keys, np.stack(pending))
                    pending_keys, pending = [], []
                bar.update(len(chunk))
            bar.close()
        if pending_keys:
            self.add(group, pending_keys, np.stack(pending))
        return result

    # -- texts ------------------------------------------------------------------------------
    def texts(self, texts: Sequence[str]) -> np.ndarray:
        """``encode_text`` embeddings [len(texts), embed_dim] (float32); texts longer than the context are cut."""
        import torch

        n = len(texts)
        out = np.zeros((n, self.spec.embed_dim), dtype=np.float32)
        if n == 0:
            return out
        keys = [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in texts]
        found = self._lookup("text", sorted(set(keys)))
        missing: dict[str, str] = {}
        for k, t in zip(keys, texts):
            if k not in found:
                missing.setdefault(k, t)
        if missing:
            bb = self.backbone()
            todo = list(missing.items())
            new_keys, new_feats = [], []
            for start in range(0, len(todo), max(self.batch_size, 64)):
                chunk = todo[start : start + max(self.batch_size, 64)]
                tokens = bb.tokenizer([t for _, t in chunk]).to(bb.device)
                with torch.no_grad(), self._autocast():
                    feats = bb.model.encode_text(tokens).float().cpu().numpy()
                for (k, _), f in zip(chunk, feats):
                    found[k] = f
                    TEXT_FORWARD[(self.identity, k)] += 1
                    new_keys.append(k)
                    new_feats.append(f)
            self._store("text", new_keys, np.stack(new_feats))
        for i, k in enumerate(keys):
            out[i] = found[k]
        return out
