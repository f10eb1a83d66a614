"""Conformance of every catalog component with its library's own pretrained loader (issue 13, section 2).

For each component a test writes random weights of the exact architecture in the exact upstream file
format and cache layout, resolves them through the real resolver (the library cache they were written
to, ``--weights NAME=PATH``, ``bench weights import`` and the store), loads them through the detector's
real load path, and compares with the library's own pretrained loader pointed at the same files
offline: same tensors, same outputs on a fixed input, same preprocessing. Where the catalog publishes a
hash, the made file is pinned by a *test catalog entry* (:func:`tests.weights_layouts.pin`).

Large components (the CLIP ViTs, the Stable Diffusion VAEs, the MoVQ, torchvision's full VGG-16) run
only with ``BENCH_CONFORMANCE_LARGE=1``; by default each runs as a stand-in: the catalog's own entry
with the architecture swapped for the smallest real one of its family (open_clip ``ViT-S-32-alt``) or,
where the family has no small member (the diffusers autoencoders), the same block layout at width 32.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from bench.core.detector import FitContext
from bench.weights.catalog import COMPONENTS, component_names, get_spec
from weights_layouts import (  # noqa: F401  (fixtures)
    declare,
    fixed_images,
    hf_cache_folder,
    hub_offline,
    isolated,
    make_hub_repo,
    no_network,
    openai_clip_archive,
    pin,
    resolve_every_route,
    torch_hub_checkpoint,
)

pytestmark = pytest.mark.slow  # loads real library models: the fast loop is pytest -m "not slow"

LARGE = os.environ.get("BENCH_CONFORMANCE_LARGE", "") == "1"
CTX = FitContext(device="cpu", seed=0, workers=0, progress=False)


def large(size: str):
    return pytest.mark.skipif(not LARGE, reason=f"large component ({size}): run with BENCH_CONFORMANCE_LARGE=1")


def assert_same_tensors(ours: dict, ref: dict, skip: tuple[str, ...] = ()) -> None:
    """Every tensor of the reference state dict (but ``skip`` prefixes) is in ours, equal; nothing else is."""
    kept = {k for k in ref if not k.startswith(skip)}
    assert kept == {k for k in ours if not k.startswith(skip)}
    for k in sorted(kept):
        assert torch.equal(ours[k], ref[k]), k


def pil_images(images) -> list[Image.Image]:
    return [Image.fromarray(images[i]) for i in range(len(images))]


# --------------------------------------------------------------------------- open_clip (CLIP ViT-B/16, ViT-L/14)

CLIP_CASES = [  # component, architecture written, detector using it (module, class)
    pytest.param("clip_vit_b16", "ViT-S-32-alt", ("detectors.clip_svm", "ClipSVM"), id="clip_vit_b16-as-ViT-S-32-alt"),
    pytest.param("clip_vit_b16", "ViT-B-16", ("detectors.clip_svm", "ClipSVM"), id="clip_vit_b16",
                 marks=large("ViT-B/16, 600 MB")),
    pytest.param("clip_vit_l14", "ViT-L-14", ("baselines.univfd", "UnivFD"), id="clip_vit_l14",
                 marks=large("ViT-L/14, 1.7 GB")),
]


def clip_detector(monkeypatch, component: str, arch: str, detector: tuple[str, str]):
    """The detector on ``component``'s backbone; a stand-in architecture replaces the backbone's and the
    catalog entry's (test entries), everything else (repo, file names, load hints) stays the catalog's."""
    import importlib

    import open_clip

    from bench.nn.backbones import BACKBONES, get_backbone

    spec = get_spec(component)
    if spec.arch != arch:
        standin = dataclasses.replace(spec, arch=arch)
        declare(monkeypatch, COMPONENTS, component, standin, kind=standin.kind)
        cfg = open_clip.get_model_config(arch)
        backbone = dataclasses.replace(get_backbone(component), arch=arch, embed_dim=cfg["embed_dim"])
        declare(monkeypatch, BACKBONES, component, backbone, arch=arch, component=component)
    module, cls = detector
    return getattr(importlib.import_module(module), cls)()


def random_clip(arch: str):
    import open_clip

    torch.manual_seed(0)
    return open_clip.create_model(arch, force_quick_gelu=True)


def assert_clip_conforms(det, got, ref_model, ref_preprocess, arch: str, images) -> None:
    """The detector's backbone (loaded from ``got``) against open_clip's own: tensors, preprocessing,
    image and text embeddings through the detector's feature path."""
    import open_clip

    det.weights_provenance = {det.info.weights[0]: got.to_record()}
    ref_model.eval().requires_grad_(False)  # frozen as the detectors freeze it: torch takes the same attention path
    ours = det.extractor(CTX).backbone()
    assert_same_tensors(ours.model.state_dict(), ref_model.state_dict())
    pil = pil_images(images)
    ref_x = torch.stack([ref_preprocess(p) for p in pil])
    assert torch.equal(torch.stack([ours.preprocess(p) for p in pil]), ref_x)
    with torch.no_grad():
        ref_img = ref_model.encode_image(ref_x).numpy()
        ref_txt = ref_model.encode_text(open_clip.get_tokenizer(arch)(images.captions)).numpy()
    np.testing.assert_array_equal(det.features(images, CTX), ref_img)
    np.testing.assert_array_equal(det.extractor(CTX).texts(images.captions), ref_txt)


@pytest.mark.parametrize("component, arch, detector", CLIP_CASES)
def test_open_clip_hub_cache_and_openai_archive_match_open_clip(component, arch, detector, isolated, monkeypatch,
                                                                hub_offline, no_network):
    """One random model in both upstream forms: open_clip's hub file (``open_clip_model.safetensors`` in the
    hub cache, verified by its blob name) and OpenAI's released ``ViT-*.pt`` (TorchScript, fp16 weights) in
    ``~/.cache/clip``, pinned by the catalog's alternate hash (a test entry: the real one is OpenAI's)."""
    import open_clip
    from safetensors.torch import save_file

    from bench.nn import backbones

    standin = arch != get_spec(component).arch
    det = clip_detector(monkeypatch, component, arch, detector)
    spec = get_spec(component)
    images = fixed_images(isolated / "images")
    model = random_clip(arch)
    src = isolated / "src" / "open_clip_model.safetensors"  # what open_clip fetches from the hub
    src.parent.mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(src))
    archive = openai_clip_archive(model, isolated / "home" / ".cache" / "clip" / Path(spec.url).name)
    del model

    hub = isolated / "hf" / "hub"
    make_hub_repo(hub, spec.repo_id, {src.name: src}, move=True)
    hub_file = Path(open_clip.pretrained.download_pretrained_from_hf(spec.repo_id, cache_dir=str(hub)))
    got = resolve_every_route(component, hub_file, "hf-cache")
    assert got["cache"].path == hub_file  # the file open_clip's own hub lookup finds
    assert got["cache"].verification == "hub"  # the blob's name is its sha256: no pin needed
    # open_clip's own loader: by tag from the same hub cache for the real architectures, by file for a stand-in
    ref, _, ref_pre = open_clip.create_model_and_transforms(arch, pretrained=str(hub_file) if standin else "openai",
                                                            cache_dir=str(hub), force_quick_gelu=True)
    assert_clip_conforms(det, got["cache"], ref, ref_pre, arch, images)
    del ref
    backbones._MODELS.clear()  # at most one ViT-L/14 (1.7 GB) of ours and one reference in memory at a time

    for done in (isolated / "store", hub):  # the store and the hub cache come before ~/.cache/clip
        shutil.rmtree(done)
    pin(monkeypatch, component, archive)
    got = resolve_every_route(component, archive, "clip-cache")
    assert got["cache"].verification == "catalog"
    ref, _, ref_pre = open_clip.create_model_and_transforms(arch, pretrained=str(archive), weights_only=False,
                                                            force_quick_gelu=True)
    assert_clip_conforms(det, got["cache"], ref, ref_pre, arch, images)
    backbones._MODELS.clear()


# --------------------------------------------------------------------------- timm (EfficientNet-B0)


@pytest.mark.parametrize("layout", ["hf_home", "hf_hub_cache", "torch_hub"])
def test_effnet_b0_matches_timm(layout, isolated, monkeypatch, hub_offline, no_network):
    """timm's ``save_for_hf`` folder in the hub cache (found through HF_HOME or HF_HUB_CACHE) or the original
    release ``efficientnet_b0_ra-3dd342df.pth`` in the torch hub cache (pinned: its hash prefix is published)."""
    import timm
    from timm.data import resolve_data_config

    from detectors.effnet_mc import IMAGENET_MEAN, IMAGENET_STD, EffNetMC

    torch.manual_seed(0)
    model = timm.create_model("efficientnet_b0")
    spec = get_spec("effnet_b0")
    if layout == "torch_hub":
        made = torch_hub_checkpoint(model.state_dict(), Path(spec.url).name)
        pin(monkeypatch, "effnet_b0", made)
        got = resolve_every_route("effnet_b0", made, "torch-cache")
        ref = timm.create_model("efficientnet_b0", pretrained=True, pretrained_cfg_overlay=dict(file=str(made)))
    else:
        hub = isolated / "hf" / "hub"
        if layout == "hf_hub_cache":
            hub = isolated / "elsewhere" / "hub"
            monkeypatch.setenv("HF_HUB_CACHE", str(hub))
        timm.models.save_for_hf(model, str(isolated / "saved"), safe_serialization=True)
        snap = make_hub_repo(hub, spec.repo_id, {p.name: p for p in (isolated / "saved").iterdir()}, move=True)
        got = resolve_every_route("effnet_b0", snap / "model.safetensors", "hf-cache")
        assert got["cache"].verification == "hub"
        ref = timm.create_model(spec.timm_model, pretrained=True, cache_dir=str(hub))  # timm's hub loader
    ref.eval()

    rgb, five = EffNetMC(channels="rgb"), EffNetMC()  # the paper's 5-channel stem and its RGB-only ablation
    for det in (rgb, five):
        det.weights_provenance = {"effnet_b0": got["cache"].to_record()}
    ours = rgb._build_model(2).eval()
    assert_same_tensors(ours.state_dict(), ref.state_dict(), skip=("classifier.",))
    stem = five._build_model(2).conv_stem.weight
    assert torch.equal(stem[:, :3], ref.conv_stem.weight)  # RGB filters kept, each extra channel their mean
    assert torch.equal(stem[:, 3], ref.conv_stem.weight.mean(1)) and torch.equal(stem[:, 4], stem[:, 3])
    ours.reset_classifier(0)
    ref.reset_classifier(0)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(ours(x), ref(x))
    # preprocessing: timm's normalisation, and its input size in the fast profile (effnet_mc resizes the whole
    # image, as its paper does, where timm's eval transform resizes by crop_pct and centre-crops; the paper
    # profile feeds 512 px images, a documented departure from the 224 px pretraining size)
    cfg = resolve_data_config({}, model=ref)
    fast = EffNetMC(**EffNetMC.profiles["fast"])
    assert cfg["mean"] == IMAGENET_MEAN and cfg["std"] == IMAGENET_STD
    assert cfg["input_size"] == (3, fast.size, fast.size) and rgb.size == 512


# --------------------------------------------------------------------------- torchvision (ResNet-50, VGG-16)


def test_resnet50_in_the_torch_hub_cache_matches_torchvision(isolated, monkeypatch, no_network):
    import torchvision

    from baselines.cnndet import IMAGENET_MEAN, IMAGENET_STD, WEIGHTS, CNNDet

    torch.manual_seed(0)
    made = torch_hub_checkpoint(torchvision.models.resnet50().state_dict(), "resnet50-0676ba61.pth")
    pin(monkeypatch, WEIGHTS, made)  # the catalog publishes a hash prefix: the test entry has the made file's
    got = resolve_every_route(WEIGHTS, made, "torch-cache")
    assert got["cache"].verification == "catalog"

    det = CNNDet()
    det.weights_provenance = {WEIGHTS: got["cache"].to_record()}
    ours = det._build_model().eval()  # the detector's real load path (then its new 1-logit head)
    weights = torchvision.models.ResNet50_Weights.IMAGENET1K_V1
    ref = torchvision.models.resnet50(weights=weights).eval()  # torchvision's loader, from $TORCH_HOME's cache
    assert_same_tensors(ours.state_dict(), ref.state_dict(), skip=("fc.",))
    ours.fc = ref.fc = torch.nn.Identity()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(ours(x), ref(x))
    preprocess = weights.transforms()
    assert np.array_equal(np.float32(preprocess.mean), IMAGENET_MEAN)  # torchvision normalises in float32 too
    assert np.array_equal(np.float32(preprocess.std), IMAGENET_STD)
    assert preprocess.crop_size == [det.crop_size]


def random_vgg16_features():
    """torchvision's VGG-16 ``features`` with random weights (the classifier, 90% of the file, is not built)."""
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])


@pytest.mark.parametrize("form", ["features_only", pytest.param("torchvision_file", marks=large("VGG-16, 528 MB"))])
def test_lpips_vgg_matches_the_lpips_package(form, isolated, monkeypatch, no_network):
    """The LPIPS trunk as the shared folder holds it (``vgg16_features.pth``, torchvision's ``features`` keys) or as
    torchvision's ``vgg16-397923af.pth`` in the torch hub cache; the linear layers are the lpips package's own.
    Reference: ``lpips.LPIPS(net="vgg")`` building its trunk with torchvision from the same file."""
    import lpips
    import torchvision

    from baselines.aeroblade import Aeroblade
    from baselines.aeroblade_models import to_model_input

    features = random_vgg16_features()
    if form == "features_only":
        made = isolated / "download" / "lpips_vgg" / "vgg16_features.pth"
        made.parent.mkdir(parents=True)
        torch.save(features.state_dict(), made)
    else:
        vgg = torchvision.models.vgg16()
        vgg.features = features
        made = torch_hub_checkpoint(vgg.state_dict(), "vgg16-397923af.pth")
        del vgg
    pin(monkeypatch, "lpips_vgg", made)
    got = resolve_every_route("lpips_vgg", made, None if form == "features_only" else "torch-cache")
    det = Aeroblade(autoencoders=("taef2",))
    det.weights_provenance = {"lpips_vgg": got["store"].to_record()}
    ours = det._build_lpips("cpu")

    def vgg16_from_the_features_file(pretrained=True):
        with torch.device("meta"):
            vgg = torchvision.models.vgg16()
        vgg.features.load_state_dict(torch.load(made, weights_only=True), strict=True, assign=True)
        return vgg

    with monkeypatch.context() as patch:  # lpips builds its trunk with torchvision's vgg16(pretrained=True)
        if form == "features_only":
            patch.setattr(lpips.pretrained_networks, "tv", SimpleNamespace(vgg16=vgg16_from_the_features_file))
        ref = lpips.LPIPS(net="vgg", version="0.1", pretrained=True, pnet_rand=False, verbose=False).eval()
    for k, piece in enumerate(ours.slices, start=1):
        assert_same_tensors(piece.state_dict(), getattr(ref.net, f"slice{k}").state_dict())
    assert_same_tensors(ours.lin.state_dict(), ref.lins[ours.layer - 1].state_dict())
    images = fixed_images(isolated / "images")
    a = images[0]
    b = np.clip(a.astype(int) + np.arange(a.size).reshape(a.shape) % 7 - 3, 0, 255).astype(np.uint8)
    x, y = to_model_input([a]), to_model_input([b])
    np.testing.assert_allclose(x.numpy(), lpips.im2tensor(a).numpy(), rtol=0, atol=1e-6)  # both [-1, 1]
    with torch.no_grad():
        assert torch.equal(ours(x, y), ref(x, y, retPerLayer=True)[1][ours.layer - 1].flatten())


# --------------------------------------------------------------------------- diffusers (SD VAEs, Kandinsky MoVQ)

DIFFUSERS_CASES = [  # component, AEROBLADE autoencoder, diffusers variant, stand-in (width 32)
    pytest.param("sd_vae_sd1", "sd1", None, True, id="sd_vae_sd1-width32"),
    pytest.param("sd_vae_sd1", "sd1", "fp16", True, id="sd_vae_sd1-width32-fp16-only"),
    pytest.param("sd_vae_sd2", "sd2", None, True, id="sd_vae_sd2-width32"),
    pytest.param("kandinsky21_movq", "kd21", None, True, id="kandinsky21_movq-width32"),
    pytest.param("sd_vae_sd1", "sd1", None, False, id="sd_vae_sd1", marks=large("SD VAE, 335 MB")),
    pytest.param("sd_vae_sd2", "sd2", None, False, id="sd_vae_sd2", marks=large("SD VAE, 335 MB")),
    pytest.param("kandinsky21_movq", "kd21", None, False, id="kandinsky21_movq", marks=large("MoVQ, 271 MB")),
]


@pytest.mark.parametrize("component, ae, variant, standin", DIFFUSERS_CASES)
def test_diffusers_autoencoder_in_the_hub_cache_matches_diffusers(component, ae, variant, standin, isolated,
                                                                  no_network):
    """A diffusers model folder (config.json + diffusion_pytorch_model[.fp16].safetensors, what
    ``from_pretrained`` leaves) in the repo's subfolder of the hub cache, against diffusers' own
    ``from_pretrained(repo, subfolder=..., local_files_only=True)`` from the same cache."""
    from diffusers import AutoencoderKL, VQModel
    from diffusers.image_processor import VaeImageProcessor

    from baselines.aeroblade import Aeroblade
    from baselines.aeroblade_models import AUTOENCODERS, KL, VQ, reconstruct, to_model_input

    spec, ae_spec = get_spec(component), AUTOENCODERS[ae]
    cls = AutoencoderKL if ae_spec.kind == KL else VQModel
    torch.manual_seed(0)
    model = cls(**{**ae_spec.config, "block_out_channels": (32,) * 4} if standin else ae_spec.config)
    model.to(torch.float16 if variant else torch.float32).save_pretrained(isolated / "saved", variant=variant)
    del model
    folder = hf_cache_folder(isolated / "hf", spec.repo_id, isolated / "saved", spec.subfolder)
    got = resolve_every_route(component, folder, "hf-cache")
    assert got["cache"].verification == "hub"

    det = Aeroblade(autoencoders=(ae,))
    det.weights_provenance = {component: got["cache"].to_record()}
    ours = det._build_autoencoder(ae_spec, "cpu")
    ref = cls.from_pretrained(spec.repo_id, subfolder=spec.subfolder, cache_dir=str(isolated / "hf" / "hub"),
                              local_files_only=True, torch_dtype=torch.float32, variant=variant).eval()
    assert_same_tensors(ours.state_dict(), ref.state_dict())
    images = fixed_images(isolated / "images")
    processor = VaeImageProcessor()
    for i, pil in enumerate(pil_images(images)):
        x = to_model_input([images[i]])
        assert torch.equal(x, processor.preprocess(pil))  # to [0, 1], then 2x - 1
        with torch.no_grad():
            if ae_spec.kind == VQ:
                expected = ref.decode(ref.encode(x).latents, force_not_quantize=True).sample
                assert torch.equal(reconstruct(ours, VQ, x), expected)
            else:
                assert torch.equal(reconstruct(ours, KL, x), ref(x).sample)  # the posterior's mode
                sample = ref(x, sample_posterior=True, generator=[torch.Generator().manual_seed(i)]).sample
                assert torch.equal(reconstruct(ours, KL, x, [torch.Generator().manual_seed(i)]), sample)


# --------------------------------------------------------------------------- TAESD family (plain state dicts)

TAESD_FAMILY = ("taesd", "taesdxl", "taesd3", "taef1", "taef2")


def upstream_taesd_files(ref, name: str, folder: Path) -> None:
    """``<name>_encoder.pth`` and ``<name>_decoder.pth`` as madebyollin/taesd publishes them (float16, as the
    shared TAEF2 files are), from a diffusers AutoencoderTiny whose weights are float16 values: its
    ``encoder.layers.<i>`` are the upstream encoder's ``<i>``; the upstream decoder starts with a
    parameter-free clamp, so ``decoder.layers.<i>`` is its ``<i + 1>`` (diffusers' own conversion)."""
    folder.mkdir(parents=True, exist_ok=True)
    state = ref.state_dict()
    for part, offset in (("encoder", 0), ("decoder", 1)):
        prefix = f"{part}.layers."
        files = {f"{int(k[len(prefix):].split('.', 1)[0]) + offset}.{k[len(prefix):].split('.', 1)[1]}": v.half()
                 for k, v in state.items() if k.startswith(prefix)}
        torch.save(files, folder / f"{name}_{part}.pth")
    assert all(k.startswith(("encoder.layers.", "decoder.layers.")) for k in state)  # nothing else to carry


@pytest.mark.parametrize("name", TAESD_FAMILY)
def test_taesd_family_files_match_diffusers_autoencoder_tiny(name, isolated, monkeypatch, no_network):
    """The two upstream state dicts in a folder (the store layout of ``BENCH_WEIGHTS_DIR``), against diffusers'
    AutoencoderTiny loading the same weights from its own folder format. TAEF2's group-norm branch has no
    diffusers counterpart: its files are made from the architecture and checked against the shared real
    files' keys, shapes and dtypes when ../shared/weights is present (their values: tests/test_real_weights.py)."""
    from diffusers import AutoencoderTiny

    from baselines.aeroblade import Aeroblade
    from baselines.aeroblade_models import AUTOENCODERS, TINY, reconstruct, to_model_input
    from baselines.tiny_autoencoder import TinyAutoencoder
    from helpers import SHARED_WEIGHTS

    cfg = AUTOENCODERS[name].config
    folder = isolated / "download" / name
    torch.manual_seed(0)
    if cfg["midblock_gn"]:
        ref = None
        model = TinyAutoencoder(cfg["latent_channels"], midblock_gn=True)
        folder.mkdir(parents=True)
        for part in ("encoder", "decoder"):
            half = {k: v.half() for k, v in getattr(model, part).state_dict().items()}  # float16, as upstream
            torch.save(half, folder / f"{name}_{part}.pth")
            real = SHARED_WEIGHTS / name / f"{name}_{part}.pth"
            if real.is_file():
                shapes = [{k: (v.shape, v.dtype) for k, v in torch.load(p, weights_only=True).items()}
                          for p in (real, folder / f"{name}_{part}.pth")]
                assert shapes[0] == shapes[1]
        pin(monkeypatch, name, folder)  # the catalog publishes both files' sha256: the test entry has the made ones
    else:
        ref = AutoencoderTiny(latent_channels=cfg["latent_channels"]).half().float().eval()
        upstream_taesd_files(ref, name, folder)
    got = resolve_every_route(name, folder, None)

    det = Aeroblade(autoencoders=(name,))
    det.weights_provenance = {name: got["store"].to_record()}
    ours = det._build_autoencoder(AUTOENCODERS[name], "cpu")  # loads both files strictly
    for part in ("encoder", "decoder"):
        stored = torch.load(folder / f"{name}_{part}.pth", weights_only=True)
        assert_same_tensors(getattr(ours, part).state_dict(), {k: v.float() for k, v in stored.items()})
    if ref is not None:
        images = fixed_images(isolated / "images")
        x = to_model_input([images[0]])
        with torch.no_grad():
            expected = ref.decode(ref.encode(x).latents).sample.clamp(-1, 1)  # diffusers works in [-1, 1]
            np.testing.assert_allclose(reconstruct(ours, TINY, x).numpy(), expected.numpy(), rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- coverage


def test_every_catalog_component_has_a_conformance_test():
    """Every component that a library loads (open_clip, timm, torchvision, diffusers, lpips; the TAESD files)
    has a case above. A plain ``url`` component (a detector's released checkpoint) has no library loader to
    agree with: its format is tested with the detector that loads it."""
    covered = ({p.values[0] for p in CLIP_CASES + DIFFUSERS_CASES} | set(TAESD_FAMILY)
               | {"effnet_b0", "resnet50", "lpips_vgg"})
    missing = sorted(n for n in component_names() if n not in covered and get_spec(n).kind != "url")
    assert not missing, f"catalog components without a conformance test in {__file__}: {', '.join(missing)}"
