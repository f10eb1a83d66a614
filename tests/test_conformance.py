"""Conformance of catalog components with their libraries' own pretrained loaders (issue 13, section 2).

Each test writes random weights of the exact architecture in the exact upstream file and cache layout,
resolves them through the real resolver, loads them through the detector's real load path, and
compares with the library's own pretrained loader pointed at the same files offline. The file made
here is pinned by a *test catalog entry* (the real entry with the made file's sha256): the catalog is
data, and no check is weakened for users.

Covered so far: ``resnet50`` (torchvision, torch hub cache). Small components run always; large ones
(CLIP ViT-L/14 is 1.7 GB) are to run only with BENCH_CONFORMANCE_LARGE=1.
"""

from __future__ import annotations

import dataclasses

import torch

from bench import weights as W
from bench.core.hashing import sha256_file
from bench.weights.catalog import get_spec
from tests.test_weights import isolated, no_network  # noqa: F401  (all caches inside tmp_path, no network)


def test_resnet50_in_the_torch_hub_cache_matches_torchvision(isolated, no_network):
    import torchvision

    from baselines.cnndet import WEIGHTS, CNNDet

    torch.manual_seed(0)
    ckpt = isolated / "torch" / "hub" / "checkpoints" / "resnet50-0676ba61.pth"  # torchvision's file name
    ckpt.parent.mkdir(parents=True)
    torch.save(torchvision.models.resnet50().state_dict(), ckpt)
    spec = dataclasses.replace(get_spec("resnet50"), sha256=sha256_file(str(ckpt)))  # the test catalog entry
    got = W.resolve(spec, download=False)
    assert (got.source, got.verification, got.path) == ("torch-cache", "catalog", ckpt)

    det = CNNDet()
    det.weights_provenance = {WEIGHTS: got.to_record()}
    ours = det._build_model().eval()  # the detector's real load path (then its new 1-logit head)
    ref = torchvision.models.resnet50(weights=torchvision.models.ResNet50_Weights.IMAGENET1K_V1).eval()
    ref_state, our_state = ref.state_dict(), ours.state_dict()
    for key, value in ref_state.items():
        if not key.startswith("fc."):
            assert torch.equal(value, our_state[key]), key
    ours.fc = ref.fc = torch.nn.Identity()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(ours(x), ref(x))
