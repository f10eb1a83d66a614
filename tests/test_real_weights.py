"""Real pretrained weights from the shared folder (TAEF2, LPIPS VGG-16 trunk): they resolve through the
store, load strictly, and reproduce their documented check values. Skipped when the folder is absent."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import SHARED_WEIGHTS, WILD_DEV

pytestmark = pytest.mark.skipif(not (SHARED_WEIGHTS / "taef2").is_dir() or not (SHARED_WEIGHTS / "lpips_vgg").is_dir(),
                                reason=f"the shared real weights are absent ({SHARED_WEIGHTS}: taef2/, lpips_vgg/)")


@pytest.fixture
def shared_store(monkeypatch):
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(SHARED_WEIGHTS))
    monkeypatch.setenv("BENCH_OFFLINE", "1")
    return SHARED_WEIGHTS


def _load01(path) -> torch.Tensor:
    return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)[None].float() / 255


def test_shared_copies_resolve_from_the_store_verified_by_the_catalog(shared_store):
    from bench.weights import resolve

    taef2 = resolve("taef2", download=False)
    assert (taef2.source, taef2.verification, taef2.path) == ("store", "catalog", shared_store / "taef2")
    vgg = resolve("lpips_vgg", download=False)
    assert vgg.source == "store" and vgg.verification == "catalog"
    assert vgg.path.name == "vgg16_features.pth"
    assert vgg.sha256 == "f6c95a8f04846e3b5552a2b1d414c75d04fad08280c50e748760a1dfd5370096"


def test_taef2_state_dicts_load_strictly_and_match_the_architecture():
    from baselines.tiny_autoencoder import TinyAutoencoder

    model = TinyAutoencoder(32, midblock_gn=True)
    for part in ("encoder", "decoder"):
        state = torch.load(SHARED_WEIGHTS / "taef2" / f"taef2_{part}.pth", map_location="cpu", weights_only=True)
        assert len(state) == 79
        getattr(model, part).load_state_dict(state, strict=True)  # every key, every shape
    with pytest.raises(RuntimeError):  # without the group-norm branch the real state dict does not fit
        TinyAutoencoder(32, midblock_gn=False).load_folder(SHARED_WEIGHTS / "taef2", "taef2")


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * np.log10(1.0 / ((a - b) ** 2).mean().item()))


def test_taef2_round_trip_of_a_smooth_image_is_close():
    from baselines.tiny_autoencoder import TinyAutoencoder

    model = TinyAutoencoder(32, midblock_gn=True).load_folder(SHARED_WEIGHTS / "taef2", "taef2").eval()
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 128), torch.linspace(0, 1, 128), indexing="ij")
    smooth = torch.stack([0.2 + 0.6 * xx, 0.5 + 0.3 * torch.sin(3 * yy), 0.8 - 0.5 * xx * yy])[None]
    with torch.no_grad():
        out = model(smooth)
    assert out.shape == smooth.shape and out.min() >= 0 and out.max() <= 1
    assert _psnr(smooth, out) > 30
    with torch.no_grad():  # a random model is far off: the PSNR measures the weights, not the shapes
        assert _psnr(smooth, TinyAutoencoder(32, midblock_gn=True).eval()(smooth)) < 20


@pytest.mark.skipif(not (WILD_DEV / "dalle2" / "6fa35de50d97b680.png").is_file(), reason="wild-dev is absent")
def test_taef2_reproduces_the_documented_psnr_on_wild_dev():
    from baselines.tiny_autoencoder import TinyAutoencoder

    model = TinyAutoencoder(32, midblock_gn=True).load_folder(SHARED_WEIGHTS / "taef2", "taef2").eval()
    x = _load01(WILD_DEV / "dalle2" / "6fa35de50d97b680.png")
    with torch.no_grad():
        assert _psnr(x, model(x)) == pytest.approx(29.94, abs=0.01)  # shared/weights/README.md


def test_lpips_vgg_on_the_example_pairs_matches_the_documented_values():
    from baselines.lpips_layer import LPIPSLayer, build_lpips

    state = torch.load(SHARED_WEIGHTS / "lpips_vgg" / "vgg16_features.pth", map_location="cpu", weights_only=True)
    model = build_lpips(state)
    examples = SHARED_WEIGHTS / "lpips_vgg" / "examples"
    ref = _load01(examples / "ex_ref.png") * 2 - 1
    with torch.no_grad():
        for name, expected in (("ex_p0.png", 0.568613), ("ex_p1.png", 0.421664)):
            other = _load01(examples / name) * 2 - 1
            assert model(ref, other).item() == pytest.approx(expected, abs=2e-6)
            per_layer = model(ref, other, retPerLayer=True)[1]
            assert LPIPSLayer(model, 2)(ref, other).item() == pytest.approx(per_layer[1].item(), rel=1e-5)


def test_the_whole_torchvision_vgg16_layout_loads_too():
    from baselines.lpips_layer import build_lpips

    state = torch.load(SHARED_WEIGHTS / "lpips_vgg" / "vgg16_features.pth", map_location="cpu", weights_only=True)
    whole = {f"features.{k}": v for k, v in state.items()} | {"classifier.0.weight": torch.zeros(1)}
    a, b = build_lpips(state), build_lpips(whole)
    for (ka, va), (kb, vb) in zip(a.net.state_dict().items(), b.net.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


def test_aeroblade_taef2_scores_with_real_weights(shared_store, tmp_path):
    from bench.core.cache import Cache
    from bench.core.registries import DETECTORS, create_detector
    from bench.weights.gate import check_detector_weights
    from test_aeroblade import Images, ctx

    decision = check_detector_weights("aeroblade.taef2", DETECTORS.entry("aeroblade.taef2").meta)
    assert decision.label == "pretrained", decision.skip_reason
    det = create_detector("aeroblade.taef2")
    det.weights_provenance = decision.provenance
    ramp = np.linspace(40, 200, 64)
    smooth = np.stack([np.add.outer(ramp, ramp) / 2] * 3, axis=-1).astype(np.uint8)
    noisy = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    score = det.predict(Images([smooth, noisy]), ctx(Cache(tmp_path))).score
    assert score.shape == (2,) and np.all(score <= 0)
    assert score[0] > score[1]  # the smooth image reconstructs better than noise
    assert det.config()["processing"]["latent"].startswith("deterministic")
