"""Weight-free detectors: they fit, score, attribute, and are deterministic."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from bench.core.detector import FitContext
from bench.core.registries import create_detector
from detectors.spectral import radial_profile


@pytest.fixture(scope="module")
def splits(tiny_splits):
    return tiny_splits


def test_radial_profile_is_contrast_invariant_and_sees_high_frequencies():
    rng = np.random.default_rng(0)
    img = rng.integers(64, 192, (64, 80, 3)).astype(np.uint8)
    scaled = ((img.astype(float) - 128) * 0.5 + 128).round().astype(np.uint8)
    assert np.allclose(radial_profile(img), radial_profile(scaled), atol=0.1)
    smooth = np.kron(img[::4, ::4], np.ones((4, 4, 1))).astype(np.uint8)
    assert radial_profile(smooth)[-5:].mean() < radial_profile(img)[-5:].mean() - 1


@pytest.mark.parametrize("name", ["spectral", "test_cnn"])
def test_detector_fits_scores_and_attributes(name, splits):
    ctx = FitContext(device="cpu", seed=0, workers=1, progress=False)
    det = create_detector(name)
    det.fit(splits["train"], splits["val"], ctx)
    pred = det.predict(splits["test"], ctx)
    assert pred.score.shape == (len(splits["test"]),)
    assert ((pred.score >= 0) & (pred.score <= 1)).all()
    assert set(pred.source) <= {"real", "blocky", "grid"}
    if name == "spectral":
        assert roc_auc_score(splits["test"].labels, pred.score) > 0.9
    again = create_detector(name)
    again.fit(splits["train"], splits["val"], ctx)
    assert np.array_equal(again.predict(splits["test"], ctx).score, pred.score), "same seed, same scores"
