"""Released checkpoints load from files written in their authors' exact formats (random tensors, real key
names and wrappers), through the weights catalog, and score; a foreign file is a one-line error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.core.detector import FitContext
from bench.core.errors import BenchError
from bench.core.registries import DETECTORS, create_detector, load_plugins
from bench.weights.catalog import get_spec


class Images:
    """The little an ImageSet offers that the detectors read: indexing, length, hashes, cell keys."""

    def __init__(self, n: int, size: int = 40):
        rng = np.random.default_rng(0)
        self.items = [rng.integers(0, 256, (size, size + 8, 3), dtype=np.uint8) for _ in range(n)]
        self.hashes = [f"h{i}" for i in range(n)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]

    def cell_key(self, i):
        return f"{self.hashes[i]}:none@default:0"


def randomised(state: dict) -> dict:
    generator = torch.Generator().manual_seed(0)
    return {k: torch.randn(v.shape, generator=generator) if v.is_floating_point() else v for k, v in state.items()}


def released(name: str, component: str, path, **overrides):
    detector = create_detector(name, **overrides)
    detector.weights_provenance = {component: {"path": str(path), "sha256": "x"}}
    return detector


def ctx(tmp_path):
    return FitContext(device="cpu", seed=0, progress=False, batch_size=4)


@pytest.mark.parametrize("prefix", ["", "module."])
def test_cnndet_released_reads_the_model_wrapper(tmp_path, prefix):
    from baselines.cnndet import build_resnet

    net = build_resnet("test_resnet")
    net.fc = torch.nn.Linear(net.fc.in_features, 1)
    state = randomised(net.state_dict())
    path = tmp_path / "blur_jpg_prob0.5.pth"
    torch.save({"model": {prefix + k: v for k, v in state.items()}}, path)
    detector = released("cnndet.released", "cnndet_blur_jpg_p05", path, arch="test_resnet", crop=32)
    detector.fit(None, None, ctx(tmp_path))
    assert torch.equal(detector.model.state_dict()["fc.weight"], state["fc.weight"])
    assert detector.predict(Images(3), ctx(tmp_path)).score.shape == (3,)


def test_univfd_released_reads_the_bare_linear_head(tmp_path):
    path = tmp_path / "fc_weights.pth"
    state = {"weight": torch.randn(1, 32), "bias": torch.randn(1)}  # the release: [1, 768] on ViT-L/14
    torch.save(state, path)
    detector = released("univfd.released", "univfd_fc", path, backbone="test_tiny_clip")
    detector.weights_provenance["test_tiny_clip"] = {"random": True}
    detector.fit(None, None, ctx(tmp_path))
    assert torch.equal(detector.model.weight, state["weight"]) and torch.equal(detector.model.bias, state["bias"])


def test_npr_released_reads_a_plain_state_dict(tmp_path):
    from baselines.npr import NPRNet

    state = randomised(NPRNet(8, (1, 1)).state_dict())
    path = tmp_path / "NPR.pth"
    torch.save(state, path)
    detector = released("npr.released", "npr_released", path, width=8, blocks=(1, 1), test_resize=32)
    detector.fit(None, None, ctx(tmp_path))
    assert torch.equal(detector.model.state_dict()["fc1.weight"], state["fc1.weight"])
    assert detector.predict(Images(2), ctx(tmp_path)).score.shape == (2,)


def test_a_file_that_does_not_fit_is_one_line(tmp_path):
    path = tmp_path / "NPR.pth"
    torch.save({"optimizer": {"lr": 1.0}}, path)
    with pytest.raises(BenchError, match="no state dict"):
        released("npr.released", "npr_released", path, width=8, blocks=(1, 1), test_resize=32).fit(None, None, ctx(tmp_path))
    torch.save({"conv1.weight": torch.zeros(1)}, path)
    with pytest.raises(BenchError, match="does not fit"):
        released("npr.released", "npr_released", path, width=8, blocks=(1, 1), test_resize=32).fit(None, None, ctx(tmp_path))


def test_released_variants_name_catalog_components_with_source_and_licence():
    load_plugins()
    for name in ("cnndet.released", "cnndet.released_p01", "univfd.released", "npr.released"):
        meta = DETECTORS.entry(name).meta
        assert not meta["trains"]
        for component in meta["weights"]:
            spec = get_spec(component)
            assert spec.url and spec.licence != "unknown", component


@pytest.mark.parametrize("name, component, kwargs", [
    ("cnndet.released", "cnndet_blur_jpg_p05", {"arch": "test_resnet", "crop": 32}),
    ("npr.released", "npr_released", {"width": 8, "blocks": (1, 1), "test_resize": 32}),
])
def test_random_weights_give_a_seeded_network_for_smoke_runs(tmp_path, name, component, kwargs):
    """--random-weights without the released file: the network keeps a seeded initialisation (the run marks
    the component random), so a smoke run or a cost measurement goes through and repeats exactly."""
    scores = []
    for _ in range(2):
        detector = create_detector(name, **kwargs)
        detector.weights_provenance = {component: {"random": True}}
        detector.fit(None, None, ctx(tmp_path))
        scores.append(detector.predict(Images(3), ctx(tmp_path)).score)
    assert scores[0].shape == (3,) and np.array_equal(scores[0], scores[1])
