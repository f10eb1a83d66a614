"""The ImageNet-C corruptions against the paper's formulas (Hendrycks and Dietterich 2019) on fixed inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from bench.core.registries import PERTURBATIONS
from perturbations import IMAGENET_C_CORRUPTIONS, imagenet_c
from perturbations.spec import parse_perturb_spec


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def grey(value: int, height: int = 64, width: int = 64) -> np.ndarray:
    return np.full((height, width, 3), value, dtype=np.uint8)


def random_image(height: int = 40, width: int = 56, seed: int = 1) -> np.ndarray:
    return rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_the_preset_names_fourteen_of_the_fifteen_with_the_release_constants():
    assert len(IMAGENET_C_CORRUPTIONS) == 14 and "frost" not in PERTURBATIONS
    assert [name for name, _ in parse_perturb_spec("imagenet-c", "imagenet-c")] == list(IMAGENET_C_CORRUPTIONS)
    tables = {name: PERTURBATIONS.get(name).table("imagenet-c") for name in ("shot_noise", "contrast", "pixelate")}
    assert tables == {"shot_noise": (60, 25, 12, 5, 3), "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
                      "pixelate": (0.6, 0.5, 0.4, 0.3, 0.25)}
    assert PERTURBATIONS.get("elastic").table("imagenet-c")[0] == pytest.approx((488, 170.8, 24.4))


@pytest.mark.parametrize("photons", [60, 12, 5])
def test_shot_noise_is_poisson_with_variance_x_over_photons(photons):
    out = imagenet_c.shot_noise(grey(64, 128, 128), photons, rng()).astype(np.float64) / 255
    x = 64 / 255  # dark enough that clipping at 1 is negligible
    assert out.mean() == pytest.approx(x, abs=0.01)
    assert out.var() == pytest.approx(x / photons, rel=0.1)


@pytest.mark.parametrize("amount", [0.03, 0.27])
def test_impulse_noise_replaces_the_amount_half_by_salt_half_by_pepper(amount):
    out = imagenet_c.impulse_noise(grey(128, 128, 128), amount, rng())
    salt, pepper = (out == 255).mean(), (out == 0).mean()
    assert salt + pepper == pytest.approx(amount, rel=0.05) and salt == pytest.approx(pepper, rel=0.15)
    assert ((out == 128) | (out == 0) | (out == 255)).all()


@pytest.mark.parametrize("radius", [3, 10])
def test_defocus_kernel_is_a_normalised_antialiased_disk(radius):
    kernel = imagenet_c.disk_kernel(radius, 0.5)
    # radius 10 fills its 21 x 21 grid and the antialiasing blur reflects at the border: the release's kernel
    # then sums to 1.011, kept as it is
    assert kernel.sum() == pytest.approx(1, abs=1e-5 if radius <= 8 else 0.02)
    centre = kernel.shape[0] // 2
    y, x = np.indices(kernel.shape) - centre
    assert (kernel[np.hypot(x, y) > radius + 1.5] < 1e-5).all()  # nothing beyond the disk and its antialiasing
    assert kernel[centre, centre] == pytest.approx(1 / ((np.hypot(x, y) <= radius).sum()), rel=0.05)
    out = imagenet_c.defocus_blur(grey(90), (radius, 0.5), rng())
    assert (out == round(90 * float(kernel.sum()))).all()  # a flat image stays flat (times the kernel's mass)


def test_motion_kernel_and_streak_follow_imagemagick():
    radius, sigma = 15, 5
    weights = imagenet_c.motion_kernel(radius, sigma)
    taps = np.arange(31)
    assert np.allclose(weights, np.exp(-taps**2 / (2 * sigma**2)) / np.exp(-taps**2 / (2 * sigma**2)).sum())
    dot = np.zeros((41, 41))
    dot[20, 20] = 1
    horizontal = imagenet_c.streak(dot, radius, sigma, 0)
    # output(x) = sum_i w_i * input(x + i): the dot spreads to the pixels left of it, weights in order
    assert np.allclose(horizontal[20, 20::-1][:21], weights[:21]) and horizontal[20, 21:].sum() == 0
    assert horizontal[:20].sum() == 0 and horizontal[21:].sum() == 0


def test_zoom_blur_averages_the_image_and_its_centre_zooms():
    ramp = np.repeat(np.linspace(0, 255, 64)[None, :, None], 3, axis=2).repeat(64, axis=0).astype(np.uint8)
    out = imagenet_c.zoom_blur(ramp, (1, 1.11, 0.01), rng()).astype(np.float64)
    assert (imagenet_c.zoom_blur(grey(77), (1, 1.31, 0.03), rng()) == 77).all()
    assert abs(out[:, 31:33].mean() - ramp[:, 31:33].mean()) <= 2  # the centre stays where it is
    assert out[:, 0].mean() > ramp[:, 0].mean() + 2  # the edges are pulled towards the centre


def test_fog_adds_a_scaled_plasma_fractal():
    fractal = imagenet_c.plasma_fractal(64, 2, rng(3))
    assert fractal.min() == 0 and fractal.max() == 1 and fractal.shape == (64, 64)
    strength, value = 1.5, 100 / 255
    out = imagenet_c.fog(grey(100), (strength, 2), rng(3)).astype(np.float64) / 255
    expected = (value + strength * fractal)[..., None] * value / (value + strength)
    assert np.abs(out - expected).max() <= 0.5 / 255 + 1e-9


@pytest.mark.parametrize("factor", [0.4, 0.05])
def test_contrast_scales_around_each_channel_mean(factor):
    image = random_image()
    x = image / 255
    mean = x.mean(axis=(0, 1), keepdims=True)
    expected = np.clip((x - mean) * factor + mean, 0, 1) * 255
    assert np.abs(imagenet_c.contrast(image, factor, rng()) - expected).max() <= 0.5 + 1e-9


@pytest.mark.parametrize("fraction", [0.5, 0.25])
def test_pixelate_is_a_box_down_and_up(fraction):
    image = random_image(32, 32)
    block = int(1 / fraction)
    means = image.reshape(32 // block, block, 32 // block, block, 3).mean(axis=(1, 3))
    out = imagenet_c.pixelate(image, fraction, rng())
    assert np.abs(out.astype(np.float64) - np.kron(means, np.ones((block, block, 1)))).max() <= 1
    assert np.array_equal(out, np.array(Image.fromarray(image).resize((32 // block,) * 2, Image.BOX)
                                        .resize((32, 32), Image.BOX)))


def test_glass_blur_and_elastic_keep_a_flat_image_flat_and_move_texture():
    assert (imagenet_c.glass_blur(grey(60, 24, 30), (1.5, 4, 2), rng()) == 60).all()
    assert (imagenet_c.elastic(grey(60, 24, 30), (12.2, 2.44, 4.88), rng()) == 60).all()
    image = random_image()
    nearly = imagenet_c.elastic(image, (1e-6, 2.44, 0.0), rng())  # no affine shift, a vanishing field
    assert np.abs(nearly.astype(int) - image).max() <= 1


def test_snow_without_flakes_only_whitens():
    image = random_image()
    no_flakes = (0.1, 0.01, 2, 0.99, 10, 4, 1.0)  # every flake under the threshold; keep the image as it is
    assert np.abs(imagenet_c.snow(image, no_flakes, rng()).astype(int) - image).max() <= 1
    whiten = (0.1, 0.01, 2, 0.99, 10, 4, 0.0)
    x = image.astype(np.float32) / 255
    grey_ = (0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2])[..., None]
    expected = np.clip(np.maximum(x, grey_ * 1.5 + 0.5), 0, 1) * 255
    assert np.abs(imagenet_c.snow(image, whiten, rng()) - expected).max() <= 1


def test_glass_blur_pulls_neighbours_like_the_release():
    """With sigma ~0 the blurs do nothing, so the sweeps alone act: every output pixel is an input pixel."""
    image = random_image(20, 20)
    out = imagenet_c.glass_blur(image, (1e-3, 1, 1), rng())
    colours = {tuple(p) for p in image.reshape(-1, 3)}
    assert all(tuple(p) in colours for p in out.reshape(-1, 3))
    assert not np.array_equal(out, image) and math.isfinite(out.mean())
