"""Released checkpoints: the authors' published weights, evaluated without training (``NAME.released``).

What users of the peer harnesses run most. Each variant loads one file through the weights
catalog and resolver (``bench weights fetch cnndet_blur_jpg_p05`` ...; source URL, sha256
where published, licence in bench/weights/catalog.py) and scores with its original's
evaluation preprocessing; ``fit`` only loads the weights, and the runner fixes the decision
threshold on the benchmark's clean validation images as for every detector. A released
checkpoint has one evaluation, so both profiles are the same.

File formats, as the authors' loading code reads them:

- CNNDetection ``blur_jpg_prob0.5.pth`` / ``prob0.1.pth``: ``{"model": state_dict}`` of a
  ResNet-50 with ``fc`` = Linear(2048, 1) (``demo.py``/``eval.py``: ``state_dict['model']``);
  scored on the centre 224 crop at native resolution (``eval.py``: ``no_resize``).
- UniversalFakeDetect ``fc_weights.pth``: the linear head alone, ``{"weight": [1, 768],
  "bias": [1]}`` (``validate.py``: ``model.fc.load_state_dict``) on CLIP ViT-L/14 image
  features of the centre 224 crop at native resolution, computed in fp32 on a GPU too
  (``feature_precision``), as the authors' model.
- NPR ``NPR.pth``: a plain state dict of the NPR network (``test.py``: ``load_state_dict``,
  strict); scored on the image squash-resized to 256 x 256 (``test_resize=256``, ``test.py``'s
  handling of ForenSynths), or whole at native resolution with ``test_resize=None``
  (``test.py``'s GANGen-Detection, their README's AIGCDetectBenchmark and GenImage).

:func:`unwrap_state_dict` also accepts the wrappers other copies of these files carry
(``state_dict``/``model`` keys, ``module.`` prefixes of DataParallel).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from baselines.cnndet import CNNDet, build_resnet
from baselines.npr import NPR
from baselines.univfd import UnivFD
from bench.core.detector import DetectorInfo, FitContext
from bench.core.errors import BenchError
from bench.data.imageset import ImageSet
from bench.nn.training import seeded_torch

WRAPPER_KEYS = ("model", "state_dict")


def unwrap_state_dict(obj: Any, source: str) -> dict[str, torch.Tensor]:
    """The tensors of a released file: inside a ``model``/``state_dict`` wrapper or not, ``module.`` prefixes
    (DataParallel) removed; a one-line BenchError when the file holds no state dict."""
    while isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        key = next((k for k in WRAPPER_KEYS if k in obj), None)
        if key is None:
            raise BenchError(f"{source}: no state dict in the file (keys: {', '.join(map(str, obj)) or 'none'})")
        obj = obj[key]
    if not isinstance(obj, dict):
        raise BenchError(f"{source}: expected a state dict, found {type(obj).__name__}")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def load_released(module: nn.Module, path, source: str) -> nn.Module:
    """Load a released file into ``module`` (strict: every key must match); one-line errors.

    ``path`` None: ``--random-weights`` allowed the missing file, and the run records the component as
    random; the module keeps the seeded initialisation it was built with (smoke runs and cost figures
    only: its scores mean nothing)."""
    if path is None:
        return module.eval()
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, or pickled objects weights_only refuses
        raise BenchError(f"{source}: {path} cannot be loaded ({type(exc).__name__}: {exc})") from None
    try:
        module.load_state_dict(unwrap_state_dict(obj, source), strict=True)
    except RuntimeError as exc:
        raise BenchError(f"{source}: {path} does not fit the network: {' '.join(str(exc).split())[:300]}") from None
    return module.eval()


class ReleasedCNNDet(CNNDet):
    info = DetectorInfo(
        family="cnn", paper="Wang et al. 2020, CNN-generated images are surprisingly easy to spot... for now",
        trains=False, weights=("cnndet_blur_jpg_p05",), gpu="recommended", tasks=("binary",),
        notes="the authors' released ResNet-50; native centre crop 224 as their eval.py",
    )
    profiles: dict = {}

    def __init__(self, component: str = "cnndet_blur_jpg_p05", arch: str = "resnet50", crop: int = 224):
        super().__init__(arch=arch, crop=crop, load=max(crop, 256), pretrained=False, test_resize=False)
        self.params = {"component": component, "arch": arch, "crop": crop}
        self.component = component

    def fit(self, train: ImageSet, val: ImageSet, ctx: FitContext) -> None:
        with seeded_torch(int(ctx.seed)):
            model = build_resnet(self.arch)
            model.fc = nn.Linear(model.fc.in_features, 1)
        self.model = load_released(model, self.weight_path(self.component), self.name)


class ReleasedUnivFD(UnivFD):
    info = DetectorInfo(
        family="clip",
        paper="Ojha et al. 2023, Towards Universal Fake Image Detectors that Generalize Across Generative Models",
        trains=False, weights=("clip_vit_l14", "univfd_fc"), gpu="optional", tasks=("binary",),
        notes="the authors' released linear head on CLIP ViT-L/14; native centre crop 224 as their validate.py; "
              "fp32 features on a GPU too, as their CPU-loaded fp32 CLIP",
    )
    profiles: dict = {}
    component = "univfd_fc"
    # The head was trained on fp32 embeddings (their clip.load on the CPU, then .to(device), keeps fp32);
    # fp16 autocast would shift its inputs. Costs a second ViT-L/14 pass where univfd runs fp16 on a GPU.
    feature_precision = "fp32"

    def __init__(self, backbone: str = "clip_vit_l14"):
        super().__init__(backbone=backbone, crop="native", train_views=0)
        self.params = {"backbone": backbone}

    def fit(self, train: ImageSet, val: ImageSet, ctx: FitContext) -> None:
        self._init_seed = int(ctx.seed)
        dim = self.extractor(ctx).spec.embed_dim
        with seeded_torch(int(ctx.seed)):
            head = nn.Linear(dim, 1)
        self.model = load_released(head, self.weight_path(self.component), self.name)


class ReleasedNPR(NPR):
    info = DetectorInfo(
        family="cnn",
        paper="Tan et al. 2024, Rethinking the Up-Sampling Operations in CNN-based Generative Network for "
              "Generalizable Deepfake Detection (CVPR)",
        trains=False, weights=("npr_released",), gpu="optional", tasks=("binary",),
        notes="the authors' released NPR.pth; whole image squash-resized to 256x256 as their test.py for "
              "ForenSynths (test_resize=null: native resolution, as for GANGen, AIGCDetectBenchmark, GenImage)",
    )
    profiles: dict = {}
    component = "npr_released"

    def __init__(self, width: int = 64, blocks: tuple[int, int] = (3, 4), test_resize: int | None = 256):
        super().__init__(width=width, blocks=blocks, test_crop=None, test_resize=test_resize)
        self.params = {"width": width, "blocks": list(blocks), "test_resize": test_resize}

    def fit(self, train: ImageSet, val: ImageSet, ctx: FitContext) -> None:
        with seeded_torch(int(ctx.seed)):
            model = self._build_model()
        self.model = load_released(model, self.weight_path(self.component), self.name)
