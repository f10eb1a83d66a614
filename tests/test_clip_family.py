"""The CLIP family on a tiny randomly initialised CLIP: shared feature cache, losses, SAM, every head.

The ``test_tiny_clip`` backbone is random; the numbers these tests see say nothing about the
real detectors. What they check is plumbing: one forward pass per image and cell, a re-run with
none, the losses and the SAM step against their definitions, and that every head fits, scores
and (where the method allows) attributes.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch

from bench.nn import backbones, clip_features
from helpers import interrupted_after_checkpoints
from bench.core.cache import Cache
from bench.core.detector import FitContext
from bench.core.registries import DETECTORS, PERTURBATIONS, create_detector, load_plugins
from bench.data.imageset import ImageSet, PerturbedImageSet
from bench.nn.backbones import get_backbone
from bench.nn.clip_features import ClipFeatures
from bench.nn.frozen_head import FeatureRows, rows_to_tensor
from bench.nn.losses import auc_squared_hinge, cvar, cvar_auc_loss
from bench.nn.sam import SAM, disable_running_stats
from bench.nn.training import TrainConfig, seeded_torch, train_classifier
from bench.run.config import RunConfig
from bench.run.runner import Runner, expand_detectors

TEST_HEADS = ["test_clip.svm", "test_clip.finetune", "test_clip.text_mlp", "test_clip.univfd", "test_clip.occ_clip"]
GENERATORS = {"real", "blocky", "grid"}


@pytest.fixture(scope="module")
def splits(tiny_splits):
    return tiny_splits




def ctx_with(cache: Cache | None, seed: int = 0) -> FitContext:
    return FitContext(device="cpu", seed=seed, workers=0, progress=False, cache=cache)


def tiny_extractor(cache: Cache | None, seed: int = 0) -> ClipFeatures:
    return ClipFeatures(get_backbone("test_tiny_clip"), None, "random", seed, "cpu", cache, batch_size=16)


# --------------------------------------------------------------------------- registry


def test_backbones_are_data_and_match_the_weights_catalog():
    from bench.weights.catalog import get_spec

    for name in ("clip_vit_b16", "clip_vit_l14"):
        spec = get_backbone(name)
        assert spec.component == name and get_spec(name).arch == spec.arch and not spec.test
    tiny = get_backbone("test_tiny_clip")
    assert tiny.test and tiny.component is None and tiny.model_cfg["vision_cfg"]["image_size"] == 32


def test_test_variants_are_marked_and_never_in_all():
    load_plugins()
    for name in TEST_HEADS:
        meta = DETECTORS.entry(name).meta
        assert name.startswith("test_") and meta["test"] and meta["weights"] == ()
        assert meta["kwargs"]["backbone"] == "test_tiny_clip"
    assert not set(TEST_HEADS) & set(expand_detectors(["all"]))
    for name in ("clip_svm", "clip_finetune", "clip_text_mlp", "univfd", "occ_clip"):
        cls = DETECTORS.get(name)
        assert DETECTORS.entry(name).meta["weights"] == cls.info.weights
        assert set(DETECTORS.entry(name).meta["tasks"]) == set(cls.info.tasks)


# --------------------------------------------------------------------------- losses and SAM


def test_cvar_against_hand_values():
    losses = torch.tensor([3.0, 1.0, 5.0, 2.0, 4.0])
    assert cvar(losses, 0.8).item() == pytest.approx((5 + 4 + 3 + 2) / 4)  # the worst 80 %: 4 of 5
    assert cvar(losses, 0.5).item() == pytest.approx((5 + 4 + 0.5 * 3) / 2.5)  # 2.5 samples: half of the third
    assert cvar(losses, 1.0).item() == pytest.approx(3.0)  # the mean
    assert cvar(losses, 0.2).item() == pytest.approx(5.0)  # the worst one
    # the Rockafellar-Uryasev definition: min over lambda of lambda + E[(l - lambda)+] / alpha
    for alpha in (0.8, 0.5, 0.3):
        lam = torch.linspace(0, 6, 6001)
        ru = (lam + torch.relu(losses[None, :] - lam[:, None]).mean(dim=1) / alpha).min()
        assert cvar(losses, alpha).item() == pytest.approx(ru.item(), abs=1e-3)
    x = losses.clone().requires_grad_(True)
    cvar(x, 0.5).backward()
    assert x.grad.tolist() == pytest.approx([0.2, 0.0, 0.4, 0.0, 0.4])  # weights 1/2.5 on the tail, 0.5/2.5 on 3


def test_auc_loss_and_combined_loss_against_hand_values():
    logits = torch.tensor([2.0, 0.0, 0.5, 1.0])
    y = torch.tensor([1, 0, 1, 0])
    # pairs (pos, neg): (2,0) 0; (2,1) 0; (0.5,0) (0.6-0.5)^2 = 0.01; (0.5,1) (0.6+0.5)^2 = 1.21
    assert auc_squared_hinge(logits, y, margin=0.6).item() == pytest.approx((0.01 + 1.21) / 4)
    assert auc_squared_hinge(logits, torch.zeros(4, dtype=torch.long)).item() == 0.0
    bce = [np.log1p(np.exp(-2.0)), np.log1p(np.exp(0.0)), np.log1p(np.exp(-0.5)), np.log1p(np.exp(1.0))]
    tail = sorted(bce, reverse=True)
    cvar_hand = (tail[0] + tail[1] + tail[2] + 0.2 * tail[3]) / 3.2  # alpha 0.8 of 4 samples = 3.2
    expected = 0.5 * cvar_hand + 0.5 * (0.01 + 1.21) / 4
    assert cvar_auc_loss(logits, y, alpha=0.8, gamma=0.5, margin=0.6).item() == pytest.approx(expected, rel=1e-6)


def test_sam_step_matches_its_two_step_definition():
    torch.manual_seed(0)
    x, y = torch.randn(8, 3), torch.randn(8)
    w0 = torch.randn(3)
    loss_at = lambda w: ((x @ w - y) ** 2).mean()  # noqa: E731
    lr, rho = 0.1, 0.05
    # by hand: g = grad at w; e = rho g / |g|; step with the gradient at w + e
    w = w0.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss_at(w), w)
    w_adv = (w0 + rho * g / g.norm()).requires_grad_(True)
    (g_adv,) = torch.autograd.grad(loss_at(w_adv), w_adv)
    expected = w0 - lr * g_adv

    param = torch.nn.Parameter(w0.clone())
    opt = SAM([param], torch.optim.SGD, rho=rho, lr=lr)
    loss_at(param).backward()
    opt.first_step(zero_grad=True)
    assert torch.allclose(param.detach(), w0 + rho * g / g.norm())
    loss_at(param).backward()
    opt.second_step(zero_grad=True)
    assert torch.allclose(param.detach(), expected, atol=1e-6)


def test_second_sam_pass_leaves_batchnorm_statistics_alone():
    bn = torch.nn.BatchNorm1d(3)
    bn.train()
    bn(torch.randn(16, 3) + 5)
    before = bn.running_mean.clone()
    with disable_running_stats(bn):
        bn(torch.randn(16, 3) - 5)
    assert torch.equal(bn.running_mean, before) and bn.momentum == 0.1


def test_sam_cosine_training_resumes_to_the_same_weights(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    rows = FeatureRows(x, [f"h{i}" for i in range(40)])
    cfg = TrainConfig(epochs=4, batch_size=8, lr=1e-2, optimizer="adamw", sam_rho=0.05, schedule="cosine",
                      patience=10)
    ctx = FitContext(device="cpu", seed=0, progress=False)

    def train(checkpoint=None):
        with seeded_torch(0):
            model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 1))
            history = train_classifier(model, rows, rows, y, y, rows_to_tensor, cfg, ctx, checkpoint=checkpoint,
                                       loss_fn=lambda logits, t: cvar_auc_loss(logits[:, 0], t))
        return model, history

    full, _ = train()
    with pytest.raises(KeyboardInterrupt), interrupted_after_checkpoints(2):
        train(tmp_path / "ckpt.pt")
    resumed, history = train(tmp_path / "ckpt.pt")
    assert history["epoch"] == [0, 1, 2, 3]
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.allclose(a.float(), b.float())


# --------------------------------------------------------------------------- the feature cache


def test_feature_cache_one_forward_pass_per_image_and_cell(splits, tmp_path):
    clip_features.reset_counters()
    cache = Cache(tmp_path / "cache")
    test = splits["test"]
    first = tiny_extractor(cache).images(test)
    assert first.shape == (len(test), 32) and first.dtype == np.float32
    assert clip_features.forward_passes() == len(test)
    assert set(clip_features.FORWARD.values()) == {1}
    # a second extractor, and a "new process" (no in-memory index, no loaded model): nothing recomputed
    clip_features._INDEXES.clear()
    backbones._MODELS.clear()
    again = tiny_extractor(cache).images(test)
    assert clip_features.forward_passes() == len(test)
    np.testing.assert_array_equal(first, again)
    # another test set sharing half the images computes only the other half
    mixed = test.subset(range(len(test) // 2)).items + splits["val"].items[:5]
    tiny_extractor(cache).images(ImageSet(mixed))
    assert clip_features.forward_passes() == len(test) + 5
    # another cell (perturbation) of the same images is new pixels: one more pass each, once
    jpeg = PerturbedImageSet(test, PERTURBATIONS.get("jpeg"), 3, seed=0)
    tiny_extractor(cache).images(jpeg)
    tiny_extractor(cache).images(jpeg)
    assert clip_features.forward_passes() == 2 * len(test) + 5
    # another run seed changes a perturbed cell's pixels, and a random backbone's weights
    tiny_extractor(cache).images(PerturbedImageSet(test, PERTURBATIONS.get("jpeg"), 3, seed=1))
    assert clip_features.forward_passes() == 3 * len(test) + 5
    assert tiny_extractor(cache, seed=1).identity != tiny_extractor(cache).identity
    files = list((tmp_path / "cache" / "clip_features").rglob("*.npz"))
    assert len(files) == 4  # one chunk per computation, not one file per image


def test_altered_feature_cache_file_is_recomputed_not_used(splits, tmp_path, caplog):
    cache = Cache(tmp_path / "cache")
    test = splits["test"]
    first = tiny_extractor(cache).images(test)
    (entry,) = (tmp_path / "cache" / "clip_features").rglob("*.npz")
    data = bytearray(entry.read_bytes())
    data[-40] ^= 0xFF  # one flipped byte, the authentication tag left as it was
    entry.write_bytes(bytes(data))
    clip_features._INDEXES.clear()
    clip_features.reset_counters()
    with caplog.at_level(logging.WARNING):
        again = tiny_extractor(cache).images(test)
    assert "authentication tag does not match" in caplog.text
    assert clip_features.forward_passes() == len(test)
    np.testing.assert_array_equal(first, again)


def test_without_a_cache_features_are_computed_each_time(splits):
    clip_features.reset_counters()
    a = tiny_extractor(None).images(splits["val"])
    b = tiny_extractor(None).images(splits["val"])
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert clip_features.forward_passes() == 2 * len(splits["val"])


# --------------------------------------------------------------------------- every head


@pytest.mark.parametrize("name", TEST_HEADS)
def test_every_clip_head_fits_scores_and_attributes(name, splits, tmp_path):
    det = create_detector(name)
    ctx = ctx_with(Cache(tmp_path / "cache"))
    det.fit(splits["train"], splits["val"], ctx)
    pred = det.predict(splits["test"], ctx)
    assert pred.score.shape == (len(splits["test"]),)
    assert np.isfinite(pred.score).all() and ((pred.score >= 0) & (pred.score <= 1)).all()
    if "attribution" in det.info.tasks:
        assert set(det.classes) == GENERATORS
        assert pred.source is not None and pred.source.shape == pred.score.shape
        assert set(pred.source) <= GENERATORS
    else:
        assert pred.source is None
    import pickle

    clone = pickle.loads(pickle.dumps(det))  # the runner caches fitted detectors by pickling them
    np.testing.assert_allclose(clone.predict(splits["test"], ctx).score, pred.score, atol=1e-6)


def test_svm_binary_task_and_selection_record(splits, tmp_path):
    det = create_detector("test_clip.svm", task="binary", views=("orig", "hflip"), k_best=16)
    det.fit(splits["train"], splits["val"], ctx_with(Cache(tmp_path / "c")))
    pred = det.predict(splits["test"], ctx_with(Cache(tmp_path / "c")))
    assert pred.source is None and det.classes == []
    sel = det.config()["selection"]
    assert sel["C"] in (10.0, 1.0) and sel["train_rows"] == 2 * len(splits["train"])


def test_text_mlp_uses_captions_and_records_the_fallback(splits, tmp_path):
    train = splits["train"]
    captioned = [dataclasses.replace(it, caption=f"a picture number {i}") if it.label == 1 else it
                 for i, it in enumerate(train.items)]
    clip_features.reset_counters()
    det = create_detector("test_clip.text_mlp", epochs=1)
    det.fit(ImageSet(captioned), splits["val"], ctx_with(Cache(tmp_path / "c")))
    record = det.config()["text"]
    n_fake = int((train.labels == 1).sum())
    assert record["train"]["generated"] == {"caption": n_fake, "fallback": 0}
    assert record["train"]["real"]["caption"] == 0 and record["caption_shortcut_risk"] is True
    assert "COCO" in record["fallback"]
    n_texts = len(clip_features.TEXT_FORWARD)
    assert n_texts == n_fake + 80  # each caption once, plus the fallback prompt bank once


def test_occ_clip_prompt_tower_reproduces_clip_text_encoder():
    from baselines.occ_clip import PromptClassifier

    bb = tiny_extractor(None).backbone()
    with seeded_torch(0):
        model = PromptClassifier(bb.model, bb.tokenizer, 4, 1.0)
    with torch.no_grad():
        model.ctx.copy_(bb.model.token_embedding(model.tokens[0, 1:5]))  # the embedding of "X X X X"
        ours = model.text_features()
        theirs = bb.model.encode_text(model.tokens)
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert set(model.state_dict()) == {"ctx", "tokens", "prefix", "suffix"}  # the frozen tower is not state


def test_occ_clip_few_shot_and_fgsm_replace_half_the_non_target_rows(splits, tmp_path):
    det = create_detector("test_clip.occ_clip", shots=6)
    train = splits["train"]
    idx, y = det._split(train, "grid", seed=0, few_shot=True)
    assert (y == 1).sum() == 6 and (y == 0).sum() == 6
    assert {train.generators[i] for i in idx[y == 1]} == {"grid"} and {train.generators[i] for i in idx[y == 0]} == {
        "real"}
    ctx = ctx_with(Cache(tmp_path / "c"))
    det._init_seed = 0
    extractor = det.extractor(ctx)
    sub = train.subset(idx)
    clean = extractor.images(sub)
    rows = FeatureRows(clean.copy(), sub.hashes)
    from baselines.occ_clip import PromptClassifier

    bb = extractor.backbone()
    with seeded_torch(0):
        model = PromptClassifier(bb.model, bb.tokenizer, 4, float(bb.model.logit_scale.exp()))
    det._fgsm_hook(extractor, sub, rows, clean.copy(), y, 0, "grid")(0, model)
    changed = np.flatnonzero(np.abs(rows.rows - clean).max(axis=1) > 1e-6)
    assert len(changed) == 3 and (y[changed] == 0).all()  # half of the 6 non-target rows, never a target row


# --------------------------------------------------------------------------- through the runner


def test_runner_heads_share_one_forward_pass_per_image_and_cell(tiny_dataset, tmp_path):
    cache = Cache(tmp_path / "cache")
    cfg = RunConfig(detectors=["test_clip.svm", "test_clip.univfd"], dataset=str(tiny_dataset), perturb="jpeg:3",
                    bootstrap=10, device="cpu", workers=1)

    def run(out):
        return Runner(cfg, tmp_path / out, cache, progress=False, log=lambda *_: None).run()

    clip_features.reset_counters()
    record = run("a")
    assert {d: r.status for d, r in record.detectors.items()} == {"test_clip.svm": "ok",
                                                                         "test_clip.univfd": "ok"}
    scores = pd.read_parquet(tmp_path / "a" / "scores.parquet")
    test_hashes = set(scores["sha256"])
    per_cell: Counter = Counter()
    for (identity, group, sha), n in clip_features.FORWARD.items():
        assert identity.startswith("test_tiny_clip@random")
        if sha in test_hashes:
            assert n == 1, (group, sha)
            per_cell[group] += 1
    assert len(per_cell) == 2 and set(per_cell.values()) == {len(test_hashes)}  # clean + jpeg, every test image

    clip_features.reset_counters()
    run("b")  # the same run again
    assert clip_features.forward_passes() == 0

    cfg.detectors = ["test_clip.text_mlp"]  # a new head on the same backbone: fits and scores from the cache
    record = run("c")
    assert record.detectors["test_clip.text_mlp"].status == "ok"
    assert "text" in record.detectors["test_clip.text_mlp"].config  # the text source is in run.json
    assert clip_features.forward_passes() == 0

    # without the runner's fit and cell caches, in a "new process": refit and rescore, still no forward pass
    shutil.rmtree(cache.root / "fits")
    shutil.rmtree(cache.root / "cells")
    clip_features._INDEXES.clear()
    backbones._MODELS.clear()
    cfg.detectors = ["test_clip.svm", "test_clip.univfd"]
    run("d")
    assert clip_features.forward_passes() == 0
    cols = ["detector", "image_id", "perturbation", "severity", "score", "pred_source"]
    same = [pd.read_parquet(tmp_path / out / "scores.parquet")[cols].sort_values(cols[:4]).reset_index(drop=True)
            for out in ("a", "d")]
    pd.testing.assert_frame_equal(*same)  # the refit from cached features gives the same scores
