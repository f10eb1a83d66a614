"""The weights resolver: resolution order, the store, checksums, offline mode, the CLI.

Everything runs offline on tiny state dicts created here; BENCH_WEIGHTS_DIR, HF_HOME,
TORCH_HOME and HOME point into tmp_path so the real user caches are never touched.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from bench import weights as W
from bench.core.errors import BenchError
from bench.core.hashing import sha256_file
from bench.weights import download, locations
from bench.weights.catalog import ComponentSpec, component_names, get_spec
from weights_layouts import bench_weights, isolated, make_hf_cache, no_network  # noqa: F401

URL = "https://example.invalid/weights/tiny_linear-0123abcd.pt"
REAL_PROBE = download._host_reachable.__wrapped__  # the uncached reachability probe


def tiny_state_dict(path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(torch.nn.Linear(4, 2).state_dict(), path)
    return path


def url_spec(sha256: str | None = None, kind: str = "url", **kw) -> ComponentSpec:
    return ComponentSpec(name="tiny_linear", kind=kind, url=URL, sha256=sha256, size_mb=0.001,
                         licence="MIT", description="a 4->2 linear layer", **kw)


def hf_spec(**kw) -> ComponentSpec:
    return ComponentSpec(name="tiny_vae", kind="hf", repo_id="tiny-org/tiny-diffusion", subfolder="vae",
                         hf_files=("config.json",),
                         filenames=("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"), **kw)


def make_model_folder(folder: Path, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL", "seed": seed}))
    tiny_state_dict(folder / "diffusion_pytorch_model.bin", seed)
    return folder


# --------------------------------------------------------------------------- resolution


def test_offline_resolution_from_store(isolated, monkeypatch, no_network):
    src = tiny_state_dict(isolated / "elsewhere" / "tiny.pt")
    digest = sha256_file(str(src))
    spec = url_spec(sha256=digest)
    W.import_weights(spec, src)
    monkeypatch.setenv("BENCH_OFFLINE", "1")

    got = W.resolve(spec)
    assert got.source == "store" and got.sha256 == digest and got.verification == "catalog"
    assert got.path.parent == isolated / "store" / "tiny_linear"
    state = torch.load(got.path, weights_only=True)
    assert torch.equal(state["weight"], torch.load(src, weights_only=True)["weight"])
    rec = got.to_record()
    assert rec["source"] == "store" and rec["sha256"] == digest and rec["origin"].startswith("import: ")
    assert no_network == []


def test_hand_placed_store_file_resolves(isolated, no_network):
    tiny_state_dict(isolated / "store" / "tiny_linear" / "whatever.pt")
    got = W.resolve(url_spec(), offline=True)
    assert got.source == "store" and got.verification == "unverified"
    assert got.sha256 == sha256_file(str(got.path))


def test_resolution_order_override_store_cache(isolated, no_network):
    spec = url_spec(kind="torchvision")  # torchvision kind: the torch hub cache is consulted
    cached = tiny_state_dict(isolated / "torch" / "hub" / "checkpoints" / "tiny_linear-0123abcd.pt", seed=1)
    got = W.resolve(spec, offline=True)
    assert (got.source, got.path) == ("torch-cache", cached)

    W.import_weights(spec, tiny_state_dict(isolated / "a" / "store_copy.pt", seed=2))
    got = W.resolve(spec, offline=True)
    assert got.source == "store" and got.path.name == "store_copy.pt"

    override = tiny_state_dict(isolated / "b" / "mine.pt", seed=3)
    got = W.resolve(spec, overrides={"tiny_linear": str(override)}, offline=True)
    assert got.source == "override" and got.path == override.resolve()
    assert got.sha256 == sha256_file(str(override))
    assert len({sha256_file(str(p)) for p in (cached, override)}) == 2  # really different files


def test_hf_cache_folder_then_store(isolated, no_network):
    spec = hf_spec()
    model = make_model_folder(isolated / "src" / "vae")
    make_hf_cache(isolated / "hf", spec.repo_id,
                  {f"vae/{f}": model / f for f in ("config.json", "diffusion_pytorch_model.bin")})
    got = W.resolve(spec, offline=True)
    assert got.source == "hf-cache" and got.path.name == "vae" and (got.path / "config.json").is_file()
    assert got.sha256 == W.sha256_path(model)  # same model, same folder hash wherever it lives

    W.import_weights(spec, isolated / "src")  # the repo root: the vae subfolder is found
    got2 = W.resolve(spec, offline=True)
    assert got2.source == "store" and got2.sha256 == got.sha256
    assert sorted(p.name for p in got2.path.iterdir()) == [".provenance.json", "config.json",
                                                           "diffusion_pytorch_model.bin"]


def test_cache_copy_with_wrong_hash_is_passed_over(isolated, no_network):
    tiny_state_dict(isolated / "torch" / "hub" / "checkpoints" / "tiny_linear-0123abcd.pt")
    spec = url_spec(kind="torchvision", sha256="f" * 64)
    with pytest.raises(W.WeightsUnavailable) as err:
        W.resolve(spec, offline=True)
    assert "passed over" in str(err.value) and "torch-cache" in str(err.value)


def test_override_missing_path_and_bad_checksum(isolated):
    spec = url_spec(sha256="0" * 64)
    with pytest.raises(W.WeightsUnavailable, match="does not exist"):
        W.resolve(spec, overrides={"tiny_linear": str(isolated / "nope.pt")}, offline=True)
    bad = tiny_state_dict(isolated / "bad.pt")
    with pytest.raises(W.ChecksumMismatch) as err:
        W.resolve(spec, overrides={"tiny_linear": str(bad)}, offline=True)
    assert "0" * 64 in str(err.value) and sha256_file(str(bad)) in str(err.value)


def test_store_tampering_is_detected(isolated):
    spec = url_spec()
    got = W.import_weights(spec, tiny_state_dict(isolated / "x.pt"))
    assert got.verification == "unverified"  # no catalog hash: pinned on first use
    assert W.resolve(spec, offline=True).verification == "pinned"
    tiny_state_dict(got.path, seed=9)  # overwrite the stored file with other weights
    with pytest.raises(W.ChecksumMismatch) as err:
        W.resolve(spec, offline=True)
    assert got.sha256 in str(err.value) and "bench weights fetch tiny_linear --force" in str(err.value)


# --------------------------------------------------------------------------- import


def test_import_bad_checksum_names_both_hashes(isolated):
    src = tiny_state_dict(isolated / "tiny.pt")
    expected = "ab" * 32
    with pytest.raises(BenchError) as err:
        W.import_weights(url_spec(sha256=expected), src)
    msg = str(err.value)
    assert expected in msg and sha256_file(str(src)) in msg and "\n" not in msg
    assert not (isolated / "store" / "tiny_linear").exists()


def test_import_good_checksum_full_and_prefix(isolated):
    src = tiny_state_dict(isolated / "tiny.pt")
    digest = sha256_file(str(src))
    for expected in (digest, digest[:8]):
        got = W.import_weights(url_spec(sha256=expected), src)
        assert got.verification == "catalog" and got.sha256 == digest
        prov = json.loads((got.path.parent / locations.PROVENANCE_FILE).read_text())
        assert prov["sha256"] == digest and prov["method"] == "import" and prov["file"] == "tiny.pt"
    with pytest.raises(BenchError, match="does not exist"):
        W.import_weights(url_spec(), isolated / "missing.pt")


def test_import_alt_checksum_accepted(isolated):
    src = tiny_state_dict(isolated / "ViT-B-16.pt")
    spec = url_spec(sha256="1" * 64, alt_sha256=(sha256_file(str(src)),))
    assert W.import_weights(spec, src).verification == "catalog"


# --------------------------------------------------------------------------- folder hash


def test_folder_checksum_is_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    files = {"config.json": b"{}", "sub/w.bin": b"\x00\x01" * 100, "z.txt": b"z"}
    for folder, order in ((a, sorted(files)), (b, sorted(files, reverse=True))):
        for rel in order:
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(files[rel])
    (b / ".provenance.json").write_text("hidden files do not count")
    (b / ".cache").mkdir()
    (b / ".cache" / "x").write_text("nor hidden folders")
    assert W.sha256_path(a) == W.sha256_path(b)
    assert len(W.sha256_path(a)) == 64 and W.sha256_path(a) != W.sha256_path(a / "config.json")
    assert W.sha256_path(a, files=["config.json"]) != W.sha256_path(a)
    (b / "z.txt").write_bytes(b"Z")
    assert W.sha256_path(a) != W.sha256_path(b)
    (b / "z.txt").write_bytes(b"z")
    (b / "z.txt").rename(b / "y.txt")  # names are part of the hash
    assert W.sha256_path(a) != W.sha256_path(b)


# --------------------------------------------------------------------------- offline mode and downloads


@pytest.mark.parametrize("var", ["BENCH_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_mode_makes_no_network_call(monkeypatch, no_network, var):
    monkeypatch.setenv(var, "1")
    assert W.is_offline()
    with pytest.raises(W.WeightsUnavailable) as err:
        W.resolve("clip_vit_b16")
    msg = str(err.value)
    assert "offline" in msg and "bench weights fetch clip_vit_b16" in msg
    assert "bench weights import clip_vit_b16 PATH" in msg and "\n" not in msg
    with pytest.raises(BenchError, match="offline"):
        W.fetch("sd_vae_sd1")
    with pytest.raises(BenchError, match="offline"):
        W.fetch(url_spec())
    assert no_network == []


def test_failed_download_is_weights_unavailable(monkeypatch, no_network):
    """Online but unreachable: the socket guard's error comes back as a one-line WeightsUnavailable."""
    with pytest.raises(W.WeightsUnavailable) as err:
        W.resolve(url_spec(), offline=False, progress=False)
    assert "download from" in str(err.value) and "bench weights fetch tiny_linear" in str(err.value)
    assert no_network  # it did try, and was stopped
    no_network.clear()

    # the reachability probe fails fast, before any download
    for var in download._PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(download, "_host_reachable", REAL_PROBE)
    monkeypatch.setattr(download, "_download_url", lambda *a: pytest.fail("download attempted"))
    with pytest.raises(W.WeightsUnavailable, match="cannot reach example.invalid"):
        W.resolve(url_spec(), offline=False, progress=False)
    assert no_network
    with pytest.raises(W.WeightsUnavailable, match="not found"):
        W.resolve(url_spec(), offline=False, download=False)


def test_fetch_url_verifies_and_installs_atomically(isolated, monkeypatch):
    src = tiny_state_dict(isolated / "server" / "tiny.pt")
    digest = sha256_file(str(src))

    def fake_download(url, dst, progress):
        assert url == URL
        Path(dst).write_bytes(src.read_bytes())

    monkeypatch.setattr(download, "_download_url", fake_download)
    with pytest.raises(W.ChecksumMismatch) as err:
        W.fetch(url_spec(sha256="c" * 64), progress=False)
    assert "c" * 64 in str(err.value) and digest in str(err.value)
    store = isolated / "store"
    assert not (store / "tiny_linear").exists() and not (store / ".tmp").exists()

    got = W.fetch(url_spec(sha256=digest[:8]), progress=False)
    assert got.source == "download" and got.path == store / "tiny_linear" / "tiny_linear-0123abcd.pt"
    assert got.verification == "catalog" and got.origin == URL
    again = W.fetch(url_spec(sha256=digest[:8]), progress=False)  # already there: no second download
    assert again.source == "store" and again.sha256 == digest
    monkeypatch.setenv("BENCH_OFFLINE", "1")
    assert W.resolve(url_spec(sha256=digest[:8])).source == "store"


def test_resolve_downloads_when_online(isolated, monkeypatch):
    src = tiny_state_dict(isolated / "server" / "tiny.pt")
    monkeypatch.setattr(download, "_download_url", lambda url, dst, progress: Path(dst).write_bytes(src.read_bytes()))
    got = W.resolve(url_spec(), offline=False, progress=False)
    assert got.source == "download" and got.verification == "unverified"
    assert W.resolve(url_spec(), offline=True).verification == "pinned"


def test_fetch_hf_folder_checks_hub_sha256(isolated, monkeypatch):
    import huggingface_hub

    model = make_model_folder(isolated / "server" / "vae")
    calls = []

    def fake_snapshot_download(repo_id, *, revision=None, cache_dir=None, allow_patterns=None, **kw):
        calls.append(list(allow_patterns))
        have = {f"vae/{f}": model / f for f in ("config.json", "diffusion_pytorch_model.bin")}
        wanted = {k: v for k, v in have.items() if k in allow_patterns}
        return str(make_hf_cache(Path(cache_dir), repo_id, wanted))

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    got = W.fetch(hf_spec(), progress=False)
    assert calls[0] == ["vae/config.json", "vae/diffusion_pytorch_model.safetensors"]  # safetensors first
    assert calls[1] == ["vae/config.json", "vae/diffusion_pytorch_model.bin"]  # then the .bin fallback
    assert got.source == "download" and got.verification == "hub" and got.sha256 == W.sha256_path(model)
    assert got.origin.startswith("https://huggingface.co/tiny-org/tiny-diffusion/tree/")
    assert W.resolve(hf_spec(), offline=True).verification == "hub"

    def corrupt_snapshot_download(repo_id, *, cache_dir=None, allow_patterns=None, **kw):
        snap = make_hf_cache(Path(cache_dir), repo_id, {f"vae/{f}": model / f
                                                       for f in ("config.json", "diffusion_pytorch_model.bin")})
        blob = Path(os.path.realpath(snap / "vae" / "diffusion_pytorch_model.bin"))
        blob.write_bytes(b"truncated")
        return str(snap)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", corrupt_snapshot_download)
    with pytest.raises(W.ChecksumMismatch, match="expected sha256"):
        W.fetch(hf_spec(), progress=False, force=True)
    assert W.resolve(hf_spec(), offline=True).sha256 == got.sha256  # the good entry is untouched


# --------------------------------------------------------------------------- helpers and catalog


def test_parse_weight_overrides(isolated):
    f = tiny_state_dict(isolated / "w.pt")
    assert W.parse_weight_overrides([f"clip_vit_b16={f}"]) == {"clip_vit_b16": str(f)}
    assert W.parse_weight_overrides({"resnet50": str(f)}) == {"resnet50": str(f)}
    assert W.parse_weight_overrides(None) == {}
    with pytest.raises(BenchError, match="NAME=PATH"):
        W.parse_weight_overrides(["clip_vit_b16"])
    with pytest.raises(BenchError, match="did you mean 'clip_vit_b16'"):
        W.parse_weight_overrides([f"clip_vit_b61={f}"])
    with pytest.raises(BenchError, match="no such file"):
        W.parse_weight_overrides([f"clip_vit_b16={isolated / 'nope.pt'}"])
    with pytest.raises(BenchError, match="two paths"):
        W.parse_weight_overrides([f"resnet50={f}", f"resnet50={isolated}"])


def test_random_weights_allowed():
    assert W.random_weights_allowed("test_cnn", False)
    assert W.random_weights_allowed("clip_svm.test_tiny", False)
    assert not W.random_weights_allowed("clip_svm.vit_b16", False)
    assert not W.random_weights_allowed("contest_model", None)
    assert W.random_weights_allowed("clip_svm.vit_b16", True)


def test_store_dir_and_offline_env(monkeypatch, tmp_path):
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", "~/w")
    assert W.store_dir() == Path("~/w").expanduser()
    monkeypatch.delenv("BENCH_WEIGHTS_DIR")
    assert W.store_dir().parts[-2:] == ("aigi-bench", "weights")
    for value, offline in (("0", False), ("", False), ("true", True), ("YES", True)):
        monkeypatch.setenv("BENCH_OFFLINE", value)
        assert W.is_offline() is offline


def test_catalog_declares_the_project_components():
    names = set(component_names())
    assert {"clip_vit_b16", "clip_vit_l14", "effnet_b0", "resnet50", "sd_vae_sd1", "sd_vae_sd2",
            "kandinsky21_movq", "lpips_vgg"} <= names
    for name in names:
        spec = get_spec(name)
        assert spec.licence and spec.paper and spec.size_mb and spec.origin
    assert get_spec("sd_vae_sd1").is_folder and not get_spec("resnet50").is_folder
    with pytest.raises(BenchError):
        ComponentSpec(name="x", kind="ftp", url="x")
    with pytest.raises(BenchError):
        ComponentSpec(name="x", kind="url", url="u", sha256="xyz")


def test_every_component_names_its_public_source(capsys, no_network):
    """URL(s), licence and every published sha256 of each component, in the catalog and in `weights list -v`."""
    assert bench_weights("weights", "list", "-v") == 0
    out = capsys.readouterr().out
    for name in component_names():
        spec = get_spec(name)
        line = next(ln for ln in out.splitlines() if ln.startswith(f"{name}: "))
        assert spec.public_urls and all(u.startswith("https://") for u in spec.public_urls), name
        assert spec.licence != "unknown" and f"Licence: {spec.licence}." in line
        published = [h for h in spec.file_sha256 if h] or [spec.sha256 or ""]  # per file, else the one hash
        for known in (*spec.public_urls, *published, *spec.alt_sha256):
            assert known in line, (name, known)
        if spec.url and re.search(r"-[0-9a-f]{8,}\.pth?$", spec.url):  # a torch hub name carries a hash prefix
            assert spec.url.rsplit("-", 1)[1].split(".")[0] in (spec.sha256, *spec.alt_sha256), name
        if "/clip/models/" in (spec.url or ""):  # OpenAI's URL carries the file's full sha256
            assert spec.url.split("/")[-2] in spec.alt_sha256, name


def test_registered_detectors_only_name_declared_components():
    from bench.core.registries import DETECTORS, load_plugins

    load_plugins()
    declared = set(component_names())
    for det in DETECTORS.names():
        for comp in DETECTORS.entry(det).meta.get("weights", ()) or ():
            assert comp in declared, f"{det} needs undeclared weights component {comp!r}"


@pytest.mark.slow
def test_catalog_agrees_with_installed_libraries():
    """The catalog's hub ids and URLs are what open_clip, timm and torchvision would download."""
    import timm
    import torchvision.models as tvm
    from open_clip import pretrained as ocp

    for name in ("clip_vit_b16", "clip_vit_l14"):
        spec = get_spec(name)
        cfg = ocp.get_pretrained_cfg(spec.arch, spec.pretrained)
        assert cfg["hf_hub"].rstrip("/") == spec.repo_id and cfg["url"] == spec.url
        assert cfg["url"].split("/")[-2] in spec.alt_sha256  # OpenAI's URL carries the sha256
    spec = get_spec("effnet_b0")
    cfg = timm.models.get_pretrained_cfg(spec.timm_model)
    assert cfg.hf_hub_id == spec.repo_id and cfg.url == spec.url
    for name in ("resnet50", "lpips_vgg"):
        spec = get_spec(name)
        enum_name, member = spec.torchvision_weights.split(".")
        assert getattr(getattr(tvm, enum_name), member).url == spec.url
        assert spec.url.rsplit("-", 1)[1].split(".")[0] == spec.sha256


# --------------------------------------------------------------------------- CLI


def test_cli_list_shows_names_and_status(isolated, capsys, no_network):
    store_entry = isolated / "store" / "effnet_b0"
    tiny_state_dict(store_entry / "model.safetensors")
    assert bench_weights("weights", "list") == 0
    out = capsys.readouterr().out
    for name in component_names():
        assert name in out
    line = next(ln for ln in out.splitlines() if ln.startswith("effnet_b0"))
    assert "present (store, unverified)" in line
    assert "missing" in next(ln for ln in out.splitlines() if ln.startswith("clip_vit_l14"))
    assert "MIT" in out and "1.7 GB" in out and str(isolated / "store") in out

    assert bench_weights("weights", "list", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    status = {r["name"]: r["status"] for r in data["components"]}
    assert status["effnet_b0"] == "present" and status["sd_vae_sd2"] == "missing"


def test_cli_import_and_fetch(isolated, capsys, monkeypatch):
    src = isolated / "model.safetensors"
    save_file(torch.nn.Linear(4, 2).state_dict(), str(src))
    assert bench_weights("weights", "import", "effnet_b0", str(src)) == 0
    assert "imported" in capsys.readouterr().out
    assert bench_weights("weights", "import", "resnet50", str(src)) == 2  # known prefix 0676ba61 does not match
    err = capsys.readouterr().err
    assert "0676ba61" in err and sha256_file(str(src)) in err

    monkeypatch.setenv("BENCH_OFFLINE", "1")
    assert bench_weights("weights", "fetch", "all", "--no-progress") == 1
    assert "offline" in capsys.readouterr().err
    assert bench_weights("weights", "fetch", "clip_vit_b61") == 2
    assert "did you mean" in capsys.readouterr().err
    monkeypatch.delenv("BENCH_OFFLINE")
    assert bench_weights("weights", "fetch", "effnet_b0", "--no-progress") == 0  # already in the store: no network
    assert "already in the store" in capsys.readouterr().out
