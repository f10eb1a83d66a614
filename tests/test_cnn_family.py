"""The CNN family: effnet_mc (NYCU), CNNDet and NPR on the shared training loop.

Tiny registered variants (test_effnet_mc, test_cnndet, test_npr) train for a step and
score; the 5-channel input is built correctly; an interrupted fit resumes from its
checkpoint to the same weights; augmentation draws only from the generator it is given.
"""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
import torch

from helpers import interrupted_after_checkpoints
from bench.core.cache import Cache
from bench.core.detector import FitContext
from bench.core.registries import DETECTORS, PERTURBATIONS, create_detector, load_plugins
from bench.data.imageset import PerturbedImageSet
from detectors.channels import build_channels, fft_channel, reconstruction_error, vae_autoencoder

pytestmark = pytest.mark.slow  # trains the CNN detectors: the fast loop is pytest -m "not slow"

TEST_VARIANTS = ["test_effnet_mc", "test_cnndet", "test_npr"]


@pytest.fixture(scope="module")
def splits(tiny_splits):
    return tiny_splits




def ctx(tmp_path=None, **fields) -> FitContext:
    if tmp_path is not None:
        fields.setdefault("cache", Cache(tmp_path / "cache"))
    return FitContext(device="cpu", seed=0, workers=0, batch_size=16, progress=False, **fields)


def cosine_image(size: int = 32, k: int = 4) -> np.ndarray:
    """A grey uint8 image, constant down the columns, one cosine of k cycles across."""
    x = np.arange(size)
    row = np.round(100 + 50 * np.cos(2 * np.pi * k * x / size)).astype(np.uint8)
    return np.repeat(np.tile(row, (size, 1))[:, :, None], 3, axis=2)


# -- the input channels ------------------------------------------------------------------------------------------


def test_fft_channel_of_a_known_pattern():
    size, k = 32, 4
    grey = 100 + 50 * np.cos(2 * np.pi * k * np.arange(size) / size)
    rgb = torch.from_numpy(np.tile(grey / 255.0, (3, size, 1)))  # float64, 3 x H x W, equal channels
    spec = fft_channel(rgb)[0].numpy()
    c = size // 2
    expected = np.zeros((size, size))
    expected[c, c] = 20 * np.log1p(100 * size * size)  # the mean, at the centre after fftshift
    expected[c, c - k] = expected[c, c + k] = 20 * np.log1p(25 * size * size)  # the cosine: half its amplitude each
    np.testing.assert_allclose(spec, expected, atol=1e-3)


def test_error_channel_is_zero_for_a_perfect_autoencoder():
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(reconstruction_error(x, lambda t: t), torch.zeros(2, 1, 16, 16))
    half = reconstruction_error(x, lambda t: t / 2)  # |x - x/2| = x/2, so grey(x)/2
    torch.testing.assert_close(half, 0.5 * reconstruction_error(x, lambda t: torch.zeros_like(t)))
    assert half.shape == (2, 1, 16, 16) and half.min() >= 0


def test_five_channel_input_stacks_rgb_error_and_spectrum():
    det = create_detector("test_effnet_mc")  # 32 px, channels rgb_err_fft
    image = cosine_image(32)
    err = np.full((32, 32), 0.25, dtype=np.float16)
    x = det.raw_input(image, err)
    assert x.shape == (5, 32, 32)
    torch.testing.assert_close(x[:3], torch.from_numpy(image).permute(2, 0, 1).float() / 255)
    assert torch.all(x[3] == 0.25)
    peaks = torch.nonzero(x[4] > 150).tolist()  # the mean and the cosine; rounding to uint8 leaves far less
    assert sorted(peaks) == [[16, 12], [16, 16], [16, 20]]
    assert x[4, 16, 16].item() == pytest.approx(20 * np.log1p(100 * 32 * 32), abs=0.5)
    assert x[4, 16, 12].item() == pytest.approx(20 * np.log1p(25 * 32 * 32), abs=0.5)
    flipped = det.raw_input(image, err, flip=True)
    torch.testing.assert_close(flipped[:4], x[:4].flip(-1))
    for channels, n in (("rgb", 3), ("rgb_fft", 4), ("rgb_err", 4)):
        assert create_detector("test_effnet_mc", channels=channels).raw_input(image, err).shape[0] == n
    with pytest.raises(ValueError, match="error map"):
        build_channels(x[:3], None, "rgb_err")


def test_error_maps_come_from_the_given_pixels_and_are_cached(splits, tmp_path):
    det = create_detector("test_effnet_mc")
    c = ctx(tmp_path)
    test = splits["test"]
    maps = det.errors(test, range(4), c)
    assert len(maps) == 4 and maps[0].shape == (32, 32) and maps[0].dtype == np.float16
    from bench.nn.training import resize_to_tensor

    x = torch.stack([resize_to_tensor(test[i], 32) for i in range(4)])
    with torch.no_grad():
        direct = reconstruction_error(x, vae_autoencoder(det._load_vae(torch.device("cpu"))))[:, 0].numpy()
    np.testing.assert_allclose(np.stack(maps).astype(np.float32), direct, atol=2e-3)

    def no_vae(*_):
        raise AssertionError("the VAE ran although every error map was cached")

    det._load_vae = no_vae
    again = det.errors(test, range(4), c)
    assert all(np.array_equal(a, b) for a, b in zip(maps, again))
    blurred = PerturbedImageSet(test, PERTURBATIONS.get("blur"), 4, seed=0)
    with pytest.raises(AssertionError, match="VAE ran"):  # a perturbed cell is new pixels: recomputed
        det.errors(blurred, range(1), c)


def test_error_maps_are_stored_float16_values_with_the_unrounded_gradient():
    """What predict caches and what a white-box attack differentiates: the float16 map, straight through."""
    from detectors.effnet_mc import error_maps

    reconstruct = vae_autoencoder(create_detector("test_effnet_mc")._load_vae(torch.device("cpu")))
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0), requires_grad=True)
    stored = error_maps(x, reconstruct)
    exact = reconstruction_error(x, reconstruct)[:, 0]
    assert stored.shape == (2, 32, 32) and torch.equal(stored, exact.half().float())
    assert not torch.equal(stored, exact)  # the rounding is there to be passed straight through
    weights = torch.rand(2, 32, 32, generator=torch.Generator().manual_seed(1))
    (through,) = torch.autograd.grad((stored * weights).sum(), x)
    (unrounded,) = torch.autograd.grad((exact * weights).sum(), x)
    assert through.abs().sum() > 0 and torch.equal(through, unrounded)


def test_stem_keeps_rgb_filters_and_extra_channels_start_from_their_mean(tmp_path):
    import timm
    from safetensors.torch import save_file

    with torch.random.fork_rng():
        torch.manual_seed(1)
        source = timm.create_model("test_efficientnet", pretrained=False, num_classes=1000)
    path = tmp_path / "model.safetensors"
    save_file(source.state_dict(), str(path))
    det = create_detector("test_effnet_mc", pretrained=True)
    det.weights_provenance = {"effnet_b0": {"path": str(path), "sha256": "x"}}
    model = det._build_model(3)
    w, w0 = model.conv_stem.weight.detach(), source.conv_stem.weight.detach()
    assert w.shape[1] == 5
    assert torch.equal(w[:, :3], w0)
    for extra in (3, 4):
        torch.testing.assert_close(w[:, extra], w0.mean(dim=1))
    assert torch.equal(model.bn1.running_var, source.bn1.running_var)
    assert model.classifier.out_features == 3
    det.weights_provenance = {"effnet_b0": {"random": True}}  # random init allowed: no file needed
    assert det._build_model(3).conv_stem.weight.shape[1] == 5


def test_cnndet_loads_imagenet_weights_and_replaces_the_head(tmp_path):
    from torchvision.models.resnet import BasicBlock, ResNet

    source = ResNet(BasicBlock, [1, 1, 1, 1])
    path = tmp_path / "resnet.pth"
    torch.save(source.state_dict(), path)
    det = create_detector("test_cnndet", pretrained=True)
    det.weights_provenance = {"resnet50": {"path": str(path), "sha256": "x"}}
    model = det._build_model()
    assert torch.equal(model.layer1[0].conv1.weight, source.layer1[0].conv1.weight)
    assert model.fc.out_features == 1


def test_npr_residual_is_zero_on_nearest_upsampled_images():
    from baselines.npr import npr_residual

    x = torch.rand(1, 3, 8, 10, generator=torch.Generator().manual_seed(0))
    up = x.repeat_interleave(2, -2).repeat_interleave(2, -1)
    assert torch.equal(npr_residual(up), torch.zeros_like(up))
    res = npr_residual(x)
    assert torch.all(res[..., ::2, ::2] == 0)
    torch.testing.assert_close(res[..., 1, 1], x[..., 1, 1] - x[..., 0, 0])
    ref = x - torch.nn.functional.interpolate(torch.nn.functional.interpolate(x, scale_factor=0.5, mode="nearest"),
                                              scale_factor=2, mode="nearest")
    torch.testing.assert_close(res, ref)
    assert npr_residual(torch.rand(1, 3, 7, 9)).shape == (1, 3, 6, 8)  # odd sizes lose the last row/column


# -- augmentation ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TEST_VARIANTS)
def test_augmentation_is_seeded(name, splits):
    det = create_detector(name)
    det.stats = {"err": (0.0, 1.0), "fft": (0.0, 1.0)}  # effnet_mc: set by fit(), not needed by the others
    image = splits["train"][0]
    item = (image, np.zeros((32, 32), np.float16)) if name == "test_effnet_mc" else image

    def draw(seed, global_seed):
        np.random.seed(global_seed)  # global random state must not matter
        random.seed(global_seed)
        torch.manual_seed(global_seed)
        return det._transform(item, np.random.default_rng(seed))

    first = [draw(s, 0) for s in range(8)]
    assert all(torch.equal(a, draw(s, 99)) for s, a in enumerate(first))
    assert any(not torch.equal(first[0], a) for a in first[1:]), "different generators, different views"
    assert torch.equal(det._transform(item, None), det._transform(item, None)), "evaluation is deterministic"


def test_cnndet_blur_and_jpeg_follow_the_paper_distributions(monkeypatch):
    import baselines.cnndet as cnndet

    calls = {"blur": [], "jpeg": []}
    monkeypatch.setattr(cnndet, "blur", lambda im, s: calls["blur"].append(s) or im)
    monkeypatch.setattr(cnndet, "jpeg", lambda im, q, m: calls["jpeg"].append((q, m)) or im)
    image = np.zeros((8, 8, 3), np.uint8)
    rng = np.random.default_rng(0)
    for _ in range(2000):
        cnndet.blur_jpeg_augment(image, rng, 0.1, 0.5)
    assert 150 < len(calls["blur"]) < 250 and 900 < len(calls["jpeg"]) < 1100
    assert all(0 <= s <= 3 for s in calls["blur"])
    qualities = [q for q, _ in calls["jpeg"]]
    assert min(qualities) == 30 and max(qualities) == 100
    assert {m for _, m in calls["jpeg"]} == {"cv2", "pil"}


def test_cnndet_augmentation_really_blurs_and_compresses():
    from baselines.cnndet import blur_jpeg_augment

    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    image.setflags(write=False)  # decoded images are shared and read-only
    out = blur_jpeg_augment(image, np.random.default_rng(0), 1.0, 1.0)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - image).mean() > 10  # noise does not survive blur + JPEG
    assert np.array_equal(out, blur_jpeg_augment(image, np.random.default_rng(0), 1.0, 1.0))


# -- training, scoring, resuming ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,overrides", [
    ("test_effnet_mc", {}), ("test_effnet_mc", {"channels": "rgb_fft", "task": "binary"}),
    ("test_cnndet", {}), ("test_npr", {}),
])
def test_detector_trains_a_step_and_scores(name, overrides, splits, tmp_path):
    det = create_detector(name, epochs=1, **overrides)
    c = ctx(tmp_path)
    det.fit(splits["train"], splits["val"], c)
    assert det.history["epoch"] == [0]
    pred = det.predict(splits["test"], c)
    assert pred.score.shape == (len(splits["test"]),)
    assert np.isfinite(pred.score).all() and ((pred.score >= 0) & (pred.score <= 1)).all()
    if name == "test_effnet_mc" and det.task == "attribution":
        assert det.classes == ["blocky", "grid", "real"]
        assert set(pred.source) <= set(det.classes)
    else:
        assert pred.source is None
    restored = pickle.loads(pickle.dumps(det))  # the runner caches fitted detectors by pickling them
    assert getattr(restored, "_vae", None) is None
    np.testing.assert_allclose(restored.predict(splits["test"], c).score, pred.score, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", TEST_VARIANTS)
def test_interrupted_fit_resumes_to_the_same_weights(name, splits, tmp_path, monkeypatch):
    import bench.nn.training as training

    full = create_detector(name, epochs=3)
    full.fit(splits["train"], splits["val"], ctx(tmp_path))

    ckpt = tmp_path / "ckpt.pt"
    with pytest.raises(KeyboardInterrupt), interrupted_after_checkpoints(1) as saves:
        create_detector(name, epochs=3).fit(splits["train"], splits["val"], ctx(tmp_path, checkpoint=ckpt))
    assert saves["n"] == 1 and ckpt.exists()
    original = training._save_checkpoint
    epochs_run = []
    monkeypatch.setattr(training, "_save_checkpoint",
                        lambda path, state: epochs_run.append(state["epoch"]) or original(path, state))
    resumed = create_detector(name, epochs=3)
    resumed.fit(splits["train"], splits["val"], ctx(tmp_path, checkpoint=ckpt))
    assert epochs_run == [1, 2], "the resumed fit starts after the last finished epoch"
    assert resumed.history["epoch"] == full.history["epoch"]
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-6), key


def test_registered_variants():
    load_plugins()
    expected = {"effnet_mc": "rgb_err_fft", "effnet_mc.rgb": "rgb", "effnet_mc.rgb_fft": "rgb_fft",
                "effnet_mc.rgb_err": "rgb_err"}
    for name, channels in expected.items():
        det = create_detector(name)  # the paper profile: 512 px as the original; fast: 224 px
        assert det.channels == channels and det.arch == "efficientnet_b0" and det.size == 512
        assert create_detector(name, "fast").size == 224
        assert "effnet_b0" in DETECTORS.entry(name).meta["weights"]
        assert ("sd_vae_sd1" in DETECTORS.entry(name).meta["weights"]) == ("err" in channels)
    assert create_detector("cnndet.p05").p == 0.5 and create_detector("cnndet.p01").p == 0.1
    assert create_detector("cnndet.p05").arch == "resnet50"
    assert DETECTORS.entry("npr").meta["weights"] == ()
    for name in TEST_VARIANTS:
        assert DETECTORS.entry(name).meta.get("test") and DETECTORS.entry(name).meta["weights"] == ()


def test_runner_fits_caches_and_scores_the_test_variants(tiny_dataset, tmp_path):
    from bench.run.config import RunConfig
    from bench.run.runner import Runner

    cfg = RunConfig(detectors=TEST_VARIANTS, dataset=str(tiny_dataset), perturb="noise:1", device="cpu",
                    workers=1, bootstrap=0)
    record = Runner(cfg, tmp_path / "out", Cache(tmp_path / "cache"), progress=False, log=lambda *_: None).run()
    for name in TEST_VARIANTS:
        assert record.detectors[name].status == "ok", record.detectors[name]
    assert list((tmp_path / "cache" / "effnet_mc_err").glob("*.npz")), "error maps cached"
