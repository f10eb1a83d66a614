"""Frozen CLIP backbones and their shared, on-disk feature cache.

Backbones are data (:data:`BACKBONES`): a name, the open_clip architecture, the
weights component it loads (bench/weights_catalog.py), its embedding width and
input size. ``test_*`` backbones carry an explicit small open_clip model config
and are always randomly initialised; they exist so that every CLIP detector can
be exercised in seconds on a CPU, and their numbers mean nothing.

:class:`ClipFeatures` turns an image set into ``encode_image`` embeddings
(float32, not normalised; each head normalises as its paper does), batched, with
the backbone's own preprocessing (open_clip's eval transform: bicubic resize of
the short side, centre crop, CLIP mean/std), on the GPU under fp16 autocast when
there is one. Every embedding goes into the cache (``ctx.extras["cache"]``), so
all heads on one backbone share one forward pass per image and grid cell, and a
re-run computes none.

Cache layout and keys. An embedding is identified by

* the backbone identity ``<backbone>@<weights sha256[:16] | random-s<seed>>-<fp32|fp16>-v<FEATURE_VERSION>``
  (random-init backbones depend on the seed; GPU fp16 features differ slightly
  from CPU fp32 ones, so they are kept apart);
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
CHUNK) per cell, not with images. Without a cache in ``ctx.extras`` features are
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
from collections import Counter, OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from bench.cache import Cache
from bench.detector import Detector, FitContext
from bench.errors import BenchError
from bench.hashing import stable_hash
from bench.registry import Registry
from bench.rng import derive_rng

FEATURE_VERSION = "1"  # bump when preprocessing or what is stored changes
CHUNK = 4096  # rows per cache file
NAMESPACE = "clip_features"

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


# --------------------------------------------------------------------------- backbones as data


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    arch: str  # open_clip architecture name
    component: str | None  # weights component (bench.weights_catalog); None: always random (test backbones)
    embed_dim: int  # width of encode_image / encode_text
    image_size: int
    model_cfg: dict | None = field(default=None, compare=False, hash=False)  # explicit open_clip config (tests)
    description: str = ""

    @property
    def test(self) -> bool:
        return self.name.startswith("test_")

    @property
    def context_length(self) -> int:
        return int((self.model_cfg or {}).get("text_cfg", {}).get("context_length", 77))


BACKBONES: Registry[BackboneSpec] = Registry("CLIP backbone")


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    if spec.component is None and not spec.test:
        raise BenchError(f"backbone {spec.name!r}: only test_* backbones may lack a weights component")
    BACKBONES.add(spec.name, spec, arch=spec.arch, component=spec.component)
    return spec


def get_backbone(name: str) -> BackboneSpec:
    return BACKBONES.get(name)


register_backbone(BackboneSpec("clip_vit_b16", "ViT-B-16", "clip_vit_b16", 512, 224,
                               description="OpenAI CLIP ViT-B/16"))
register_backbone(BackboneSpec("clip_vit_l14", "ViT-L-14", "clip_vit_l14", 768, 224,
                               description="OpenAI CLIP ViT-L/14"))
register_backbone(BackboneSpec(
    "test_tiny_clip", "test-tiny", None, 32, 32,
    model_cfg={"embed_dim": 32,
               "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 2, "head_width": 16},
               "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}},
    description="tiny randomly initialised CLIP (32 px, patch 8, width 32, 2 layers) for tests only"))


# --------------------------------------------------------------------------- loading


@dataclass
class ClipBackbone:
    """A loaded CLIP model with its eval preprocessing and tokenizer."""

    spec: BackboneSpec
    model: Any  # open_clip.CLIP, eval mode, frozen
    preprocess: Callable  # PIL image -> float tensor CHW
    tokenizer: Callable  # list[str] -> LongTensor [n, context_length]
    device: Any = None


def _build(spec: BackboneSpec, path: Path | None, seed: int) -> ClipBackbone:
    import open_clip

    from bench.training import seeded_torch
    from bench.weights_catalog import get_spec

    with seeded_torch(seed):
        if spec.model_cfg is not None:
            model = open_clip.CLIP(**spec.model_cfg, quick_gelu=True)
            preprocess = open_clip.image_transform(spec.image_size, is_train=False, mean=OPENAI_MEAN, std=OPENAI_STD)
            tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=spec.context_length)
        else:
            load = dict(get_spec(spec.component).load) if spec.component else {}
            if path is None:
                model, _, preprocess = open_clip.create_model_and_transforms(spec.arch, pretrained=None, **load)
            else:
                try:
                    model, _, preprocess = open_clip.create_model_and_transforms(spec.arch, pretrained=str(path),
                                                                                 **load)
                except Exception as first:  # OpenAI's original TorchScript .pt archives need the openai loader
                    try:
                        model = open_clip.load_openai_model(str(path), precision="fp32", device="cpu")
                    except Exception:
                        raise BenchError(f"cannot load {spec.name} weights from {path}: {first}") from first
                    preprocess = open_clip.image_transform(model.visual.image_size, is_train=False,
                                                           mean=OPENAI_MEAN, std=OPENAI_STD)
            tokenizer = open_clip.get_tokenizer(spec.arch)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return ClipBackbone(spec, model, preprocess, tokenizer)


_MODELS: "OrderedDict[tuple, ClipBackbone]" = OrderedDict()
_MODELS_LOCK = threading.Lock()
MAX_LOADED = 2  # backbones kept in memory per process (ViT-L/14 is 1.7 GB in fp32)


def load_backbone(spec: BackboneSpec, path: Path | None, seed: int, identity: str, device: str = "cpu"
                  ) -> ClipBackbone:
    """The loaded backbone for ``identity`` on ``device``, built once per process (a small LRU)."""
    key = (identity, str(device))
    with _MODELS_LOCK:
        hit = _MODELS.get(key)
        if hit is not None:
            _MODELS.move_to_end(key)
            return hit
    backbone = _build(spec, path, seed)
    backbone.model.to(device)
    backbone.device = device
    with _MODELS_LOCK:
        _MODELS[key] = backbone
        while len(_MODELS) > MAX_LOADED:
            _MODELS.popitem(last=False)
    return backbone


def backbone_weights(detector: Detector, spec: BackboneSpec) -> tuple[Path | None, str]:
    """(weights path or None for random init, weights sha256 or "random") for a detector's backbone.

    The runner resolves the components a detector declares; a detector used directly (a notebook,
    a test) or pointed at another backbone by a keyword resolves the component here, through the
    same resolver (user overrides, local store, library caches; never a silent random init).
    """
    if spec.component is None:
        return None, "random"
    record = detector.weights_provenance.get(spec.component)
    if record is None:
        from bench.weights import resolve

        record = resolve(spec.component).to_record()
        detector.weights_provenance[spec.component] = record
    if record.get("random"):
        return None, "random"
    path = detector.weight_path(spec.component)
    return path, str(record.get("sha256") or hashlib.sha256(str(path).encode()).hexdigest())


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
    """Which cached file holds which key, for one group folder (files are immutable once written)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.seen: set[str] = set()
        self.where: dict[str, tuple[str, int]] = {}

    def refresh(self) -> None:
        if not self.folder.is_dir():
            return
        for entry in os.scandir(self.folder):
            if entry.name.endswith(".npz") and not entry.name.startswith(".") and entry.name not in self.seen:
                try:
                    with np.load(entry.path, allow_pickle=False) as data:
                        keys = data["keys"]
                except (OSError, ValueError, KeyError):
                    continue  # unreadable: recompute what it held
                self.seen.add(entry.name)
                for row, key in enumerate(keys.tolist()):
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


def _index(folder: Path) -> _GroupIndex:
    with _INDEX_LOCK:
        idx = _INDEXES.get(folder)
        if idx is None:
            idx = _INDEXES[folder] = _GroupIndex(folder)
        return idx


class ClipFeatures:
    """Embeddings of one backbone, cached; the model is loaded only when something is missing."""

    def __init__(self, spec: BackboneSpec, path: Path | None, weights_sha: str, init_seed: int,
                 device: str = "cpu", cache: Cache | None = None, batch_size: int = 32, workers: int = 0,
                 progress: bool = False):
        from bench.training import resolve_device

        self.spec, self.path, self.init_seed = spec, path, int(init_seed)
        self.device = str(resolve_device(device))
        self.cache, self.batch_size, self.workers, self.progress = cache, max(1, batch_size), workers, progress
        weights = f"random-s{self.init_seed}" if weights_sha == "random" else weights_sha[:16]
        precision = "fp16" if self.device.startswith("cuda") else "fp32"
        self.identity = f"{spec.name}@{weights}-{precision}-v{FEATURE_VERSION}"

    @classmethod
    def for_detector(cls, detector: Detector, backbone: str, ctx: FitContext, init_seed: int) -> "ClipFeatures":
        spec = get_backbone(backbone)
        path, sha = backbone_weights(detector, spec)
        return cls(spec, path, sha, init_seed, ctx.device, ctx.extras.get("cache"), ctx.batch_size, ctx.workers,
                   ctx.progress)

    # -- the model, on demand ---------------------------------------------------------------
    def backbone(self) -> ClipBackbone:
        return load_backbone(self.spec, self.path, self.init_seed, self.identity, self.device)

    def _autocast(self):
        import torch

        if self.device.startswith("cuda"):
            return torch.autocast(device_type="cuda", dtype=torch.float16)
        return torch.autocast(device_type="cpu", enabled=False)

    # -- cache plumbing ---------------------------------------------------------------------
    def _folder(self, group: str) -> Path | None:
        if self.cache is None:
            return None
        return self.cache.path(f"{NAMESPACE}/{_safe(self.identity)}/{_safe(group)}", "x", "npz").parent

    def _lookup(self, group: str, keys: list[str]) -> dict[str, np.ndarray]:
        folder = self._folder(group)
        if folder is None or not keys:
            return {}
        idx = _index(folder)
        if any(k not in idx.where for k in keys):
            idx.refresh()
        by_file: dict[str, list[tuple[str, int]]] = {}
        for k in keys:
            if k in idx.where:
                name, row = idx.where[k]
                by_file.setdefault(name, []).append((k, row))
        out: dict[str, np.ndarray] = {}
        for name, pairs in by_file.items():
            try:
                with np.load(folder / name, allow_pickle=False) as data:
                    feats = data["feats"]
            except (OSError, ValueError, KeyError):  # removed or damaged since indexed: recompute
                idx.forget()
                continue
            for k, row in pairs:
                out[k] = feats[row]
        return out

    def _store(self, group: str, keys: list[str], feats: np.ndarray) -> None:
        folder = self._folder(group)
        if folder is None or not keys:
            return
        name = stable_hash(sorted(keys), 24)
        namespace = str(folder.relative_to(self.cache.root))  # type: ignore[union-attr]
        self.cache.save_arrays(namespace, name, keys=np.array(keys, dtype=str),  # type: ignore[union-attr]
                               feats=np.ascontiguousarray(feats, dtype=np.float32))
        _index(folder).add(f"{name}.npz", keys)

    # -- images -----------------------------------------------------------------------------
    def images(self, images, view: View | None = None) -> np.ndarray:
        """``encode_image`` embeddings [len(images), embed_dim] in input order (float32)."""
        n = len(images)
        out = np.zeros((n, self.spec.embed_dim), dtype=np.float32)
        if n == 0:
            return out
        groups: dict[str, list[int]] = {}
        for i in range(n):
            group = pixel_group(images, i) + (f"+{view.name}~s{view.seed}" if view is not None else "")
            groups.setdefault(group, []).append(i)
        for group, idx in groups.items():
            keys = [images.hashes[i] for i in idx]
            found = self._lookup(group, sorted(set(keys)))
            missing: dict[str, int] = {}
            for i, k in zip(idx, keys):
                if k not in found and k not in missing:
                    missing[k] = i
            if missing:
                found.update(self._compute(images, group, missing, view))
            for i, k in zip(idx, keys):
                out[i] = found[k]
        return out

    def _pixels(self, images, i: int, view: View | None) -> np.ndarray:
        image = images[i]
        if view is not None:
            image = view.fn(image, derive_rng(view.seed, "clip-view", view.name, images.hashes[i]))
        return image

    def _compute(self, images, group: str, missing: dict[str, int], view: View | None) -> dict[str, np.ndarray]:
        import torch
        from PIL import Image
        from tqdm.auto import tqdm

        bb = self.backbone()
        items = list(missing.items())
        result: dict[str, np.ndarray] = {}
        pending_keys: list[str] = []
        pending: list[np.ndarray] = []

        def prep(pair):
            return bb.preprocess(Image.fromarray(np.ascontiguousarray(self._pixels(images, pair[1], view))))

        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            bar = tqdm(total=len(items), desc=f"{self.spec.name} features", leave=False, disable=not self.progress)
            for start in range(0, len(items), self.batch_size):
                chunk = items[start : start + self.batch_size]
                x = torch.stack(list(pool.map(prep, chunk))).to(bb.device)
                with torch.no_grad(), self._autocast():
                    feats = bb.model.encode_image(x).float().cpu().numpy()
                for (k, _), f in zip(chunk, feats):
                    result[k] = f
                    FORWARD[(self.identity, group, k)] += 1
                    pending_keys.append(k)
                    pending.append(f)
                if len(pending_keys) >= CHUNK:
                    self._store(group, pending_keys, np.stack(pending))
                    pending_keys, pending = [], []
                bar.update(len(chunk))
            bar.close()
        if pending_keys:
            self._store(group, pending_keys, np.stack(pending))
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


# --------------------------------------------------------------------------- heads on frozen features


class FeatureRows:
    """Precomputed feature rows standing in for an ImageSet in the shared training loop (bench.training).

    ``rows`` may be replaced in place between epochs (OCC-CLIP's adversarial examples do this).
    """

    def __init__(self, rows: np.ndarray, hashes: Sequence[str]):
        self.rows = np.ascontiguousarray(rows, dtype=np.float32)
        self.hashes = list(hashes)
        if len(self.rows) != len(self.hashes):
            raise ValueError("FeatureRows: rows and hashes differ in length")

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.rows[i]

    def subset(self, indices) -> "FeatureRows":
        indices = list(indices)
        return FeatureRows(self.rows[indices], [self.hashes[i] for i in indices])


def rows_to_tensor(row: np.ndarray, rng) -> "Any":
    """The training loop's transform for FeatureRows: a feature row as a float tensor."""
    import torch

    return torch.from_numpy(np.array(row, dtype=np.float32))


def feature_ctx(ctx: FitContext, batch_size: int = 512) -> FitContext:
    """The context for training/scoring a head on feature rows: in-process loading, larger batches."""
    from dataclasses import replace

    return replace(ctx, workers=0, batch_size=max(batch_size, ctx.batch_size))


class FrozenClipHead(Detector):
    """Base of the detectors that put a head on frozen CLIP embeddings from the shared cache.

    Subclasses call :meth:`features` (and :meth:`extractor` for texts). The backbone's random-init
    seed (used only when weights are random) is fixed at fit time so predictions use the same
    backbone the head was trained on. Fitted heads hold no model; the runner pickles them small.
    """

    backbone_name: str = "clip_vit_b16"

    def _set_backbone(self, backbone: str) -> None:
        get_backbone(backbone)  # unknown -> "did you mean"
        self.backbone_name = backbone
        self._init_seed: int | None = None

    def extractor(self, ctx: FitContext) -> ClipFeatures:
        if self._init_seed is None:
            self._init_seed = int(ctx.seed)
        return ClipFeatures.for_detector(self, self.backbone_name, ctx, self._init_seed)

    def features(self, images, ctx: FitContext, view: View | None = None) -> np.ndarray:
        return self.extractor(ctx).images(images, view)
