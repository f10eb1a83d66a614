"""The ``aeroblade`` perturbation preset: AEROBLADE's robustness tables and its fixed 9x9 blur kernel."""

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
