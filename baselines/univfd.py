"""``univfd``: a linear probe on frozen CLIP ViT-L/14 image features (Ojha et al. 2023).

Follows "Towards Universal Fake Image Detectors that Generalize Across Generative
Models" (CVPR 2023): the CLIP ViT-L/14 image embedding (``encode_image``, 768-d,
not normalised) of each image, one linear layer 768 -> 1, binary cross-entropy,
AdamW with lr 1e-4 (weight decay 0). Score: sigmoid of the logit = P(generated).
Training stops by the CNNDet plateau rule on validation macro F1; the last epoch is kept.

Profiles (README, "Profiles and fidelity"), checked against the authors' code
(github.com/WisconsinAIVision/UniversalFakeDetect: ``data/datasets.py``, ``train.py``,
``validate.py``):

- ``paper`` (the defaults): test and validation features from the centre 224 crop at
  native resolution, no resize (``validate.py``: ``CenterCrop(224)``; smaller sides
  zero-padded as torchvision does). Training rows are ``train_views`` augmented draws
  of every training image, each as the original's training transform: shorter side
  resized to 256, CNNDet's blur (p 0.5, sigma U[0, 3]) and JPEG (p 0.5, quality
  U{30..100}, cv2 or PIL), random 224 crop, horizontal flip. Head initialised
  N(0, 0.02); AdamW lr 1e-4; up to 100 epochs; the learning rate divided by 10 after 5
  epochs without validation gain, training stops below 1e-6; the last epoch trained is kept
  (``keep="last"``): ``train.py`` overwrites ``model_epoch_best.pth`` with the current weights at
  the end of every epoch, so validation decides only when training stops, not which epoch is used.
- ``fast``: the backbone's eval preprocessing (short side resized to 224, centre crop)
  for every image and no augmentation, so these features are shared with every other
  head on ViT-L/14; 50 epochs, patience 10, constant rate, the best validation epoch kept.

Remaining departures of the paper profile: the original draws a fresh augmentation
every epoch; here each training image contributes ``train_views`` fixed draws (their
embeddings are cached, so a re-run costs no forward pass). Selection metric: macro
F1 (original: accuracy; it decides only when training stops).

Validation, as the original's ``get_val_opt``: short side resized to 256, blur with
the fixed mid-strength sigma 1.5 and PIL JPEG at the fixed quality 65, each with
probability 0.5, centre 224 crop (``val_augment``; the fast profile validates on the
clean features).
"""

from __future__ import annotations

import numpy as np
from torch import nn

from bench.core.detector import DetectorInfo, FitContext, Prediction
from bench.core.errors import BenchError
from bench.data.imageset import ImageSet
from baselines.cnndet import blur_jpeg_augment, crop_square, resize_shorter
from bench.nn.clip_features import CROPS, View
from bench.nn.frozen_head import FeatureRows, FrozenClipHead, feature_ctx, rows_to_tensor
from bench.nn.training import TrainConfig, predict_probs, seeded_torch, train_classifier


TRAIN_LOAD, TRAIN_CROP, AUGMENT_PROB = 256, 224, 0.5


def univfd_training_view(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw of the original's training transform: short side 256, blur+JPEG (p 0.5 each), random 224 crop,
    horizontal flip (before the backbone's normalisation)."""
    x = blur_jpeg_augment(resize_shorter(image, TRAIN_LOAD), rng, AUGMENT_PROB, AUGMENT_PROB)
    x = crop_square(x, TRAIN_CROP, rng)
    return np.ascontiguousarray(x[:, ::-1]) if rng.random() < 0.5 else x


VAL_SIGMA, VAL_QUALITY = 1.5, 65  # the original's get_val_opt: the middle of U[0, 3] and of U{30..100}


def univfd_validation_view(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The original's validation transform: short side 256, blur sigma 1.5 and PIL JPEG q65 (p 0.5 each),
    centre 224 crop."""
    x = blur_jpeg_augment(resize_shorter(image, TRAIN_LOAD), rng, AUGMENT_PROB, AUGMENT_PROB,
                          sigma=(VAL_SIGMA, VAL_SIGMA), quality=(VAL_QUALITY, VAL_QUALITY), methods=("pil",))
    return crop_square(x, TRAIN_CROP, None)


class UnivFD(FrozenClipHead):
    info = DetectorInfo(
        family="clip",
        paper="Ojha et al. 2023, Towards Universal Fake Image Detectors that Generalize Across Generative Models",
        trains=True,
        weights=("clip_vit_l14",),
        gpu="optional",
        tasks=("binary",),
        notes="paper: native centre crop 224 at test; training views as the original's transform (short side 256, "
              "blur+JPEG p 0.5, random crop 224, flip) but train_views fixed draws per image instead of a fresh draw "
              "per epoch; validation as the original (fixed blur 1.5 / PIL JPEG 65, p 0.5); last epoch kept, "
              "as train.py overwrites its checkpoint every epoch; "
              "fast: backbone eval resize+crop, no augmentation, clean validation, best epoch",
    )
    profiles = {"fast": {"crop": "resize", "train_views": 0, "epochs": 50, "patience": 10, "plateau_factor": 0.0,
                         "init_std": None, "val_augment": False, "keep": "best"}}

    def __init__(self, backbone: str = "clip_vit_l14", lr: float = 1e-4, weight_decay: float = 0.0,
                 epochs: int = 100, batch_size: int = 256, patience: int = 5, crop: str = "native",
                 train_views: int = 4, plateau_factor: float = 0.1, init_std: float | None = 0.02,
                 val_augment: bool = True, keep: str = "last"):
        if crop not in CROPS:
            raise BenchError(f"univfd: crop must be one of {', '.join(CROPS)}, got {crop!r}")
        super().__init__(backbone=backbone, lr=lr, weight_decay=weight_decay, epochs=epochs, batch_size=batch_size,
                         patience=patience, crop=crop, train_views=train_views, plateau_factor=plateau_factor,
                         init_std=init_std, val_augment=val_augment, keep=keep)
        self._set_backbone(backbone)
        self.crop, self.train_views, self.init_std = crop, int(train_views), init_std
        self.val_augment = bool(val_augment)
        self.cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                               optimizer="adamw", patience=patience, plateau_factor=plateau_factor,
                               keep=keep)
        self.model: nn.Module | None = None
        self.history: dict = {}

    def fit(self, train: ImageSet, val: ImageSet, ctx: FitContext) -> None:
        self._init_seed = int(ctx.seed)
        if len(set(train.labels.tolist())) < 2:
            raise BenchError("univfd: the training split needs real and generated images")
        rows_train, targets = self._training_rows(train, ctx)
        val_view = View("univfd-val", univfd_validation_view, int(ctx.seed)) if self.val_augment else None
        rows_val = FeatureRows(self.features(val, ctx, val_view), val.hashes)
        with seeded_torch(ctx.seed):
            self.model = nn.Linear(rows_train.rows.shape[1], 1)
            if self.init_std is not None:
                nn.init.normal_(self.model.weight, 0.0, self.init_std)
            self.history = train_classifier(self.model, rows_train, rows_val, targets,
                                            np.asarray(val.labels), rows_to_tensor, self.cfg, feature_ctx(ctx),
                                            checkpoint=ctx.checkpoint)

    def _training_rows(self, train: ImageSet, ctx: FitContext) -> tuple[FeatureRows, np.ndarray]:
        """The clean embeddings (no views), or ``train_views`` augmented draws of every training image."""
        labels = np.asarray(train.labels)
        if not self.train_views:
            return FeatureRows(self.features(train, ctx), train.hashes), labels
        feats, hashes = [], []
        for k in range(self.train_views):
            feats.append(self.features(train, ctx, View(f"univfd-train{k}", univfd_training_view, int(ctx.seed))))
            hashes += [f"{h}+view{k}" for h in train.hashes]
        return FeatureRows(np.concatenate(feats), hashes), np.tile(labels, self.train_views)

    differentiable = True

    def differentiable_score(self, image01, caption: str | None = None):
        """The head's logit on the frozen backbone's embedding of the image as ``predict`` prepares it (native
        centre crop in the paper profile; the eval resize, approximated in torch, in the fast profile)."""
        self.require_fitted("differentiable_score")
        return self.model.eval()(self.differentiable_embedding(image01))[0]

    def fit_passes(self, n_train: int, n_val: int, n_classes: int) -> int:
        return max(1, self.train_views) * n_train + n_val  # the head's epochs run on cached embeddings

    def fitted(self) -> bool:
        return self.model is not None

    def predict_features(self, images: ImageSet, feats: np.ndarray, ctx: FitContext) -> Prediction:
        self.require_fitted()
        rows = FeatureRows(feats, images.hashes)
        return Prediction(score=predict_probs(self.model, rows, rows_to_tensor, feature_ctx(ctx))[:, 0])
