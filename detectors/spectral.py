"""Spectral detector: azimuthally averaged log power spectrum + logistic regression.

Follows the frequency-domain line of work (Durall et al., "Watch your
up-convolution", CVPR 2020; Dzanic et al., NeurIPS 2020): generators leave
traces in the high-frequency part of the spectrum (upsampling peaks, missing
sensor noise, band limits). The 1-D radial profile is computed on the full
resolution image (centre-cropped to at most 512 px so cost is bounded), over
radii normalised to [0, 1] so images of different sizes give comparable
features. A multinomial logistic regression over the generator classes gives
both tasks: P(generated) = 1 - P(real), and the arg-max class is the predicted
source. The regularisation strength is chosen on the validation split by
macro F1.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from bench.core.detector import Detector, DetectorInfo, FitContext, Prediction, Preparation
from bench.core.errors import BenchError
from bench.data.imageset import ImageSet

MAX_SIDE = 512


def radial_profile(image: np.ndarray, bins: int = 48) -> np.ndarray:
    """Log power averaged over rings of equal normalised frequency radius (DC excluded)."""
    grey = image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    h, w = grey.shape
    if max(h, w) > MAX_SIDE:
        top, left = max(0, (h - MAX_SIDE) // 2), max(0, (w - MAX_SIDE) // 2)
        grey = grey[top : top + MAX_SIDE, left : left + MAX_SIDE]
        h, w = grey.shape
    grey = grey - grey.mean()
    power = np.abs(np.fft.fftshift(np.fft.fft2(grey))) ** 2
    fy = (np.arange(h) - h // 2) / (h / 2)
    fx = (np.arange(w) - w // 2) / (w / 2)
    radius = np.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2) / np.sqrt(2)
    ring = np.minimum((radius * bins).astype(np.int64), bins - 1)
    total = np.bincount(ring.ravel(), weights=power.ravel(), minlength=bins)
    count = np.bincount(ring.ravel(), minlength=bins)
    profile = np.log(total / np.maximum(count, 1) + 1e-8)
    return profile - profile[1:].mean()  # contrast-invariant: only the spectrum's shape matters


class SpectralDetector(Detector):
    info = DetectorInfo(
        family="frequency",
        paper="Durall et al. 2020 (azimuthal spectrum); logistic regression head",
        trains=True,
        gpu="no",
        tasks=("binary", "attribution"),
        notes="radial profile over normalised radius; centre crop to 512 px for very large images",
    )

    def __init__(self, bins: int = 48, c_grid: tuple[float, ...] = (0.1, 1.0, 10.0)):
        super().__init__(bins=bins, c_grid=list(c_grid))
        self.bins = bins
        self.c_grid = tuple(c_grid)
        self.model = None
        self.classes: list[str] = []

    def features(self, images: ImageSet, ctx: FitContext) -> np.ndarray:
        with ThreadPoolExecutor(max_workers=max(1, ctx.workers)) as pool:
            rows = list(pool.map(lambda i: radial_profile(images[i], self.bins), range(len(images))))
        return np.stack(rows)

    def fit(self, train: ImageSet, val: ImageSet, ctx: FitContext) -> None:
        x_train, y_train = self.features(train, ctx), np.array(train.generators)
        if len(set(y_train)) < 2:
            raise BenchError("spectral: training split needs at least two classes")
        x_val, y_val = self.features(val, ctx), np.array(val.generators)
        best = None
        for c in self.c_grid:
            model = make_pipeline(StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=2000))
            model.fit(x_train, y_train)
            f1 = f1_score(y_val, model.predict(x_val), average="macro") if len(y_val) else 0.0
            if best is None or f1 > best[0]:
                best = (f1, c, model)
        _, self.chosen_c, self.model = best
        self.classes = list(self.model.classes_)

    def fit_passes(self, n_train: int, n_val: int, n_classes: int) -> int:
        return 0  # no network: one FFT per image and a logistic regression

    def predict(self, images: ImageSet, ctx: FitContext) -> Prediction:
        return self.finish(self.features(images, ctx))

    # streamed: the radial profile is the preparation (worker processes), the model sees all rows at once
    def preparation(self) -> Preparation:
        return Preparation(("radial_profile", self.bins), partial(radial_profile, bins=self.bins))

    def forward_batch(self, batch, ctx: FitContext) -> np.ndarray:
        return batch.numpy()

    def finish(self, rows: np.ndarray) -> Prediction:
        if self.model is None:
            raise BenchError("spectral: predict() called before fit()")
        proba = self.model.predict_proba(rows)
        real_col = self.classes.index("real") if "real" in self.classes else None
        p_fake = 1.0 - proba[:, real_col] if real_col is not None else np.ones(len(proba))
        source = np.array(self.classes, dtype=object)[proba.argmax(axis=1)]
        return Prediction(score=p_fake, source=source)
