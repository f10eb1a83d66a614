"""White-box attack targets: each differentiable detector's ``differentiable_score`` sees what ``predict`` sees.

For every detector that declares ``differentiable``, on tiny randomly initialised variants: the score of
``differentiable_score`` on an image equals (1e-5) the score ``predict`` gives on the same uint8 image, in
each test-time preprocessing (native centre crop, padded when smaller; the eval resize, on images where it
is exact), and its gradient with respect to the pixels is non-zero (an attack has something to follow).
Non-differentiable detectors keep refusing.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from bench.core.detector import FitContext
from bench.core.errors import BenchError
from bench.core.hashing import sha256_file
from bench.core.registries import create_detector
from bench.data.imageset import ImageSet
from helpers import textured, write_png

# (registered test variant, overrides, image sizes (h, w) on which predict's preprocessing is reproduced exactly,
#  whether differentiable_score returns the logit of predict's probability)
CASES = [
    ("test_cnndet", {"test_resize": False}, [(48, 53), (24, 29)], True),  # paper: native crop 32, padded below
    ("test_cnndet", {}, [(40, 52), (61, 40)], True),  # fast: short side already load=40, centre crop 32
    ("test_npr", {}, [(48, 53), (20, 26)], True),
    ("test_clip.univfd", {"crop": "native"}, [(48, 53), (20, 40)], True),  # paper: native centre crop 32
    ("test_clip.univfd", {}, [(32, 45), (50, 32)], True),  # fast: eval resize, a no-op at short side 32
    ("test_clip.finetune", {"epochs": 1}, [(32, 45), (50, 32)], False),
    ("test_clip.occ_clip", {"fgsm": False}, [(32, 45), (50, 32)], False),  # max over generators of P(target)
    ("test_clip.text_mlp", {}, [(32, 45), (50, 32)], True),  # no caption: the zero-shot prompt's text
    ("test_clip.text_mlp", {"captions": True}, [(32, 45), (50, 32)], True),  # the caption's text
    # the whole image resized to 32 (the same torch resize, exact at any size), VAE error + FFT channels
    ("test_effnet_mc", {}, [(48, 53), (20, 26)], False),  # attribution: 1 - P(real)
    ("test_effnet_mc", {"channels": "rgb_err", "task": "binary"}, [(48, 53), (61, 40)], False),  # P(generated)
]


def image_set(folder, sizes, captions: bool = False) -> ImageSet:
    rng = np.random.default_rng(5)
    items = []
    for k, (h, w) in enumerate(sizes):
        path = write_png(folder / f"i{k}.png", textured(rng, size=64)[:h, :w])
        items.append(SimpleNamespace(path=str(path), label=k % 2, generator="real" if k % 2 == 0 else "blocky",
                                     caption=f"a textured test image number {k}" if captions else None, id=f"i{k}",
                                     sha256=sha256_file(path)))
    return ImageSet(items)


@pytest.mark.parametrize("name,overrides,sizes,logit", CASES)
def test_differentiable_score_is_predicts_score_and_has_a_gradient(name, overrides, sizes, logit, tiny_splits,
                                                                   tmp_path):
    ctx = FitContext(device="cpu", seed=0, workers=0, progress=False)
    overrides = dict(overrides)
    captions = overrides.pop("captions", False)
    det = create_detector(name, **{"epochs": 1, **overrides})
    assert det.differentiable
    det.fit(tiny_splits["train"], tiny_splits["val"], ctx)
    images = image_set(tmp_path, sizes, captions)
    predicted = det.predict(images, ctx).score
    for i in range(len(images)):
        x = torch.from_numpy(np.array(images[i])).permute(2, 0, 1).float().div(255).requires_grad_(True)
        score = det.differentiable_score(x, caption=images.captions[i])
        assert score.ndim == 0
        (grad,) = torch.autograd.grad(score, x)
        assert grad.abs().sum() > 0, f"{name}: no gradient reaches the pixels"
        value = torch.sigmoid(score).item() if logit else score.item()
        assert value == pytest.approx(predicted[i], abs=1e-5), f"{name} {sizes[i]}: gradient sees other pixels"


@pytest.mark.parametrize("name", ["spectral", "test_clip.svm"])
def test_non_differentiable_detectors_refuse(name):
    det = create_detector(name)
    assert not det.differentiable
    with pytest.raises(BenchError, match="not differentiable"):
        det.differentiable_score(torch.zeros(3, 32, 32))
