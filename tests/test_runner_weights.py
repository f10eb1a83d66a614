"""The runner and pretrained weights: skip with the fix command, --strict, --random-weights, provenance."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from bench import weights as W
from bench.core.detector import Detector, DetectorInfo, Prediction
from bench.core.errors import BenchError
from bench.core.hashing import sha256_file
from bench.core.registries import DETECTORS, load_plugins
from bench.report.write import write_leaderboards
from bench.run.config import RunConfig
from bench.run.runner import Runner
from bench.weights.catalog import COMPONENTS, ComponentSpec, register_component

COMPONENT = "tiny_linear_rt"
NAME = "probe_pretrained"


class LinearProbe(Detector):
    """Scores with a 'pretrained' 3->1 linear layer on mean colour: exists only to exercise weights."""

    info = DetectorInfo(family="test", paper="none", trains=False, weights=(COMPONENT,))

    def predict(self, images, ctx):
        layer = torch.nn.Linear(3, 1)
        path = self.weight_path(COMPONENT)
        if path is not None:
            layer.load_state_dict(torch.load(path, weights_only=True))
        x = torch.tensor(np.stack([images[i].reshape(-1, 3).mean(0) / 255 for i in range(len(images))]),
                         dtype=torch.float32)
        with torch.no_grad():
            return Prediction(torch.sigmoid(layer(x))[:, 0].numpy())


@pytest.fixture(autouse=True)
def registered(tmp_path, monkeypatch):
    load_plugins()
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path / "store"))
    monkeypatch.setenv("BENCH_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    register_component(ComponentSpec(name=COMPONENT, kind="url", url="https://example.invalid/tiny_linear.pt",
                                     size_mb=0.001, licence="MIT", description="3->1 linear layer"))
    DETECTORS.add(NAME, LinearProbe, family="test", weights=(COMPONENT,), trains=False)
    yield
    DETECTORS._entries.pop(NAME)
    COMPONENTS._entries.pop(COMPONENT)


def cfg(tiny_dataset, **kw) -> RunConfig:
    return RunConfig(detectors=["spectral", NAME], dataset=str(tiny_dataset), perturb="noise:1", bootstrap=10,
                     device="cpu", workers=1, **kw)


def run(config, out, cache):
    """A run as ``bench run --no-report`` does it: the runner, then the leaderboards."""
    record = Runner(config, out, cache, progress=False, log=lambda *_: None).run()
    write_leaderboards([out])
    return record


def test_missing_weights_skip_with_fix_command_and_others_continue(tiny_dataset, tmp_path, cache):
    record = run(cfg(tiny_dataset), tmp_path / "out", cache)
    det = record.detectors[NAME]
    assert det.status == "skipped"
    assert f"bench weights fetch {COMPONENT}" in det.reason and "\n" not in det.reason
    assert record.detectors["spectral"].status == "ok"
    res = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert set(res["detector"]) == {"spectral"}


def test_strict_turns_a_skip_into_an_error(tiny_dataset, tmp_path, cache):
    with pytest.raises(BenchError, match=f"{NAME} skipped"):
        run(cfg(tiny_dataset, strict=True), tmp_path / "out", cache)


def test_random_weights_are_labelled_and_kept_off_the_leaderboard(tiny_dataset, tmp_path, cache):
    record = run(cfg(tiny_dataset, random_weights=True), tmp_path / "out", cache)
    assert record.detectors[NAME].weights == "random"
    assert record.detectors[NAME].provenance[COMPONENT]["random"] is True
    res = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert set(res.loc[res["detector"] == NAME, "weights"]) == {"random"}
    board = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "spectral" in board and NAME not in board


def test_weights_from_the_store_are_used_and_recorded(tiny_dataset, tmp_path, cache):
    torch.manual_seed(0)
    src = tmp_path / "tiny_linear.pt"
    torch.save(torch.nn.Linear(3, 1).state_dict(), src)
    W.import_weights(COMPONENT, src)
    record = run(cfg(tiny_dataset), tmp_path / "out", cache)
    det = record.detectors[NAME]
    assert det.status == "ok" and det.weights == "pretrained"
    assert det.provenance[COMPONENT]["sha256"] == sha256_file(str(src))
    assert det.provenance[COMPONENT]["source"] == "store"
    stored = json.loads((tmp_path / "out" / "run.json").read_text())
    assert stored["detectors"][NAME]["provenance"][COMPONENT]["sha256"] == sha256_file(str(src))
    res = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert set(res.loc[res["detector"] == NAME, "weights"]) == {"pretrained"}


def test_other_weights_are_never_served_from_the_fit_and_score_caches(tiny_dataset, tmp_path, cache):
    keys, scores = [], []
    for seed in (0, 1):
        torch.manual_seed(seed)
        src = tmp_path / f"w{seed}" / "tiny_linear.pt"
        src.parent.mkdir()
        torch.save(torch.nn.Linear(3, 1).state_dict(), src)
        W.import_weights(COMPONENT, src)  # replaces the store entry: same name, new bytes
        record = run(cfg(tiny_dataset), tmp_path / f"out{seed}", cache)
        det = record.detectors[NAME]
        assert det.provenance[COMPONENT]["sha256"] == sha256_file(str(src))
        keys.append(det.fit_key)
        s = pd.read_parquet(tmp_path / f"out{seed}" / "scores.parquet")
        scores.append(s.loc[s["detector"] == NAME, "score"].to_numpy())
    assert keys[0] != keys[1]
    assert not np.allclose(scores[0], scores[1])  # the new weights' scores, not the cached ones
