"""The shared training loop: seeded, selects the best epoch, resumes from a checkpoint."""

from __future__ import annotations

import pytest
import torch

from bench.core.detector import FitContext
from bench.data.dataset import load_dataset
from bench.data.imageset import ImageSet
from helpers import interrupted_after_checkpoints
from bench.nn.training import TrainConfig, predict_probs, resize_to_tensor, seeded_torch, train_classifier


@pytest.fixture(scope="module")
def data(tiny_dataset, tmp_path_factory):
    from bench.core.cache import Cache

    ds = load_dataset(str(tiny_dataset), Cache(tmp_path_factory.mktemp("c")), progress=False)
    return ImageSet(ds.split("train")), ImageSet(ds.split("val"))


def transform(image, rng):
    x = resize_to_tensor(image, 16)
    return x.flip(-1) if rng is not None and rng.random() < 0.5 else x


def make_model():
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(0.2), torch.nn.Linear(3 * 16 * 16, 1))


def train(data, epochs, checkpoint=None):
    train_set, val_set = data
    with seeded_torch(0):
        model = make_model()
        history = train_classifier(model, train_set, val_set, train_set.labels, val_set.labels, transform,
                                   TrainConfig(epochs=epochs, lr=1e-2, batch_size=8, patience=10),
                                   FitContext(device="cpu", seed=0, progress=False), checkpoint=checkpoint)
    return model, history


def test_training_is_seeded(data):
    a, _ = train(data, 2)
    b, _ = train(data, 2)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_best_epoch_weights_are_kept(data):
    model, history = train(data, 3)
    _, val_set = data
    probs = predict_probs(model, val_set, transform, FitContext(device="cpu", progress=False))
    from bench.nn.training import macro_f1

    assert macro_f1(val_set.labels, probs) == pytest.approx(history["best_val"])
    assert history["best_val"] == max(history["val"])


def test_interrupted_training_resumes_to_the_same_weights(data, tmp_path):
    full, _ = train(data, 4)
    ckpt = tmp_path / "ckpt.pt"
    with pytest.raises(KeyboardInterrupt), interrupted_after_checkpoints(2):
        train(data, 4, ckpt)
    resumed, history = train(data, 4, ckpt)
    assert history["epoch"] == [0, 1, 2, 3]
    for pa, pb in zip(full.parameters(), resumed.parameters()):
        assert torch.allclose(pa, pb)


def test_seeded_torch_restores_global_state():
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    with seeded_torch(5):
        torch.rand(10)
    assert torch.equal(torch.rand(1), expected)
