"""Helpers shared by test modules (not fixtures): import them as ``from helpers import ...``.

Both ``pytest`` and ``python -m pytest`` put tests/ on sys.path (tests/ is no package), so this import
works under either; ``tests.conftest`` only resolves when the current directory is on sys.path.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from bench.core.detector import Detector, DetectorInfo, Prediction
from external_scorer import residual_score

WILD_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "wild-dev"
#: Real pretrained weights kept next to the checkout (TAEF2, LPIPS VGG/AlexNet trunks); see its README.md.
SHARED_WEIGHTS = Path(__file__).resolve().parents[2] / "shared" / "weights"


def write_png(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def textured(rng: np.random.Generator, size: int = 48, smooth: bool = False) -> np.ndarray:
    """A random image; 'smooth' ones lack high frequencies (a crude generator artefact)."""
    base = rng.normal(128, 40, (size // 4, size // 4, 3))
    img = np.kron(base, np.ones((4, 4, 1)))
    if not smooth:
        img = img + rng.normal(0, 25, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


@contextmanager
def registry_restored(registry):
    """Entries added to ``registry`` inside the block are gone after it: detectors a test declares (external ones,
    in-process twins) must not reach the registry-wide tests that build every registered detector."""
    saved = dict(registry._entries)
    try:
        yield registry
    finally:
        registry._entries.clear()
        registry._entries.update(saved)


@contextmanager
def interrupted_after_checkpoints(n: int):
    """Simulate a kill right after the training loop writes its n-th checkpoint.

    The checkpoint is written for real, then KeyboardInterrupt is raised, so a second
    fit with the same checkpoint path has to resume from it.
    """
    import bench.nn.training as training

    original = training._save_checkpoint
    saves = {"n": 0}

    def save_then_crash(path, state):
        original(path, state)
        saves["n"] += 1
        if saves["n"] == n:
            raise KeyboardInterrupt

    training._save_checkpoint = save_then_crash
    try:
        yield saves
    finally:
        training._save_checkpoint = original


class ResidualDetector(Detector):
    """``external_scorer.residual_score`` in process: the reference the external detectors must equal exactly."""

    info = DetectorInfo(family="test", paper="mean absolute Laplacian residual (tests of external detectors)",
                        trains=False, gpu="no", outputs_probability=False)

    def predict(self, images, ctx) -> Prediction:
        return Prediction(np.array([residual_score(images[i]) for i in range(len(images))]))
