"""Heads on frozen CLIP features: :class:`FrozenClipHead`, the base of the detectors that put a
small head on cached embeddings (:mod:`bench.nn.clip_features`), and :class:`FeatureRows`, which lets
the shared training loop train such a head on feature rows instead of images.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from bench.core.detector import Detector, FitContext, Prediction
from bench.core.errors import BenchError
from bench.nn.backbones import get_backbone
from bench.nn.clip_features import ClipFeatures, View, differentiable_pixels


# --------------------------------------------------------------------------- heads on frozen features


class FeatureRows:
    """Precomputed feature rows standing in for an ImageSet in the shared training loop (bench.nn.training).

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

    Subclasses call :meth:`features` (and :meth:`extractor` for texts) and implement :meth:`fitted` and
    :meth:`predict_features`. The backbone's random-init
    seed (used only when weights are random) is fixed at fit time so predictions use the same
    backbone the head was trained on. Fitted heads hold no model; the runner pickles them small.
    """

    backbone_name: str = "clip_vit_b16"
    crop: str = "resize"  # the feature preprocessing (bench.nn.clip_features.CROPS); part of the cache identity
    feature_precision: str = "auto"  # bench.nn.clip_features.PRECISIONS; part of the cache identity

    def _set_backbone(self, backbone: str) -> None:
        get_backbone(backbone)  # unknown -> "did you mean"
        self.backbone_name = backbone
        self._init_seed: int | None = None

    def extractor(self, ctx: FitContext) -> ClipFeatures:
        if self._init_seed is None:
            self._init_seed = int(ctx.seed)
        return ClipFeatures.for_detector(self, self.backbone_name, ctx, self._init_seed, self.crop,
                                         self.feature_precision)

    def feature_pass(self) -> str:
        """Which backbone forward pass this head reads: heads with the same one share it."""
        return f"{self.backbone_name} ({'native centre crop' if self.crop == 'native' else 'eval resize + crop'})"

    def features(self, images, ctx: FitContext, view: View | None = None) -> np.ndarray:
        return self.extractor(ctx).images(images, view)

    # -- scoring: the backbone's rows (cached, or streamed by the runner), then the head alone ---------------
    def fitted(self) -> bool:
        raise NotImplementedError

    def require_fitted(self, what: str = "predict") -> None:
        if not self.fitted():
            raise BenchError(f"{self.name}: {what}() called before fit()")

    def predict(self, images, ctx: FitContext) -> Prediction:
        self.require_fitted()
        return self.predict_features(images, self.features(images, ctx), ctx)

    def predict_features(self, images, feats: np.ndarray, ctx: FitContext) -> Prediction:
        """The head on ``feats`` (the :meth:`features` of ``images``, in order): what :meth:`predict` returns.
        The runner computes the features of all heads on one backbone in one stream
        (:mod:`bench.run.clip_stream`) and calls this."""
        raise NotImplementedError

    def differentiable_embedding(self, image01: Any) -> Any:
        """The ``encode_image`` embedding of one CHW image in [0, 1] through the head's own preprocessing
        (:func:`~bench.nn.clip_features.differentiable_pixels`), in fp32 on the CPU, differentiable with respect
        to the pixels (the backbone stays frozen): what a white-box attack on the head differentiates."""
        if self._init_seed is None:
            raise BenchError(f"{self.name}: differentiable_score() called before fit()")
        extractor = self.extractor(FitContext())
        x = differentiable_pixels(image01, extractor.spec.image_size, self.crop)
        return extractor.backbone().model.encode_image(x[None].float())[0]
