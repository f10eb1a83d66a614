"""AEROBLADE: the LPIPS layer-2 distance, the max-over-autoencoders rule, sizes, the cache, the runner's threshold.

Everything runs on tiny randomly initialised autoencoders and a random VGG trunk: no weights are downloaded.
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from baselines.aeroblade import DIST_NAMESPACE, REC_NAMESPACE, Aeroblade
from baselines.aeroblade_models import AUTOENCODERS, crop_box, max_over_autoencoders, quantize_reconstruction
from baselines.lpips_layer import LPIPSLayer, build_lpips, feature_distance, load_vgg16_features
from bench.core.cache import Cache
from bench.core.detector import FitContext
from bench.core.errors import BenchError
from bench.data.imageset import ImageSet
from bench.nn.training import seeded_torch
from bench.run.config import RunConfig
from bench.run.metrics import threshold_at_tnr
from bench.run.runner import Runner

pytestmark = pytest.mark.slow  # autoencoders and LPIPS end to end: the fast loop is pytest -m "not slow"

TEST_KW = {"autoencoders": ("test_kl", "test_vq"), "lpips_backbone": "random"}


class Images:
    """The part of ImageSet a detector uses, for images of arbitrary sizes."""

    def __init__(self, arrays, hashes=None, perturbation="none"):
        self.arrays = list(arrays)
        self.hashes = list(hashes) if hashes is not None else [f"h{i}" for i in range(len(self.arrays))]
        self.perturbation = perturbation

    def __len__(self):
        return len(self.arrays)

    def __getitem__(self, i):
        return self.arrays[i]

    def cell_key(self, i):
        return f"{self.hashes[i]}:{self.perturbation}@default:0"


def ctx(cache=None, seed=0, batch_size=32):
    return FitContext(device="cpu", seed=seed, batch_size=batch_size, progress=False,
                      cache=cache)


def rand_images(sizes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]


@pytest.fixture(scope="module")
def lpips_model():
    with seeded_torch(0):
        return build_lpips(None)


@pytest.fixture(scope="module")
def detector():
    return Aeroblade(**TEST_KW)


# --- the distance ------------------------------------------------------------------------------------


@pytest.fixture
def calls(monkeypatch) -> dict:
    """Counts images passed through an autoencoder (reconstructions actually computed)."""
    counter = {"n": 0}
    original = Aeroblade._reconstruct

    def counting(self, spec, x, generators):
        counter["n"] += len(x)
        return original(self, spec, x, generators)

    monkeypatch.setattr(Aeroblade, "_reconstruct", counting)
    return counter


def test_feature_distance_matches_a_hand_computation():
    rng = np.random.default_rng(1)
    f0, f1 = rng.normal(size=(1, 3, 2, 2)), rng.normal(size=(1, 3, 2, 2))
    w = np.array([0.5, 0.0, 2.0])
    expected = 0.0
    for h in range(2):
        for x in range(2):
            n0 = f0[0, :, h, x] / (np.sqrt((f0[0, :, h, x] ** 2).sum()) + 1e-10)
            n1 = f1[0, :, h, x] / (np.sqrt((f1[0, :, h, x] ** 2).sum()) + 1e-10)
            expected += (w * (n0 - n1) ** 2).sum() / 4
    lin = torch.nn.Conv2d(3, 1, 1, bias=False)
    lin.weight.data = torch.tensor(w, dtype=torch.float64).view(1, 3, 1, 1)
    got = feature_distance(torch.tensor(f0), torch.tensor(f1), lin)
    assert got.shape == (1,) and got.item() == pytest.approx(expected, rel=1e-12)


def test_layer2_distance_is_lpips_second_vgg_layer(lpips_model):
    torch.manual_seed(0)
    x, y = torch.rand(2, 3, 32, 24) * 2 - 1, torch.rand(2, 3, 32, 24) * 2 - 1
    layer = LPIPSLayer(lpips_model, 2)
    got = layer(x, y)

    # by hand: LPIPS' scaling, VGG-16 conv1_1..relu2_2 (torchvision features 0..8), unit-normalise over
    # channels, squared difference weighted by lin1 (128 channels), mean over the (16, 12) map
    shift = torch.tensor([-.030, -.088, -.188]).view(1, 3, 1, 1)
    scale = torch.tensor([.458, .448, .450]).view(1, 3, 1, 1)
    conv = dict(lpips_model.net.slice1.named_children()) | dict(lpips_model.net.slice2.named_children())

    def relu2_2(t):
        t = (t - shift) / scale
        t = F.relu(F.conv2d(t, conv["0"].weight, conv["0"].bias, padding=1))
        t = F.relu(F.conv2d(t, conv["2"].weight, conv["2"].bias, padding=1))
        t = F.max_pool2d(t, 2)
        t = F.relu(F.conv2d(t, conv["5"].weight, conv["5"].bias, padding=1))
        return F.relu(F.conv2d(t, conv["7"].weight, conv["7"].bias, padding=1))

    fx, fy = relu2_2(x), relu2_2(y)
    assert fx.shape == (2, 128, 16, 12)
    nx = fx / (fx.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
    ny = fy / (fy.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
    w = lpips_model.lin1.model[-1].weight.view(1, 128, 1, 1)
    expected = (w * (nx - ny) ** 2).sum(1).mean((1, 2))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-8)
    # and it is the package's own per-layer LPIPS term (index 1 of five)
    _, per_layer = lpips_model(x, y, retPerLayer=True)
    torch.testing.assert_close(got, per_layer[1].flatten(), rtol=1e-5, atol=1e-8)
    assert (layer(x, x) == 0).all()


def test_lpips_linear_layers_come_from_the_package(lpips_model):
    import lpips

    from baselines.lpips_layer import lin_weights_path

    shipped = torch.load(lin_weights_path(), map_location="cpu", weights_only=True)
    torch.testing.assert_close(lpips_model.lin1.model[-1].weight, shipped["lin1.model.1.weight"])
    assert str(lin_weights_path()).startswith(str(lin_weights_path().parents[2])) and lpips


def test_vgg16_state_dict_maps_onto_the_lpips_trunk(tmp_path):
    import torchvision

    with seeded_torch(3):
        vgg = torchvision.models.vgg16(weights=None)
    path = tmp_path / "vgg16.pth"
    torch.save(vgg.state_dict(), path)
    model = build_lpips(torch.load(path, weights_only=True))
    torch.testing.assert_close(getattr(model.net.slice2, "7").weight, vgg.features[7].weight)  # conv2_2
    torch.testing.assert_close(getattr(model.net.slice5, "28").bias, vgg.features[28].bias)  # conv5_3
    with pytest.raises(ValueError, match="VGG-16"):
        load_vgg16_features(model.net, {"features.0.weight": vgg.features[0].weight})


# --- reconstruction, sizes ---------------------------------------------------------------------------------


def test_crop_box_is_centred_bounded_and_aligned():
    assert crop_box(48, 48, 8, 1024) == (0, 0, 48, 48)
    assert crop_box(37, 50, 8, 1024) == (2, 1, 32, 48)
    assert crop_box(3000, 2000, 8, 1024) == (988, 488, 1024, 1024)
    assert crop_box(37, 50, 2, 32) == (2, 9, 32, 32)
    with pytest.raises(BenchError, match="smaller"):
        crop_box(5, 100, 8, 1024)


def test_quantisation_truncates_like_the_reference():
    rec = torch.tensor([-2.0, -1.0, 0.0, 0.999, 1.5]).view(1, 1, 1, 5)
    q = quantize_reconstruction(rec).flatten().tolist()
    assert q == [0, 0, 127, 254, 255]  # (x/2+.5)*255 truncated: 127.5 -> 127


def test_images_of_any_size_and_large_ones_are_cropped_and_recorded(detector, tmp_path):
    cache = Cache(tmp_path)
    sizes = [(37, 50), (48, 48), (64, 40), (48, 48), (90, 70)]
    images = rand_images(sizes)
    det = Aeroblade(**TEST_KW, max_side=64)
    pred = det.predict(Images(images), ctx(cache))
    assert pred.score.shape == (5,) and np.isfinite(pred.score).all()
    assert det.stats["cropped_to_max_side"] == 1  # the 90x70 image
    key = det.dist_key(det.rec_key(AUTOENCODERS["test_kl"], Images(images).cell_key(4), 0))
    entry = cache.load_arrays(DIST_NAMESPACE, key)
    assert entry["shape"].tolist() == [90, 70] and entry["box"].tolist() == [13, 3, 64, 64]
    # the large image scores exactly as its recorded crop does (same content hash -> same latent noise)
    crop = np.ascontiguousarray(images[4][13:77, 3:67])
    alone = Aeroblade(**TEST_KW, max_side=64).predict(Images([crop], ["h4"]), ctx())
    assert alone.score[0] == pytest.approx(pred.score[4], rel=1e-5)


def test_scores_do_not_depend_on_order_or_batching(detector):
    images = rand_images([(32, 32), (40, 24), (32, 32), (16, 16)], seed=2)
    forward = detector.predict(Images(images), ctx())
    order = [2, 0, 3, 1]
    backward = detector.predict(Images([images[i] for i in order], [f"h{i}" for i in order]), ctx(batch_size=1))
    np.testing.assert_allclose(backward.score, forward.score[order], rtol=1e-5)


def test_latent_sampling_is_seeded(detector):
    images = Images(rand_images([(32, 32)] * 3, seed=4))
    a = detector.predict(images, ctx(seed=0)).score
    assert np.array_equal(a, Aeroblade(**TEST_KW).predict(images, ctx(seed=0)).score)
    b = detector.predict(images, ctx(seed=1)).score
    assert not np.allclose(a, b, rtol=0, atol=1e-9)  # another run seed draws other posterior samples
    # random initialisation is seeded too (models are shared between live detectors, so build afresh)
    for spec in (AUTOENCODERS["test_kl"], AUTOENCODERS["test_vq"]):
        one, two = (Aeroblade(**TEST_KW)._build_autoencoder(spec, "cpu").state_dict() for _ in range(2))
        assert all(torch.equal(one[k], two[k]) for k in one)
    mode = Aeroblade(**TEST_KW, sample_latents=False)
    assert np.array_equal(mode.predict(images, ctx(seed=0)).score, mode.predict(images, ctx(seed=1)).score)


# --- the max rule ------------------------------------------------------------------------------------------


def test_max_over_autoencoders_rule(detector, tmp_path):
    assert max_over_autoencoders([[0.1, 0.5], [0.3, 0.2]]).tolist() == [-0.1, -0.2]
    images = Images(rand_images([(32, 32)] * 4 + [(24, 40)] * 2, seed=5))
    both = detector.predict(images, ctx())
    per_ae = detector.last_distances
    np.testing.assert_array_equal(both.score, np.maximum(-per_ae["test_kl"], -per_ae["test_vq"]))
    kl = Aeroblade(autoencoders=("test_kl",), lpips_backbone="random").predict(images, ctx()).score
    vq = Aeroblade(autoencoders=("test_vq",), lpips_backbone="random").predict(images, ctx()).score
    np.testing.assert_allclose(both.score, np.maximum(kl, vq), rtol=1e-6)
    assert not np.allclose(kl, vq)


# --- the cache ---------------------------------------------------------------------------------------------


def test_cache_is_per_autoencoder_and_image_cell(tmp_path, calls):
    cache = Cache(tmp_path)
    arrays = rand_images([(32, 32)] * 3 + [(40, 24)], seed=6)
    clean = Images(arrays)
    first = Aeroblade(**TEST_KW).predict(clean, ctx(cache)).score
    assert calls["n"] == 2 * 4
    again = Aeroblade(**TEST_KW)
    assert np.array_equal(again.predict(clean, ctx(cache)).score, first)
    assert calls["n"] == 2 * 4 and again.stats["distances_cached"] == 8 and again._models == {}  # nothing loaded
    # a single-autoencoder variant shares the combined one's entries
    single = Aeroblade(autoencoders=("test_vq",), lpips_backbone="random")
    single.predict(clean, ctx(cache))
    assert calls["n"] == 8
    # a new perturbation (other cell keys) of the same images, and one new image: only those are computed
    Aeroblade(**TEST_KW).predict(Images(arrays, perturbation="jpeg"), ctx(cache))
    assert calls["n"] == 8 + 8
    Aeroblade(**TEST_KW).predict(Images(arrays + rand_images([(32, 32)], 7), clean.hashes + ["new"]), ctx(cache))
    assert calls["n"] == 16 + 2
    # another run seed samples other latents: a different key
    Aeroblade(**TEST_KW).predict(clean, ctx(cache, seed=9))
    assert calls["n"] == 18 + 4  # the KL autoencoder only: the VQ latent is not sampled


def test_cached_reconstructions_are_reused_by_another_lpips_backbone(tmp_path, calls):
    cache = Cache(tmp_path)
    images = Images(rand_images([(32, 32)] * 3, seed=8))
    a = Aeroblade(**TEST_KW, cache_reconstructions=True)
    first = a.predict(images, ctx(cache)).score
    assert calls["n"] == 6 and len(list((tmp_path / REC_NAMESPACE).glob("*.npz"))) == 6
    b = Aeroblade(**TEST_KW, cache_reconstructions=True, layer=3)  # another distance: reconstructions reused
    b.predict(images, ctx(cache))
    assert calls["n"] == 6 and b.stats["reconstructions_cached"] == 6 and b.stats["distances"] == 6
    shutil.rmtree(tmp_path / DIST_NAMESPACE)  # distances from stored 8-bit reconstructions are identical
    assert np.array_equal(Aeroblade(**TEST_KW, cache_reconstructions=True).predict(images, ctx(cache)).score, first)
    assert calls["n"] == 6


def test_runtime_state_is_not_pickled(detector):
    import pickle

    detector.predict(Images(rand_images([(16, 16)])), ctx())
    assert detector._models
    clone = pickle.loads(pickle.dumps(detector))
    assert clone._models == {} and clone._lpips is None and clone.params == detector.params
    assert len(pickle.dumps(detector)) < 10_000


def test_pretrained_autoencoder_is_loaded_from_its_resolved_folder(tmp_path):
    from diffusers import AutoencoderKL

    cfg = dict(AUTOENCODERS["test_kl"].config, block_out_channels=(8, 8, 8, 8), norm_num_groups=4,
               down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    with seeded_torch(0):
        AutoencoderKL(**cfg).save_pretrained(tmp_path / "vae")
    det = Aeroblade(autoencoders=("sd1",), lpips_backbone="random")
    det.weights_provenance = {"sd_vae_sd1": {"path": str(tmp_path / "vae"), "sha256": "ab" * 32}}
    pred = det.predict(Images(rand_images([(40, 40)])), ctx())
    assert np.isfinite(pred.score).all()
    assert det.ae_identity(AUTOENCODERS["sd1"])["weights"] == {"sha256": "ab" * 32}
    unresolved = Aeroblade(autoencoders=("sd1",), lpips_backbone="random")
    with pytest.raises(BenchError, match="not resolved"):
        unresolved.predict(Images(rand_images([(40, 40)])), ctx())


def test_bad_arguments_are_clear_errors():
    with pytest.raises(BenchError, match="sd3"):
        Aeroblade(autoencoders=("sd3",))
    with pytest.raises(BenchError, match="layer"):
        Aeroblade(layer=6)


# --- the runner: threshold at 95% TNR, no 0.5-threshold metrics, the cache across runs -----------------------


def test_runner_threshold_metrics_and_rerun_without_reconstruction(tiny_dataset, tmp_path, calls):
    cfg = RunConfig(detectors=["test_aeroblade"], dataset=str(tiny_dataset), perturb="jpeg:1", bootstrap=10,
                    device="cpu", workers=1)
    cache = Cache(tmp_path / "cache")
    record = Runner(cfg, tmp_path / "a", cache, progress=False, log=lambda *_: None).run()
    info = record.detectors["test_aeroblade"]
    assert info.status == "ok" and info.weights == "none"
    n_val, n_test = record.splits["val"], record.splits["test"]
    assert calls["n"] == 2 * (n_val + 2 * n_test)  # two autoencoders; val, clean test, jpeg test

    res = pd.read_parquet(tmp_path / "a" / "results.parquet")
    metrics = set(res["metric"])
    assert {"acc_at_val_threshold", "ap", "roc_auc", "tpr_at_fpr_5"} <= metrics
    assert not metrics & {"acc", "real_acc", "fake_acc", "balanced_acc", "ece", "brier"}

    # the threshold is the 95%-TNR point of the clean real validation scores
    from bench.run.splits import build_splits

    splits = build_splits(cfg, cache, progress=False)
    val = ImageSet(splits.val)
    val_scores = Aeroblade(**TEST_KW).predict(val, ctx(cache)).score[val.labels == 0]
    assert info.val_threshold == threshold_at_tnr(val_scores, 0.95)
    assert (val_scores < info.val_threshold).mean() >= 0.95

    # the runner's own caches gone, the per-image distances remain: no reconstruction at all
    shutil.rmtree(cache.root / "cells")
    shutil.rmtree(cache.root / "fits")
    calls["n"] = 0
    Runner(cfg, tmp_path / "b", cache, progress=False, log=lambda *_: None).run()
    assert calls["n"] == 0
    cols = ["generator", "perturbation", "severity", "metric", "value"]
    pd.testing.assert_frame_equal(res[cols].sort_values(cols[:4]).reset_index(drop=True),
                                  pd.read_parquet(tmp_path / "b" / "results.parquet")[cols]
                                  .sort_values(cols[:4]).reset_index(drop=True))
    # adding a perturbation reconstructs only its cell
    cfg.perturb = "jpeg:1,blur:2"
    Runner(cfg, tmp_path / "c", cache, progress=False, log=lambda *_: None).run()
    assert calls["n"] == 2 * n_test
