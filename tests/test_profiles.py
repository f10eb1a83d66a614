"""Detector profiles (paper by default, fast for CI and make demo, custom on any override) and the
fidelity fixes that go with them: NPR's step schedule, CNNDet's plateau rule, last-epoch selection,
native-resolution centre crops, UnivFD's training views, and clip_svm's image-grouped calibration folds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from bench.core.cache import Cache
from bench.core.detector import SMOKE_CLASSES, SMOKE_TRAIN, SMOKE_VAL, FitContext
from bench.core.errors import BenchError
from bench.core.registries import DETECTORS, create_detector, load_plugins
from bench.data.crops import centre_crop_pad
from bench.nn.frozen_head import FeatureRows, rows_to_tensor
from bench.nn.passes import count_passes
from bench.nn.training import TrainConfig, seeded_torch, step_factor, train_classifier
from bench.run.config import RunConfig
from bench.run.suites import suite_config


# ---------------------------------------------------------------- profile machinery


def test_paper_is_the_default_and_fast_keeps_the_ci_settings():
    paper, fast = create_detector("npr"), create_detector("npr", "fast")
    assert paper.profile == "paper" and (paper.load, paper.crop_size, paper.test_crop) == (256, 224, None)
    assert paper.test_resize == 256 and fast.test_resize is None  # the whole 256 image at test; fast: no resize
    assert paper.cfg.keep == "last" and paper.cfg.schedule == "step" and paper.cfg.epochs == 50
    assert fast.profile == "fast" and (fast.load, fast.crop_size, fast.test_crop) == (None, 64, 128)
    assert fast.cfg.keep == "best" and fast.cfg.schedule == "constant" and fast.cfg.epochs == 10
    assert paper.config()["profile"] == "paper" and paper.config() != fast.config()  # separate fit cache keys


def test_an_override_makes_the_profile_custom_and_unknown_profiles_are_refused():
    assert create_detector("npr", "paper", epochs=3).profile == "custom"
    with pytest.raises(BenchError, match="unknown profile"):
        create_detector("npr", "quick")
    with pytest.raises(BenchError, match="profile"):
        RunConfig.from_dict({"profile": "quick"})


def test_every_detector_builds_in_both_profiles_and_test_models_stay_fast():
    load_plugins()
    for name in DETECTORS.names():
        for profile in ("paper", "fast"):
            detector = create_detector(name, profile)
            if DETECTORS.entry(name).meta.get("test"):
                assert detector.profile == "fast", name


# A fast profile may pass at most FAST_PASSES images through its backbone while fitting on the smoke run's data
# (Detector.training_passes on SMOKE_*), so a new detector cannot quietly make the smoke run slow.
FAST_PASSES = 500
load_plugins()


@pytest.mark.parametrize("name", DETECTORS.names())
def test_every_fast_profile_declares_a_smoke_sized_training_budget(name):
    passes = create_detector(name, "fast").training_passes(SMOKE_TRAIN, SMOKE_VAL, SMOKE_CLASSES)
    assert 0 <= passes <= FAST_PASSES, f"{name}: {passes} network passes to fit the smoke set"


def test_the_training_budget_counts_epochs_views_and_adversarial_passes():
    assert create_detector("npr", "paper").training_passes(24, 24, 4) == 50 * 48  # 50 epochs over 48 images
    assert create_detector("clip_svm", "paper").training_passes(24, 24, 4) == 11 * 24 + 24  # 11 views
    assert create_detector("cnndet.released").training_passes(24, 24, 4) == 0  # loads weights, trains nothing
    # occ_clip: clean embeddings once, then per generator (3) and epoch (200): the prompts through the text
    # encoder for 2 training steps (12 shots, batch 10) and 1 validation batch, and FGSM on half of the 6 real
    # shots (a forward + backward pass and a forward pass each); the prompts once per FGSM round and at the end
    assert create_detector("occ_clip", "paper").training_passes(24, 24, 4) == 48 + 3 * (200 * (3 + 1 + 2 * 3) + 1)


@pytest.mark.parametrize("name", ["test_npr", "test_clip.svm", "test_clip.occ_clip"])
def test_the_declared_training_budget_is_the_passes_fit_makes(name, tiny_splits, tmp_path):
    detector = create_detector(name)  # epochs x images; views x images; prompt steps and FGSM rounds
    train, val = tiny_splits["train"], tiny_splits["val"]
    with count_passes(min_parameters=1000) as count:  # the tiny networks hold a few thousand parameters
        detector.fit(train, val, FitContext(device="cpu", seed=0, progress=False, cache=Cache(tmp_path)))
    assert count[0] == detector.training_passes(len(train), len(val), len(set(train.generators))) > 0


def test_the_ci_suite_runs_the_fast_profile():
    assert RunConfig.from_dict(suite_config("ci")).profile == "fast"
    assert RunConfig().profile == "paper"


def test_stores_without_a_profile_column_still_load_and_leaderboards_flag_non_paper_profiles(tmp_path):
    from bench.report.leaderboard import leaderboard_frame, leaderboard_markdown
    from bench.report.runs import read_run
    from bench.run.record import RunRecord
    from bench.run.store import write_store

    row = {"detector": "npr", "weights": "trained", "profile": "fast", "dataset": "demo", "generator": "all",
           "perturbation": "none", "severity": 0, "param": float("nan"), "param_label": "clean",
           "metric": "roc_auc", "value": 0.8, "ci_low": 0.7, "ci_high": 0.9, "n": 10, "higher_is_better": True,
           "seed": 0}
    record = RunRecord("r1", seed=0, datasets={"demo": {"hash": "h"}})
    write_store(tmp_path / "new", record, [row], [])
    results, _, stored = read_run(tmp_path / "new")
    text = leaderboard_markdown(leaderboard_frame(results, "roc_auc"), results, [stored])
    assert "NOT the paper settings: fast profile for npr" in text
    old = tmp_path / "old"
    write_store(old, record, [row], [])
    pd.read_parquet(old / "results.parquet").drop(columns="profile").to_parquet(old / "results.parquet")
    results, _, _ = read_run(old)
    assert set(results["profile"]) == {"unrecorded"}
    paper = results.assign(profile="paper")
    assert "NOT the paper" not in leaderboard_markdown(leaderboard_frame(paper, "roc_auc"), paper, [stored])


# ---------------------------------------------------------------- schedules and selection


def test_step_schedule_follows_npr_train_py():
    """NPR multiplies the rate by 0.9 after epochs 10, 20, ... (0-based): epoch 11 is the first at 0.9."""
    factors = [step_factor(e, 10, 0.9) for e in range(32)]
    assert factors[:11] == [1.0] * 11 and factors[11:21] == [0.9] * 10 and factors[21] == pytest.approx(0.81)


def _train_rows(cfg: TrainConfig, select):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    rows = FeatureRows(x, [str(i) for i in range(40)])
    with seeded_torch(0):
        model = torch.nn.Linear(4, 1)
        history = train_classifier(model, rows, rows, y, y, rows_to_tensor, cfg,
                                   FitContext(device="cpu", seed=0, progress=False), select=select)
    return model, history


def test_plateau_rule_divides_the_rate_and_stops_below_the_floor():
    never_better = iter([1.0] + [0.0] * 100)
    _, history = _train_rows(TrainConfig(epochs=100, lr=1e-3, batch_size=20, patience=1, plateau_factor=0.1,
                                         stop_lr=1e-6), lambda y, p: next(never_better))
    # 1e-3 -> 1e-4 -> 1e-5 -> 1e-6 -> 1e-7 (< floor: stop): the first plateau ends at epoch 1; each drop
    # starts a phase whose first epoch is its reference (as the originals' fresh EarlyStopping), so each of
    # the next three phases lasts two epochs
    assert len(history["epoch"]) == 2 + 3 * 2
    _, constant = _train_rows(TrainConfig(epochs=100, lr=1e-3, batch_size=20, patience=1),
                              lambda y, p, it=iter([1.0] + [0.0] * 100): next(it))
    assert len(constant["epoch"]) == 2  # without the rule: stop at the first plateau


def test_keep_last_keeps_the_last_epoch_not_the_best():
    scores = iter([0.9, 0.1, 0.2])
    last, history = _train_rows(TrainConfig(epochs=3, lr=1e-1, batch_size=8, patience=10, keep="last"),
                                lambda y, p: next(scores))
    scores = iter([0.9, 0.1, 0.2])
    best, _ = _train_rows(TrainConfig(epochs=3, lr=1e-1, batch_size=8, patience=10), lambda y, p: next(scores))
    assert history["best_epoch"] == 0 and not torch.equal(last.weight, best.weight)


# ---------------------------------------------------------------- native-resolution crops


def test_centre_crop_pad_matches_torchvision_center_crop():
    from PIL import Image
    from torchvision.transforms import CenterCrop

    rng = np.random.default_rng(1)
    for shape in [(300, 257, 3), (224, 224, 3), (100, 301, 3), (37, 50, 3)]:
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        expected = np.asarray(CenterCrop(224)(Image.fromarray(image)))
        assert np.array_equal(centre_crop_pad(image, 224), expected), shape


def test_cnndet_paper_scores_the_native_centre_crop_and_fast_resizes_first():
    from baselines.cnndet import to_normalised_tensor

    image = np.random.default_rng(2).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    paper = create_detector("cnndet.p05", arch="test_resnet", load=40, crop=32, pretrained=False)
    assert torch.equal(paper._transform(image, None), to_normalised_tensor(image[16:48, 32:64]))
    fast = create_detector("test_cnndet")  # load 40: a 64x96 image is shrunk to 40x60 before its 32 crop
    assert not torch.equal(fast._transform(image, None), paper._transform(image, None))


def test_univfd_training_view_is_the_original_transform_and_seeded():
    from baselines.univfd import univfd_training_view

    image = np.random.default_rng(3).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    a = univfd_training_view(image, np.random.default_rng(5))
    assert a.shape == (224, 224, 3)
    assert np.array_equal(a, univfd_training_view(image, np.random.default_rng(5)))


def test_univfd_validation_view_is_the_originals_fixed_mid_strength_degradation():
    from baselines.cnndet import crop_square, resize_shorter
    from baselines.univfd import univfd_validation_view

    image = np.random.default_rng(4).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    clean = crop_square(resize_shorter(image, 256), 224, None)
    views = [univfd_validation_view(image, np.random.default_rng(seed)) for seed in range(8)]
    assert all(v.shape == (224, 224, 3) for v in views)
    degraded = [not np.array_equal(v, clean) for v in views]
    assert any(degraded) and not all(degraded)  # p 0.5 each: some views stay clean (p 0.25), most do not


def test_native_crop_features_are_kept_apart_from_resized_ones():
    from bench.nn.backbones import get_backbone
    from bench.nn.clip_features import ClipFeatures

    spec = get_backbone("test_tiny_clip")
    resize, native = (ClipFeatures(spec, None, "random", 0, crop=c) for c in ("resize", "native"))
    assert resize.identity != native.identity
    assert create_detector("univfd").feature_pass() != create_detector("clip_text_mlp").feature_pass()
    assert create_detector("univfd", "fast").feature_pass() == create_detector("clip_text_mlp").feature_pass()


# ---------------------------------------------------------------- clip_svm calibration


def test_clip_svm_calibration_folds_hold_out_every_view_of_an_image_together():
    from detectors.clip_svm import calibration_folds

    n_images, n_views = 30, 5
    y_one = np.array(["real"] * 15 + ["sd"] * 10 + ["gan"] * 5, dtype=object)
    y, groups = np.tile(y_one, n_views), np.tile(np.arange(n_images), n_views)
    folds = calibration_folds(y, groups)
    assert len(folds) == 5
    held_out = np.concatenate([test for _, test in folds])
    assert sorted(held_out.tolist()) == list(range(len(y)))  # a partition of the rows
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
        assert set(y[train]) == set(y_one)
    assert calibration_folds(np.array(["real", "real", "sd", "sd"]), np.array([0, 0, 1, 1])) == []


def test_list_detectors_verbose_names_fast_settings_and_shared_passes(capsys):
    from bench.cli.main import main

    assert main(["list", "detectors", "-v"]) == 0
    out = capsys.readouterr().out
    npr = out.split("\nnpr\n", 1)[1].split("\n\n", 1)[0]
    assert "fast profile: crop=64, test_crop=128, load=None" in npr
    svm = out.split("\nclip_svm\n", 1)[1].split("\n\n", 1)[0]
    assert "shares that pass with: occ_clip" in svm
    assert "attacks: white-box (pgd, fgsm) and transfer" in npr
    assert "attacks: transfer only" in svm
