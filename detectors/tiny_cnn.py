"""``test_cnn``: a tiny CNN trained from scratch, for tests and smoke runs only.

Three strided convolutions on a 64x64 resize and a linear head over the
generator classes. It exists so that the training loop, caching and the runner
can be exercised in seconds on a CPU; it follows no paper and its numbers say
nothing about any published detector.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from bench.core.detector import Detector, DetectorInfo, FitContext, Prediction
from bench.core.errors import BenchError
from bench.data.imageset import ImageSet
from bench.nn.training import (StreamedNet, TrainConfig, predict_probs, resize_square, resize_to_tensor,
                               seeded_torch, train_classifier)


def _tiny_net(n_classes: int, width: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, width, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(width, width * 2, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(width * 2, width * 2, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width * 2, n_classes),
    )


class TinyCNN(StreamedNet, Detector):
    info = DetectorInfo(family="test", paper="none (test model)", trains=True, gpu="optional",
                        tasks=("binary", "attribution"), notes="for tests and smoke runs only")

    def __init__(self, size: int = 64, width: int = 8, epochs: int = 3, lr: float = 3e-3):
        super().__init__(size=size, width=width, epochs=epochs, lr=lr)
        self.size, self.width = size, width
        self.cfg = TrainConfig(epochs=epochs, lr=lr, batch_size=32, patience=epochs)
        self.model: nn.Module | None = None
        self.classes: list[str] = []

    def _transform(self, image: np.ndarray, rng):
        x = resize_to_tensor(image, self.size)
        if rng is not None and rng.random() < 0.5:
            x = x.flip(-1)
        return x

    def fit(self, train: ImageSet, val: ImageSet, ctx: FitContext) -> None:
        self.classes = sorted(set(train.generators))
        if "real" not in self.classes or len(self.classes) < 2:
            raise BenchError("test_cnn: training split needs real images and at least one generator")
        index = {c: i for i, c in enumerate(self.classes)}
        y_train = np.array([index[g] for g in train.generators])
        y_val = np.array([index.get(g, -1) for g in val.generators])
        keep = [i for i, y in enumerate(y_val) if y >= 0]
        with seeded_torch(ctx.seed):
            self.model = _tiny_net(len(self.classes), self.width)
            self.history = train_classifier(self.model, train, val.subset(keep),
                                            y_train, y_val[keep], self._transform, self.cfg, ctx,
                                            checkpoint=ctx.checkpoint)

    def fit_passes(self, n_train: int, n_val: int, n_classes: int) -> int:
        return self.cfg.passes(n_train, n_val)

    differentiable = True

    def differentiable_score(self, image01: torch.Tensor, caption: str | None = None) -> torch.Tensor:
        """P(generated) = 1 - P(real) through the same antialiased resize as ``_transform`` (already torch)."""
        if self.model is None:
            raise BenchError("test_cnn: differentiable_score() called before fit()")
        x = resize_square(image01, self.size)[None]
        model = self.model.eval()
        return 1 - model(x.to(next(model.parameters()).device)).softmax(dim=1)[0, self.classes.index("real")]

    def predict(self, images: ImageSet, ctx: FitContext) -> Prediction:
        if self.model is None:
            raise BenchError("test_cnn: predict() called before fit()")
        return self.finish(predict_probs(self.model, images, self._transform, ctx))

    def finish(self, probs: np.ndarray) -> Prediction:
        p_fake = 1.0 - probs[:, self.classes.index("real")]
        return Prediction(score=p_fake, source=np.array(self.classes, dtype=object)[probs.argmax(axis=1)])
