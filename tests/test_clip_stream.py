"""The frozen-CLIP heads through the scoring stream (bench/run/clip_stream.py): the executor's streamed
features give exactly ``predict``'s scores, every head on one backbone and preprocessing shares one
forward pass per image and cell, and a run whose features are cached makes none. Tiny random CLIP
(``test_tiny_clip``): the numbers mean nothing, the plumbing is what is checked."""

from __future__ import annotations

import numpy as np
import pytest

from bench.core.cache import Cache
from bench.core.detector import FitContext
from bench.core.registries import create_detector
from bench.nn import clip_features
from bench.run.executors.local import LocalExecutor
from bench.run.plan import CLEAN, Execution, compile_cell
from bench.run.stream import Failure
from bench.run.work import CellJob

CELLS = [CLEAN, compile_cell("noise", 3, "default")]


def ctx_with(cache: Cache | None) -> FitContext:
    return FitContext(device="cpu", seed=0, workers=0, batch_size=8, progress=False,
                      cache=cache)


@pytest.fixture(scope="module")
def heads(tiny_splits, tmp_path_factory):
    """The four heads on one backbone with the eval resize, and univfd on its native centre crop."""
    ctx = ctx_with(Cache(tmp_path_factory.mktemp("fit-cache")))
    made = [create_detector(name) for name in ("test_clip.svm", "test_clip.text_mlp", "test_clip.univfd",
                                               "test_clip.occ_clip")]
    made.append(create_detector("test_clip.univfd", crop="native"))
    for head in made:
        head.fit(tiny_splits["train"], tiny_splits["val"], ctx)
    return made


def score(heads, test, cache: Cache | None, workers: int) -> dict:
    """{(cell, head position): Prediction} through the local executor."""
    settings = Execution(device="cpu", workers=workers, batch_size=8)
    jobs = [CellJob(cell, list(heads)) for cell in CELLS]
    out = {}
    for job, head, outcome in LocalExecutor().score(jobs, test, settings, ctx_with(cache)):
        assert not isinstance(outcome, Failure), outcome.reason
        out[(job.cell, heads.index(head))] = outcome
    return out


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_heads_score_exactly_as_predict_with_one_forward_pass_per_image_and_cell(
        heads, tiny_splits, tmp_path, workers):
    test = tiny_splits["test"]
    clip_features.reset_counters()
    streamed = score(heads, test, Cache(tmp_path / "cache"), workers)
    identities = {h.extractor(ctx_with(None)).identity for h in heads}
    assert len(identities) == 2  # the eval resize (four heads) and univfd's native crop
    for identity in identities:  # one pass per image and cell, whatever the number of heads on it
        assert clip_features.forward_passes(identity) == len(CELLS) * len(set(test.hashes))
    assert set(clip_features.FORWARD.values()) == {1}

    for cell in CELLS:
        for k, head in enumerate(heads):
            plain = head.predict(cell.images(test, seed=0), ctx_with(None))
            assert np.array_equal(plain.score, streamed[(cell, k)].score), (head.name, cell)
            if plain.source is not None:
                assert list(plain.source) == list(streamed[(cell, k)].source)

    clip_features.reset_counters()
    again = score(heads, test, Cache(tmp_path / "cache"), workers)  # features cached: no forward pass
    assert clip_features.forward_passes() == 0
    assert all(np.array_equal(again[key].score, streamed[key].score) for key in streamed)


def test_only_the_images_the_cache_lacks_are_streamed_in_predicts_batches(heads, tiny_splits, tmp_path):
    """Half a cell cached: the stream computes the other half, batched as ``predict`` would batch it."""
    test = tiny_splits["test"]
    half = test.subset(range(0, len(test), 2))
    caches = [Cache(tmp_path / name) for name in ("a", "b")]
    for cache in caches:
        heads[0].features(half, ctx_with(cache))
    clip_features.reset_counters()
    streamed = score(heads[:1], test, caches[0], workers=0)
    n_half = len(set(test.hashes) - set(half.hashes))
    assert clip_features.forward_passes() == n_half + len(set(test.hashes))  # clean: the other half; noise: all
    plain = heads[0].predict(test, ctx_with(caches[1]))
    assert np.array_equal(plain.score, streamed[(CLEAN, 0)].score)


def test_the_feature_preparation_is_open_clips_eval_transform_built_without_a_model():
    """Workers prepare CLIP pixels with bench.nn.backbones.eval_transform, never loading a model: it must be
    the transform open_clip builds with each real backbone (its model config's preprocessing, if any)."""
    import open_clip
    from open_clip.transform import PreprocessCfg, image_transform_v2

    from bench.nn.backbones import BACKBONES, eval_transform

    for name in BACKBONES.names():
        spec = BACKBONES.get(name)
        if spec.test:
            continue
        model_cfg = open_clip.get_model_config(spec.arch)
        assert model_cfg["vision_cfg"]["image_size"] == spec.image_size
        preprocess = PreprocessCfg(**{**(model_cfg.get("preprocess_cfg") or {}), "size": spec.image_size})
        assert repr(eval_transform(spec)) == repr(image_transform_v2(preprocess, is_train=False)), name
