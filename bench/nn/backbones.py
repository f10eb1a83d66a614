"""Frozen CLIP backbones: their specs (data, not code) and loading, shared by every CLIP detector.

Backbones are data (:data:`BACKBONES`): a name, the open_clip architecture, the
weights component it loads (:mod:`bench.weights.catalog`), its embedding width and
input size. ``test_*`` backbones carry an explicit small open_clip model config
and are always randomly initialised; they exist so that every CLIP detector can
be exercised in seconds on a CPU, and their numbers mean nothing.

Loaded models are kept in memory per process (at most :data:`MAX_LOADED`).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from functools import lru_cache
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from bench.core.detector import Detector
from bench.core.errors import BenchError
from bench.core.registry import Registry
from bench.weights.contents import is_torchscript_archive


OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


# --------------------------------------------------------------------------- backbones as data


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    arch: str  # open_clip architecture name
    component: str | None  # weights component (bench.weights.catalog); None: always random (test backbones)
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

    from bench.nn.training import seeded_torch
    from bench.weights.catalog import get_spec

    with seeded_torch(seed):
        if spec.model_cfg is not None:
            model = open_clip.CLIP(**spec.model_cfg, quick_gelu=True)
            tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=spec.context_length)
        else:
            load = dict(get_spec(spec.component).load) if spec.component else {}
            if path is None:
                model = open_clip.create_model(spec.arch, pretrained=None, **load)
            else:
                try:
                    if is_torchscript_archive(path):  # OpenAI's original .pt: open_clip's openai loader
                        model = open_clip.load_openai_model(str(path), precision="fp32", device="cpu")
                    else:
                        model = open_clip.create_model(spec.arch, pretrained=str(path), **load)
                except Exception as err:
                    raise BenchError(f"cannot load {spec.name} weights from {path}: {err}") from err
            tokenizer = open_clip.get_tokenizer(spec.arch)
    if model.visual.image_size not in (spec.image_size, (spec.image_size, spec.image_size)):
        raise BenchError(f"{spec.name}: the loaded model takes {model.visual.image_size} px, the spec says "
                         f"{spec.image_size}")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return ClipBackbone(spec, model, eval_transform(spec), tokenizer)


@lru_cache(maxsize=None)
def eval_transform(spec: BackboneSpec) -> Callable:
    """CLIP's eval preprocessing for ``spec`` (PIL image -> normalised CHW tensor): bicubic resize of the short
    side to the input size, centre crop, OpenAI mean/std; what open_clip returns for these architectures.
    Built without the model, so preparation workers (bench.run.stream) never load one."""
    import open_clip

    return open_clip.image_transform(spec.image_size, is_train=False, mean=OPENAI_MEAN, std=OPENAI_STD)


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
