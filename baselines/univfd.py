"""``univfd``: a linear probe on frozen CLIP ViT-L/14 image features (Ojha et al. 2023).

Follows "Towards Universal Fake Image Detectors that Generalize Across Generative
Models" (CVPR 2023): the CLIP ViT-L/14 image embedding (``encode_image``, 768-d,
not normalised) of each image, one linear layer 768 -> 1, binary cross-entropy,
AdamW with lr 1e-4 (weight decay 0). Score: sigmoid of the logit = P(generated).
The epoch kept is the one with the best validation macro F1 (early stopping).

Departures, and why:
- Preprocessing: the backbone's own eval transform (short side resized to 224,
  centre crop) at training and test time, so the embeddings are shared with every
  other head on ViT-L/14 (one forward pass per image and cell). UnivFD centre-crops
  224 px at test time without resizing; on images much larger than 224 px that
  sees a smaller, full-resolution region.
- No training augmentation (UnivFD trained on ProGAN with CNNDet's blur/JPEG
  augmentation); the probe sees the clean embeddings of the benchmark's training
  split. ``epochs``/``batch_size`` are ours (the probe is cheap on cached features).
"""

from __future__ import annotations

import numpy as np
from torch import nn

from bench.core.detector import DetectorInfo, FitContext, Prediction
from bench.core.errors import BenchError
from bench.data.imageset import ImageSet
from bench.nn.frozen_head import FeatureRows, FrozenClipHead, feature_ctx, rows_to_tensor
from bench.nn.training import TrainConfig, predict_probs, seeded_torch, train_classifier


class UnivFD(FrozenClipHead):
    info = DetectorInfo(
        family="clip",
        paper="Ojha et al. 2023, Towards Universal Fake Image Detectors that Generalize Across Generative Models",
        trains=True,
        weights=("clip_vit_l14",),
        gpu="optional",
        tasks=("binary",),
        notes="backbone eval preprocessing (resize + centre crop) instead of a bare centre crop, to share "
              "features; no blur/JPEG training augmentation",
    )

    def __init__(self, backbone: str = "clip_vit_l14", lr: float = 1e-4, weight_decay: float = 0.0,
                 epochs: int = 50, batch_size: int = 256, patience: int = 10):
        super().__init__(backbone=backbone, lr=lr, weight_decay=weight_decay, epochs=epochs, batch_size=batch_size,
                         patience=patience)
        self._set_backbone(backbone)
        self.cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                               optimizer="adamw", patience=patience)
        self.model: nn.Module | None = None
        self.history: dict = {}

    def fit(self, train: ImageSet, val: ImageSet, ctx: FitContext) -> None:
        self._init_seed = int(ctx.seed)
        if len(set(train.labels.tolist())) < 2:
            raise BenchError("univfd: the training split needs real and generated images")
        rows_train = FeatureRows(self.features(train, ctx), train.hashes)
        rows_val = FeatureRows(self.features(val, ctx), val.hashes)
        with seeded_torch(ctx.seed):
            self.model = nn.Linear(rows_train.rows.shape[1], 1)
            self.history = train_classifier(self.model, rows_train, rows_val, np.asarray(train.labels),
                                            np.asarray(val.labels), rows_to_tensor, self.cfg, feature_ctx(ctx),
                                            checkpoint=ctx.extras.get("checkpoint"))

    def predict(self, images: ImageSet, ctx: FitContext) -> Prediction:
        if self.model is None:
            raise BenchError("univfd: predict() called before fit()")
        rows = FeatureRows(self.features(images, ctx), images.hashes)
        return Prediction(score=predict_probs(self.model, rows, rows_to_tensor, feature_ctx(ctx))[:, 0])
