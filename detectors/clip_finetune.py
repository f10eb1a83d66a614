"""``clip_finetune``: the whole CLIP image encoder fine-tuned with a linear head.

Follows "Detecting AI-Generated Images via CLIP" (README, "CLIP family"): start from
the pre-trained CLIP ViT-B/16 image encoder (``encode_image``: the projected CLS
embedding), add one linear layer over the training generators (``"real"``
included), and train every weight with Adam for about 12 epochs with
cross-entropy. The epoch kept is the one with the best validation macro F1
(early stopping after ``patience`` epochs without improvement); checkpoints after
every epoch let an interrupted fit resume (the shared loop, bench/nn/training.py).
On a GPU the loop runs under bf16 autocast (``mixed_precision``). Scores: P(generated) = 1 - P(real);
the arg-max class is the predicted source, so one model serves both tasks.

Scored through the runner's stream (bench.nn.training.StreamedNet): the eval preprocessing in
worker processes, the tower and head on ready batches, the same numbers as ``predict``.

Departures, and why:
- The learning rate is not given in the write-up we follow; 1e-5 is the usual
  rate for fine-tuning all of CLIP (larger rates destroy the pre-trained features).
- Input: the backbone's own eval preprocessing (short side resized, centre crop
  224) at training and test time, plus a random horizontal flip during training;
  nothing else is augmented.
- This detector changes the backbone, so its forward passes cannot come from
  the shared frozen-feature cache; the runner's cell cache still makes a re-run free.
- ``fast`` (a CPU smoke run): one epoch, so the whole tower is trained only briefly (a
  ViT-B/16 forward and backward pass costs 1-2 s per image on 2 shared CPU cores);
  the ``paper`` profile is the 12 epochs above.
- The fitted detector keeps the fine-tuned image tower (~86 M parameters for
  ViT-B/16, ~350 MB in the fit cache); the text tower is dropped.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from bench.core.detector import Detector, DetectorInfo, FitContext, Prediction
from bench.core.errors import BenchError
from bench.data.imageset import ImageSet
from bench.nn.backbones import get_backbone
from bench.nn.clip_features import ClipFeatures, differentiable_pixels
from bench.nn.training import StreamedNet, TrainConfig, predict_probs, seeded_torch, train_classifier


class _Finetuned(nn.Module):
    def __init__(self, visual: nn.Module, dim: int, n_classes: int):
        super().__init__()
        self.visual = visual
        self.head = nn.Linear(dim, n_classes)

    def forward(self, x):
        return self.head(self.visual(x))


class ClipFinetune(StreamedNet, Detector):
    info = DetectorInfo(
        family="clip",
        paper="Detecting AI-Generated Images via CLIP: full fine-tuning of the CLIP image encoder + linear head",
        trains=True,
        weights=("clip_vit_b16",),
        gpu="recommended",
        tasks=("binary", "attribution"),
        notes="Adam lr 1e-5 (lr not given in the paper); backbone eval preprocessing + h-flip; "
              "does not use the frozen-feature cache (the encoder changes); fast: 1 epoch",
    )
    profiles = {"fast": {"epochs": 1}}
    mixed_precision = True  # CLIP itself was trained in mixed precision; bf16 keeps the fine-tune's range

    def __init__(self, backbone: str = "clip_vit_b16", epochs: int = 12, lr: float = 1e-5, batch_size: int = 32,
                 patience: int = 3, weight_decay: float = 0.0):
        super().__init__(backbone=backbone, epochs=epochs, lr=lr, batch_size=batch_size, patience=patience,
                         weight_decay=weight_decay)
        get_backbone(backbone)
        self.backbone_name = backbone
        self.cfg = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, patience=patience,
                               weight_decay=weight_decay, optimizer="adam")
        self.model: nn.Module | None = None
        self.preprocess = None
        self.classes: list[str] = []
        self.history: dict = {}

    def _transform(self, image: np.ndarray, rng):
        from PIL import Image

        if rng is not None and rng.random() < 0.5:
            image = image[:, ::-1]
        return self.preprocess(Image.fromarray(np.ascontiguousarray(image)))

    def fit(self, train: ImageSet, val: ImageSet, ctx: FitContext) -> None:
        self.classes = sorted(set(train.generators))
        if "real" not in self.classes or len(self.classes) < 2:
            raise BenchError("clip_finetune: the training split needs real images and at least one generator")
        index = {c: i for i, c in enumerate(self.classes)}
        y_train = np.array([index[g] for g in train.generators])
        y_val = np.array([index.get(g, -1) for g in val.generators])
        keep = np.flatnonzero(y_val >= 0)
        extractor = ClipFeatures.for_detector(self, self.backbone_name, ctx, int(ctx.seed))
        backbone = extractor.backbone()  # the shared frozen copy; fine-tuning works on a deep copy of its tower
        self.preprocess = backbone.preprocess
        with seeded_torch(ctx.seed):
            visual = copy.deepcopy(backbone.model.visual).to("cpu").float()
            for p in visual.parameters():
                p.requires_grad_(True)
            self.model = _Finetuned(visual, extractor.spec.embed_dim, len(self.classes))
            self.history = train_classifier(self.model, train, val.subset(keep), y_train, y_val[keep],
                                            self._transform, self.cfg, ctx, checkpoint=ctx.checkpoint)

    def fit_passes(self, n_train: int, n_val: int, n_classes: int) -> int:
        return self.cfg.passes(n_train, n_val)  # the whole image tower, forward and backward

    differentiable = True

    def differentiable_score(self, image01: torch.Tensor, caption: str | None = None) -> torch.Tensor:
        """P(generated) = 1 - P(real) through the backbone's eval preprocessing in torch (exact when the short side
        is already the input size, else torch's antialiased bicubic for open_clip's PIL resize)."""
        if self.model is None:
            raise BenchError("clip_finetune: differentiable_score() called before fit()")
        x = differentiable_pixels(image01, get_backbone(self.backbone_name).image_size, "resize")
        model = self.model.eval()
        return 1 - model(x[None].to(next(model.parameters()).device)).softmax(dim=1)[0, self.classes.index("real")]

    def predict(self, images: ImageSet, ctx: FitContext) -> Prediction:
        if self.model is None:
            raise BenchError("clip_finetune: predict() called before fit()")
        return self.finish(predict_probs(self.model, images, self._transform, ctx))

    # streamed (bench.nn.training.StreamedNet): the eval preprocessing in worker processes, the tower on
    # batches under the same autocast as predict (ctx.mixed_precision: bf16 on CUDA)
    def finish(self, rows: np.ndarray) -> Prediction:
        p_fake = 1.0 - rows[:, self.classes.index("real")]
        return Prediction(score=p_fake, source=np.array(self.classes, dtype=object)[rows.argmax(axis=1)])
