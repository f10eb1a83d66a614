"""Resolver bugs of issue 13, each pinned by a test that failed before its fix.

Same isolation as tests/test_weights.py: every cache location inside tmp_path, no network.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from bench import weights as W
from bench.core.hashing import sha256_file
from bench.weights.catalog import ComponentSpec
from bench.weights.records import ChecksumMismatch
from test_weights import make_model_folder, tiny_state_dict
from weights_layouts import bench_weights, isolated, make_hf_cache, no_network  # noqa: F401

RELEASE = "https://example.invalid/releases/tiny-release.pt"


def linear_safetensors(path, seed: int = 0):
    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(torch.nn.Linear(4, 2).state_dict(), str(path))
    return path


def timm_like(**kw) -> ComponentSpec:
    """A test catalog entry: a hub repo with model.safetensors, and a release file with a published hash."""
    return ComponentSpec(name="tiny_hubfile", kind="url", url=RELEASE, repo_id="tiny-org/tiny-timm",
                         filenames=("model.safetensors",), **kw)


def test_safetensors_link_in_a_hub_snapshot_keeps_its_name(isolated, no_network):
    snap = make_hf_cache(isolated / "hf", "tiny-org/tiny-timm",
                         {"model.safetensors": linear_safetensors(isolated / "src" / "model.safetensors")})
    link = snap / "model.safetensors"
    spec = timm_like()
    got = W.resolve(spec, overrides={spec.name: str(link)})
    assert got.path.name == "model.safetensors"  # not the suffix-less blob name
    from detectors.effnet_mc import load_state_dict_file

    assert set(load_state_dict_file(got.path)) == {"weight", "bias"}
    imported = W.import_weights(spec, link)
    assert imported.path.name == "model.safetensors" and not imported.path.is_symlink()


def test_the_loader_reads_the_format_from_the_bytes(isolated):
    from detectors.effnet_mc import load_state_dict_file

    blob = linear_safetensors(isolated / "blobs" / ("ab" * 32))  # no suffix, as in a hub cache
    assert W.is_safetensors(blob) and not W.is_safetensors(tiny_state_dict(isolated / "x.pt"))
    assert set(load_state_dict_file(blob)) == {"weight", "bias"}


def test_a_known_alternate_hash_is_always_checked(isolated):
    spec = timm_like(alt_sha256=("ab" * 32,))
    release = tiny_state_dict(isolated / "dl" / "tiny-release.pt")  # the release file's name, other bytes
    with pytest.raises(ChecksumMismatch) as err:
        W.import_weights(spec, release)
    assert "ab" * 32 in str(err.value) and sha256_file(str(release)) in str(err.value)
    with pytest.raises(ChecksumMismatch):
        W.resolve(spec, overrides={spec.name: str(release)})
    # a hub-named copy has no published hash of its own: recorded (trust on first use), not refused
    assert W.import_weights(spec, linear_safetensors(isolated / "x" / "model.safetensors")).verification == "unverified"


def test_a_hub_cache_hit_whose_blob_names_its_sha256_is_verified(isolated, no_network):
    make_hf_cache(isolated / "hf", "tiny-org/tiny-timm",
                  {"model.safetensors": linear_safetensors(isolated / "src" / "model.safetensors")})
    got = W.resolve(timm_like(), download=False)
    assert (got.source, got.verification) == ("hf-cache", "hub")


def test_list_agrees_with_run_and_a_skip_names_expected_and_found(isolated, capsys, no_network):
    from bench.weights.catalog import COMPONENTS, register_component

    spec = register_component(ComponentSpec(name="tiny_pinned", kind="url", url="https://example.invalid/t.pt",
                                            sha256="cd" * 32))
    try:
        bad = tiny_state_dict(isolated / "store" / "tiny_pinned" / "t.pt")
        row = next(r for r in W.describe_status() if r["name"] == "tiny_pinned")
        assert row["status"] == "invalid"  # bench run would reject it: list must not say "present"
        assert "cd" * 32 in row["reason"] and sha256_file(str(bad)) in row["reason"]
        assert bench_weights("weights", "list") == 0
        out = capsys.readouterr().out
        assert "invalid" in next(ln for ln in out.splitlines() if ln.startswith("tiny_pinned"))
    finally:
        COMPONENTS._entries.pop(spec.name)


def test_a_passed_over_cache_copy_names_the_expected_hash(isolated, no_network):
    make_hf_cache(isolated / "hf", "tiny-org/tiny-timm",
                  {"model.safetensors": linear_safetensors(isolated / "src" / "model.safetensors")})
    with pytest.raises(W.WeightsUnavailable) as err:
        W.resolve(timm_like(sha256="cd" * 32), offline=True)
    assert "expected " + "cd" * 32 in str(err.value)


def test_an_fp16_variant_only_hub_cache_is_found_and_loads(isolated, no_network):
    from diffusers import AutoencoderKL

    from baselines.aeroblade_models import TINY_KL_CONFIG

    model = AutoencoderKL(**TINY_KL_CONFIG)
    model.to(torch.float16).save_pretrained(isolated / "src", variant="fp16")
    files = {f"vae/{p.name}": p for p in (isolated / "src").iterdir()}
    assert "vae/diffusion_pytorch_model.fp16.safetensors" in files
    make_hf_cache(isolated / "hf", "tiny-org/tiny-diffusion", files)
    spec = ComponentSpec(name="tiny_vae16", kind="hf", repo_id="tiny-org/tiny-diffusion", subfolder="vae",
                         hf_files=("config.json",), filenames=W.catalog.DIFFUSERS_WEIGHT_FILES)
    got = W.resolve(spec, download=False)
    assert got.source == "hf-cache" and got.verification == "hub"
    assert W.diffusers_variant(got.path) == "fp16"
    loaded = AutoencoderKL.from_pretrained(str(got.path), local_files_only=True, variant=W.diffusers_variant(got.path))
    assert json.loads((got.path / "config.json").read_text())["latent_channels"] == loaded.config.latent_channels
    assert W.diffusers_variant(make_model_folder(isolated / "plain")) is None


def test_every_feature_cache_keys_on_the_weights_sha256():
    """Besides fits, checkpoints and scores (tests/test_runner_weights.py): the shared CLIP feature cache and
    effnet_mc's VAE-error cache name the weights' sha256, so other weights under one name never reuse them."""
    from pathlib import Path

    from bench.nn.backbones import get_backbone
    from bench.nn.clip_features import ClipFeatures
    from detectors.effnet_mc import BACKBONE_WEIGHTS, VAE_WEIGHTS, EffNetMC

    shas = ("ab" * 32, "cd" * 32)
    clip = {ClipFeatures(get_backbone("clip_vit_b16"), Path("/w"), sha, 0).identity for sha in shas}
    vae = set()
    for sha in shas:
        det = EffNetMC()
        det.weights_provenance = {name: {"path": "/w", "sha256": sha} for name in (BACKBONE_WEIGHTS, VAE_WEIGHTS)}
        vae.add(det.vae_id())
    assert len(clip) == 2 and len(vae) == 2
