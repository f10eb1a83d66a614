"""The perturbations beyond the basics: sharing chains, re-digitisation, albumentations, autoencoder round trips.

The contract (identity at 0, determinism, input untouched, dtype/shape, growth) runs over all of them in
tests/test_perturbations.py; here are their physical checks, their names and their errors.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from baselines.aeroblade_models import AUTOENCODERS as AEROBLADE_AUTOENCODERS
from bench.core.errors import BenchError
from bench.core.registries import AUTOENCODERS, PERTURBATIONS, load_plugins
from bench.core.rng import cell_rng
from perturbations import functions, get_perturbation, param_label
from perturbations.redigitise import recapture, screenshot
from perturbations.share import CHAIN, PROFILES, share, share_hop
from perturbations.families import split_top_level
from perturbations.spec import parse_perturb_spec
from helpers import SHARED_WEIGHTS


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def random_image(height: int = 40, width: int = 56, seed: int = 1) -> np.ndarray:
    return rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


# -- share ----------------------------------------------------------------------------------------


def test_share_hops_nest_along_the_chain():
    image = random_image()
    one = share_hop(image, PROFILES[CHAIN[0]], rng())
    assert np.array_equal(one, functions.jpeg(image, PROFILES[CHAIN[0]].quality, rng()))  # small: JPEG only
    assert np.array_equal(share(image, 2, rng()), share_hop(one, PROFILES[CHAIN[1]], rng()))


def test_share_fits_the_long_side_and_restores_the_shape():
    wide = random_image(120, 2400)
    hop = share_hop(wide, PROFILES["instagram"], rng())
    assert hop.shape == (54, 1080, 3)  # 120 * 1080 / 2400 = 54
    assert share(wide, 3, rng()).shape == wide.shape
    assert get_perturbation("share:Instagram").name == "share:instagram"
    with pytest.raises(BenchError, match="did you mean 'twitter'"):
        get_perturbation("share:twiter")


# -- screenshot and recapture -------------------------------------------------------------------------


def test_screenshot_gamma_acts_on_values_and_the_png_is_lossless():
    flat = np.full((32, 48, 3), 128, dtype=np.uint8)
    out = screenshot(flat, (1.5, 1.2), rng())
    assert np.abs(out.astype(float) - 255 * (128 / 255) ** 1.2).max() <= 1
    image = random_image()
    assert psnr(image, screenshot(image, (1.25, 1.0), rng())) > psnr(image, screenshot(image, (0.5, 1.0), rng()))
    with pytest.raises(BenchError, match="zoom"):
        screenshot(image, (1.0, 1.0), rng())


def test_recapture_noise_has_the_poisson_gaussian_std():
    grey = np.full((128, 128, 3), 128, dtype=np.uint8)
    out = recapture(grey, (0.0, 0.3, 0.05, 100), rng()).astype(np.float64) - 128
    luma = out @ np.array([0.299, 0.587, 0.114])  # JPEG keeps luma at q100; 4:2:0 averages the chroma
    expected = 0.05 * np.sqrt(0.5 * (128 / 255 + 0.5)) * 255 * np.sqrt(0.299**2 + 0.587**2 + 0.114**2)
    assert luma.std() == pytest.approx(expected, rel=0.1)


def test_recapture_perspective_depends_on_the_cell():
    image = random_image()
    level = PERTURBATIONS.get("recapture")
    assert not np.array_equal(level.apply(image, 3, cell_rng(0, "a", "recapture", 3)),
                              level.apply(image, 3, cell_rng(0, "b", "recapture", 3)))


# -- albu ------------------------------------------------------------------------------------------


def test_albu_names_case_levels_and_one_off_settings():
    assert parse_perturb_spec("albu:motionblur:2-3") == [("albu:MotionBlur", [2, 3])]
    [(name, levels)] = parse_perturb_spec("albu:GaussNoise{std_range=(0.1, 0.1), per_channel=False}")
    assert name == "albu:GaussNoise{std_range=(0.1, 0.1),per_channel=False}" and levels == [1]
    assert split_top_level("jpeg,albu:Affine{scale=(0.9,1.1),rotate=5}:1") == ["jpeg", "albu:Affine{scale=(0.9,1.1),rotate=5}:1"]
    assert param_label("albu:MotionBlur", 2) == "kernel 5 px"


@pytest.mark.parametrize("spec,message", [
    ("albu:MotionBlr", "did you mean 'MotionBlur'"),
    ("albu:MotionBlur{blur_limt=9}", "did you mean 'blur_limit'"),
    ("albu:GaussNoise{std_range=(2,1)}", "must be >= 0 and <= 1"),
    ("albu:RandomCrop{height=8,width=8}", "keep the shape"),
    ("albu:MotionBlur{9}", "key=value"),
    ("albu:", "name the albumentations transform"),
])
def test_albu_errors_are_one_line(spec, message):
    with pytest.raises(BenchError, match=message) as error:
        parse_perturb_spec(spec)
    assert "\n" not in str(error.value)


def test_albu_draws_from_the_cell_generator():
    image = random_image()
    noise = get_perturbation("albu:GaussNoise")
    a, b = (noise.apply(image, 3, cell_rng(0, key, noise.name, 3)) for key in ("a", "b"))
    assert not np.array_equal(a, b)
    assert np.array_equal(a, noise.apply(image, 3, cell_rng(0, "a", noise.name, 3)))


# -- vae_roundtrip -------------------------------------------------------------------------------------


def test_autoencoder_registry_matches_aeroblades_autoencoders():
    load_plugins()
    assert set(AUTOENCODERS.names()) == set(AEROBLADE_AUTOENCODERS)


def test_vae_roundtrip_levels_chain_and_the_weights_are_in_the_fingerprint():
    trips = get_perturbation("vae_roundtrip:test_tiny")
    image = random_image(37, 53)
    two = trips.apply(image, 2, rng())
    one = trips.apply(image, 1, rng())
    assert np.array_equal(two, trips.apply(one, 1, rng()))  # level 2 = a round trip of level 1
    assert trips.fingerprint() != trips.__class__(**{**trips.__dict__, "identity": lambda: "other"}).fingerprint()
    with pytest.raises(BenchError, match="did you mean 'taef2'"):
        get_perturbation("vae_roundtrip:taef3")


@pytest.mark.skipif(not (SHARED_WEIGHTS / "taef2").is_dir(), reason="needs the shared TAEF2 weights (../shared/weights)")
def test_taef2_roundtrip_is_close_but_not_identical(monkeypatch):
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(SHARED_WEIGHTS))
    trips = get_perturbation("vae_roundtrip:taef2")
    coarse = random_image(6, 8, 3).astype(np.float32)
    image = np.rint(cv2.resize(coarse, (64, 48), interpolation=cv2.INTER_CUBIC).clip(0, 255)).astype(np.uint8)
    out = trips.apply(image, 1, rng())
    assert out.shape == image.shape and 18 < psnr(image, out) < 60
    assert "0a44a31e" not in trips.fingerprint()  # a hash of the weights' hash, not the raw value
