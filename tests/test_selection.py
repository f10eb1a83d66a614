"""Checkpoint selection (bench.nn.selection): on scripted validation curves, each rule keeps the epoch
the authors' code would, and the training loop keeps that epoch's weights."""

import numpy as np
import pytest
import torch

from baselines.cnndet import CNNDet
from baselines.npr import NPR
from baselines.univfd import UnivFD
from bench.core.detector import FitContext
from bench.nn.frozen_head import FeatureRows, rows_to_tensor
from bench.nn.selection import Selection
from bench.nn.training import TrainConfig, seeded_torch, train_classifier


def replay(scores: list[float], rule: str, patience: int, drops: int) -> tuple[int, int]:
    """(epoch kept, epochs trained): the loop's bookkeeping on a curve, without a network. After
    ``patience`` epochs without gain the rate drops while ``drops`` allows; the next exhaustion stops."""
    selection = Selection(rule)
    for epoch, score in enumerate(scores):
        selection.observe(epoch, score)
        if selection.exhausted(epoch, patience):
            if not drops:
                return selection.kept_epoch, epoch + 1
            drops -= 1
            selection.rate_dropped(epoch)
    return selection.kept_epoch, len(scores)


# An easy validation set: accuracy reaches 1.0 at epoch 1 and stays there. CNNDet's recipe (lr 1e-4,
# patience 5, /10 until below 1e-6: two drops, then stop): its EarlyStopping saves epoch 1, stops at
# epoch 6 (drop to 1e-5), a fresh one saves epoch 7, drops at 12 (1e-6), a fresh one saves epoch 13 and
# stops at 18, where 1e-7 ends training. model_epoch_best.pth then holds epoch 13.
EASY = [0.9] + [1.0] * 99


def test_cnndet_recipe_keeps_the_best_epoch_of_the_last_rate_phase():
    assert replay(EASY, "last_lr_phase", patience=5, drops=2) == (13, 19)


def test_univfd_recipe_keeps_the_last_epoch():
    # UnivFD's train.py overwrites model_epoch_best.pth every epoch; the same plateau rule stops it.
    assert replay(EASY, "last", patience=5, drops=2) == (18, 19)


def test_global_best_keeps_an_epoch_that_never_saw_a_lower_rate():
    assert replay(EASY, "best", patience=5, drops=2) == (1, 19)


def test_a_gain_within_the_last_phase_is_kept_and_ties_keep_the_earlier_epoch():
    curve = [0.5, 0.8, 0.7, 0.7, 0.6, 0.75, 0.75, 0.7, 0.7]  # patience 2: drop after epoch 3 (no gain since 1)
    assert replay(curve, "last_lr_phase", patience=2, drops=1) == (5, 8)  # phase 2: 0.6, 0.75 (5), tie at 6
    assert replay(curve, "best", patience=2, drops=1) == (1, 8)
    assert replay(curve, "last", patience=2, drops=1) == (7, 8)


def test_npr_recipe_trains_every_epoch_and_keeps_the_last():
    assert replay(EASY[:50], "last", patience=50, drops=0) == (49, 50)


def test_an_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="last_lr_phase"):
        Selection("first")


def test_each_paper_profile_follows_its_authors_and_fast_profiles_keep_the_best():
    assert CNNDet().cfg.keep == "last_lr_phase" and UnivFD().cfg.keep == "last" and NPR().cfg.keep == "last"
    for cls in (CNNDet, UnivFD, NPR):
        assert cls(**cls.profiles["fast"]).cfg.keep == "best"


@pytest.mark.parametrize("rule, expected", [("last_lr_phase", 13), ("last", 18), ("best", 1)])
def test_the_training_loop_keeps_the_rules_epoch(rule, expected):
    """train_classifier on EASY, with the lr floor giving CNNDet's two drops: the kept weights are those
    of the epoch the rule names (checked against a run cut short at that epoch)."""
    def fit(epochs: int, keep: str):
        rng = np.random.default_rng(0)
        x = rng.normal(size=(16, 3)).astype(np.float32)
        y = (x[:, 0] > 0).astype(np.int64)
        rows = FeatureRows(x, [str(i) for i in range(16)])
        curve = iter(EASY)
        cfg = TrainConfig(epochs=epochs, lr=1e-4, batch_size=8, patience=5, plateau_factor=0.1, stop_lr=1e-6,
                          keep=keep)
        with seeded_torch(0):
            model = torch.nn.Linear(3, 1)
            history = train_classifier(model, rows, rows, y, y, rows_to_tensor, cfg,
                                       FitContext(device="cpu", seed=0, progress=False),
                                       select=lambda t, p: next(curve))
        return model, history

    model, history = fit(100, rule)
    assert history["kept_epoch"] == expected and len(history["epoch"]) == 19 and history["best_epoch"] == 1
    cut, _ = fit(expected + 1, "last")
    assert torch.equal(model.weight, cut.weight)
