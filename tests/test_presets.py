"""The paper perturbation presets: ``aeroblade`` (AEROBLADE's tables, its fixed 9x9 blur kernel) and ``univfd``
(UnivFD's validate.py levels, scipy's blur)."""

from __future__ import annotations

import numpy as np
import torch

from bench.core.registries import PERTURBATIONS, load_plugins


def test_aeroblade_tables_are_the_papers():
    load_plugins()
    tables = {name: PERTURBATIONS.get(name).table("aeroblade") for name in ("jpeg", "crop", "blur", "noise")}
    assert tables == {"jpeg": (90, 80, 70, 60, 50), "crop": (0.9, 0.8, 0.7, 0.6, 0.5), "blur": (1, 2, 3, 4, 5),
                      "noise": (0.05, 0.10, 0.15, 0.20, 0.25)}


def test_aeroblade_blur_is_torchvisions_9x9_kernel_and_weaker_than_the_default_blur():
    from torchvision.transforms.v2 import GaussianBlur

    load_plugins()
    blur = PERTURBATIONS.get("blur")
    image = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    rng = np.random.default_rng(0)
    ours = blur.apply(image, 5, rng, "aeroblade").astype(int)
    reference = GaussianBlur(9, sigma=5.0)(torch.from_numpy(image).permute(2, 0, 1)).permute(1, 2, 0).numpy()
    assert np.abs(ours - reference.astype(int)).max() <= 1
    wide = blur.apply(image, 4, rng, "default").astype(int)  # sigma 4 with a 25x25 kernel
    assert np.std(wide) < np.std(ours)  # the truncated kernel smooths less than a full sigma-4 blur
    assert blur.fingerprint("aeroblade") != blur.fingerprint("default")


def _reference_scipy_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """scipy.ndimage.gaussian_filter's documented behaviour, written out: a separable kernel of radius
    int(4 sigma + 0.5), borders reflected with the edge pixel repeated ('symmetric'), the float result cast to uint8."""
    radius = int(4 * sigma + 0.5)
    x = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(image.astype(np.float64), ((radius, radius), (radius, radius), (0, 0)), mode="symmetric")
    rows = sum(k * padded[i:i + image.shape[0]] for i, k in enumerate(kernel))
    both = sum(k * rows[:, i:i + image.shape[1]] for i, k in enumerate(kernel))
    return both.astype(np.uint8)


def test_univfd_tables_are_its_validate_options_and_level_0_is_the_identity():
    load_plugins()
    jpeg, blur, crop = (PERTURBATIONS.get(name) for name in ("jpeg", "blur", "crop"))
    assert jpeg.table("univfd") == (100, 90, 80, 70, 60, 50, 40, 30)
    assert blur.table("univfd") == (1, 2, 3, 4)
    assert (jpeg.table_preset("univfd"), blur.table_preset("univfd"), crop.table_preset("univfd")) == (
        "univfd", "univfd", "default")  # UnivFD tested only JPEG and blur: the rest runs the default tables
    image = np.random.default_rng(1).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    for p in (jpeg, blur):
        assert np.array_equal(p.apply(image, 0, np.random.default_rng(0), "univfd"), image)


def test_univfd_blur_is_scipys_gaussian_filter_and_differs_from_the_default_blur():
    load_plugins()
    blur = PERTURBATIONS.get("blur")
    image = np.random.default_rng(2).integers(0, 256, (30, 41, 3), dtype=np.uint8)
    before = image.copy()
    for level, sigma in zip(blur.levels("univfd")[1:], blur.table("univfd")):
        ours = blur.apply(image, level, np.random.default_rng(0), "univfd")
        assert ours.dtype == np.uint8 and ours.shape == image.shape
        assert np.abs(ours.astype(int) - _reference_scipy_blur(image, sigma).astype(int)).max() <= 1
    assert np.array_equal(image, before)  # the input is not mutated
    default = blur.apply(image, 1, np.random.default_rng(0), "default")
    assert not np.array_equal(blur.apply(image, 1, np.random.default_rng(0), "univfd"), default)
    assert blur.fingerprint("univfd") != blur.fingerprint("default")


def test_univfd_preset_is_accepted_by_the_cli_and_the_config(capsys):
    from bench.cli.main import build_parser, main
    from bench.run.config import PRESETS as CONFIG_PRESETS
    from perturbations import PRESETS

    assert "univfd" in PRESETS and set(CONFIG_PRESETS) == set(PRESETS)
    assert main(["list", "perturbations", "--preset", "univfd"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith(("jpeg ", "blur "))}
    assert rows["jpeg"][-9:] == ["univfd", "100", "90", "80", "70", "60", "50", "40", "30"]
    assert rows["blur"][-5:] == ["univfd", "1", "2", "3", "4"]
    assert build_parser().parse_args(["run", "--preset", "univfd"]).preset == "univfd"
