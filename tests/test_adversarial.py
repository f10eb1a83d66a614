"""Adversarial perturbations: the exact budget, the attack's effect on a detector, determinism, and the runner's
white-box / transfer / skip handling."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from bench.core.cache import Cache
from bench.core.errors import BenchError
from bench.core.registries import PERTURBATIONS
from bench.core.rng import cell_rng
from bench.run.config import RunConfig
from bench.run.runner import Runner
from perturbations import adversarial
from perturbations.spec import parse_perturb_spec

pytestmark = pytest.mark.slow  # attacks crafted in whole runs: the fast loop is pytest -m "not slow"

SEED = 7


def image(seed: int = 0, size: int = 24) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size + 5, 3), dtype=np.uint8)


def high_frequency_score(x01: torch.Tensor) -> torch.Tensor:
    """A toy differentiable detector: energy of horizontal differences (an attack can lower or raise it)."""
    return (x01[:, :, 1:] - x01[:, :, :-1]).abs().mean()


def craft(name: str, level: int, label: int, img: np.ndarray, key: str = "a") -> np.ndarray:
    attack = PERTURBATIONS.get(name)
    return attack.craft(img, level, cell_rng(SEED, key, name, level), high_frequency_score, label)


@pytest.mark.parametrize("name", ["pgd", "fgsm"])
@pytest.mark.parametrize("level", [1, 2, 3, 4, 5])
def test_budget_is_exact_after_uint8_rounding(name, level):
    img = image(level)
    original = img.copy()
    out = craft(name, level, 1, img)
    eps = adversarial.EPSILONS[level - 1]
    delta = np.abs(out.astype(int) - img.astype(int))
    assert out.dtype == np.uint8 and out.shape == img.shape and np.array_equal(img, original)
    assert delta.max() <= eps  # whole uint8 steps within eps/255
    if eps >= 1:
        assert delta.max() == int(eps)  # the sign steps use the whole budget
    assert np.array_equal(craft(name, level, 1, img), out), "same cell, different bytes"


@pytest.mark.parametrize("name", ["pgd", "fgsm"])
def test_attack_moves_the_score_away_from_the_label_and_grows_with_the_budget(name):
    img = image(3)
    clean = high_frequency_score(torch.from_numpy(img).permute(2, 0, 1).float() / 255).item()
    scores = [high_frequency_score(torch.from_numpy(craft(name, level, 1, img)).permute(2, 0, 1).float() / 255).item()
              for level in range(1, 6)]
    assert scores[0] == pytest.approx(clean)  # 0.5/255: no uint8 change is possible
    assert all(b < a for a, b in zip(scores[1:], scores[2:])) and scores[-1] < clean
    raised = craft(name, 5, 0, img)
    assert high_frequency_score(torch.from_numpy(raised).permute(2, 0, 1).float() / 255).item() > clean


def test_pgd_random_start_follows_the_cell_rng():
    img = image(1)
    assert not np.array_equal(craft("pgd", 4, 1, img, "a"), craft("pgd", 4, 1, img, "b"))


def test_attacks_refuse_a_plain_apply_and_are_not_in_all():
    with pytest.raises(BenchError, match="needs the detector"):
        PERTURBATIONS.get("pgd").apply(image(), 2, np.random.default_rng(0))
    assert not {"pgd", "fgsm"} & set(dict(parse_perturb_spec("all")))
    assert dict(parse_perturb_spec("pgd:2-3,transfer:test_cnn:1")) == {"pgd": [2, 3], "transfer:test_cnn": [1]}
    with pytest.raises(BenchError, match="did you mean 'test_cnn'"):
        parse_perturb_spec("transfer:test_cnm")


def runner_run(dataset, out, cache, perturb: str, detectors=("test_cnn", "spectral")):
    cfg = RunConfig(detectors=list(detectors), dataset=str(dataset), perturb=perturb, bootstrap=5, device="cpu",
                    workers=1)
    record = Runner(cfg, out, cache, progress=False, log=lambda *_: None).run()
    return record, pd.read_parquet(out / "scores.parquet"), pd.read_parquet(out / "results.parquet")


@pytest.fixture(scope="module")
def attacked(tiny_dataset, tmp_path_factory):
    """One run with white-box and transfer attacks: test_cnn is differentiable, spectral is not."""
    root = tmp_path_factory.mktemp("attacks")
    cache = Cache(root / "cache")
    return (cache, root, *runner_run(tiny_dataset, root / "out", cache, "pgd:2,5,transfer:test_cnn:5"))


def auc(results: pd.DataFrame, detector: str, perturbation: str, severity: int) -> float:
    row = results.query("detector == @detector and perturbation == @perturbation and severity == @severity "
                        "and generator == 'all' and metric == 'roc_auc'")
    return float(row["value"].iloc[0])


def test_white_box_lowers_auc_and_skips_the_non_differentiable(attacked):
    _, _, record, _, results = attacked
    assert auc(results, "test_cnn", "pgd", 5) < auc(results, "test_cnn", "none", 0) - 0.2
    assert auc(results, "test_cnn", "pgd", 5) <= auc(results, "test_cnn", "pgd", 2)
    assert set(results.query("detector == 'spectral'")["perturbation"]) == {"none", "transfer:test_cnn"}
    assert "not differentiable" in record.detectors["spectral"].skipped_cells["pgd:5"]
    json.dumps(record.to_dict())  # run.json holds plain JSON


def test_white_box_attack_is_identical_across_runs(attacked, tiny_dataset):
    cache, root, _, scores, _ = attacked
    shutil.rmtree(cache.root / "cells")  # the fit stays cached; the attack is crafted again
    _, again, _ = runner_run(tiny_dataset, root / "again", cache, "pgd:5", detectors=("test_cnn",))
    first = scores.query("detector == 'test_cnn' and perturbation == 'pgd' and severity == 5")["score"].to_numpy()
    second = again.query("perturbation == 'pgd' and severity == 5")["score"].to_numpy()
    assert len(first) > 0 and np.array_equal(first, second)


def test_transfer_is_crafted_on_the_surrogate_and_scored_by_every_detector(attacked, tiny_dataset):
    cache, root, _, _, results = attacked
    assert set(results.query("perturbation == 'transfer:test_cnn'")["detector"]) == {"test_cnn", "spectral"}
    assert auc(results, "test_cnn", "transfer:test_cnn", 5) < auc(results, "test_cnn", "none", 0) - 0.2
    with pytest.raises(BenchError, match="not differentiable"):
        runner_run(tiny_dataset, root / "bad", cache, "transfer:spectral:1", detectors=("test_cnn",))
