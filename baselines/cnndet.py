"""``cnndet``: Wang et al. 2020, "CNN-generated images are surprisingly easy to spot... for now".

ImageNet ResNet-50 (torchvision V1 weights) with its head replaced by one logit
(weights ~ N(0, 0.02) as in the original), binary cross-entropy, Adam lr 1e-4,
batch 64. Training pipeline, as in the original ``data/datasets.py``: resize the
shorter side to 256 (bilinear), Gaussian blur with probability p (sigma ~ U[0, 3],
scipy's ``gaussian_filter`` per channel), JPEG with probability p (quality ~
U{30..100}, encoder cv2 or PIL chosen at random), random 224 crop, horizontal flip,
ImageNet normalisation. Variants p = 0.5 (``cnndet.p05``) and p = 0.1 (``cnndet.p01``).

Every random draw comes from the generator the training loop passes to the
transform (derived from the run seed, the epoch and the image hash), so the
augmentation is reproducible. albumentations is not used: its 2.x transforms
draw from their own generator (seedable only through an integer seed on
``Compose``), and its blur and JPEG differ from the original's (kernel-size-driven
blur, cv2-only JPEG); the original's operations are called directly instead.

Profiles (README, "Profiles and fidelity"), checked against the authors' ``train.py``,
``eval.py`` and ``networks/trainer.py`` (github.com/PeterWang512/CNNDetection):

- ``paper`` (the defaults): at test time no resize, the centre 224 crop at native
  resolution (``eval.py`` sets ``no_resize``; torchvision's ``CenterCrop`` zero-pads a
  smaller side, and so does this). Training: up to 100 epochs; when 5 epochs pass
  without validation-accuracy gain the learning rate is divided by 10 and training
  goes on, until it falls below 1e-6; the epoch kept is the best of the last rate phase
  (``keep="last_lr_phase"``): ``train.py`` starts a fresh ``EarlyStopping`` after every drop,
  which saves the phase's first epoch and each later gain over ``model_epoch_best.pth``, so the
  released recipe's network has trained at the lowest rate. The global best would, on an easy
  validation set where accuracy ties at 1.0 early, keep an epoch that never saw a lowered rate.
- ``fast`` (a CPU smoke run): test images resized (shorter side 256) and centre-cropped
  to 224, 3 epochs at a constant rate, the best epoch kept (no rate drops: one phase).

Remaining departures of the paper profile: validation images are scored clean and
resized like test images are not (the original validates on resized, centre-cropped images
with a fixed mid-strength blur, sigma 1.5, and PIL JPEG q 65, each with probability p);
the original's early stopping counts a gain only above 0.001 (0.002 after a rate drop),
here any gain counts.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter
from torch import nn

from bench.core.detector import DetectorInfo
from bench.core.errors import BenchError
from bench.data.crops import centre_crop_pad, centre_crop_pad_tensor, shorter_side_size
from bench.nn.training import BinaryNetDetector, TrainConfig

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
WEIGHTS = "resnet50"
BLUR_SIGMA = (0.0, 3.0)
JPEG_QUALITY = (30, 100)  # inclusive
JPEG_METHODS = ("cv2", "pil")


def resize_shorter(image: np.ndarray, size: int) -> np.ndarray:
    """Resize so that the shorter side is ``size`` (PIL bilinear, as torchvision's Resize(int) on a PIL image)."""
    h, w = image.shape[:2]
    if min(h, w) == size:
        return image
    new_h, new_w = shorter_side_size(h, w, size)
    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((new_w, new_h), Image.BILINEAR))


def resize_shorter_tensor(image01: torch.Tensor, size: int) -> torch.Tensor:
    """:func:`resize_shorter` on a CHW tensor, differentiable: torch's antialiased bilinear, which approximates
    PIL's (equal when the shorter side is already ``size``, where both leave the image alone)."""
    h, w = image01.shape[-2:]
    if min(h, w) == size:
        return image01
    return nn.functional.interpolate(image01[None], size=shorter_side_size(h, w, size), mode="bilinear",
                                     antialias=True, align_corners=False)[0]


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """The original's blur: scipy ``gaussian_filter`` on each channel (reflect borders, truncate at 4 sigma)."""
    if sigma <= 0:
        return image
    return gaussian_filter(image, sigma=(sigma, sigma, 0))


def jpeg(image: np.ndarray, quality: int, method: str) -> np.ndarray:
    """JPEG encode/decode with OpenCV or Pillow at ``quality`` (both libjpeg, 4:2:0), as the original."""
    if method == "cv2":
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        ok, buf = cv2.imencode(".jpg", bgr, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
        if not ok:
            raise BenchError("cv2 could not JPEG-encode an image")
        return cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1].copy()
    if method == "pil":
        out = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(image)).save(out, format="jpeg", quality=int(quality))
        out.seek(0)
        with Image.open(out) as im:
            return np.array(im.convert("RGB"))
    raise BenchError(f"unknown JPEG method {method!r} (cv2 or pil)")


def blur_jpeg_augment(image: np.ndarray, rng: np.random.Generator, blur_prob: float, jpeg_prob: float,
                      sigma: tuple[float, float] = BLUR_SIGMA, quality: tuple[int, int] = JPEG_QUALITY,
                      methods: tuple[str, ...] = JPEG_METHODS) -> np.ndarray:
    """CNNDet's ``data_augment``: blur with probability ``blur_prob``, then JPEG with probability ``jpeg_prob``.

    Pure: every draw comes from ``rng`` and the input is not modified.
    """
    out = image
    if rng.random() < blur_prob:
        out = blur(out, float(rng.uniform(*sigma)))
    if rng.random() < jpeg_prob:
        method = methods[int(rng.integers(len(methods)))]
        out = jpeg(out, int(rng.integers(quality[0], quality[1] + 1)), method)
    return out


def crop_square(image: np.ndarray, size: int, rng: np.random.Generator | None) -> np.ndarray:
    """A random ``size`` x ``size`` crop (drawn from ``rng``), or the centre crop when ``rng`` is None."""
    h, w = image.shape[:2]
    if h < size or w < size:
        raise BenchError(f"image of {w}x{h} is smaller than the {size} px crop")
    if rng is None:
        top, left = (h - size) // 2, (w - size) // 2
    else:
        top, left = int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
    return image[top:top + size, left:left + size]


def to_normalised_tensor(image: np.ndarray) -> torch.Tensor:
    x = (np.asarray(image, dtype=np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def normalise_tensor(image01: torch.Tensor) -> torch.Tensor:
    """:func:`to_normalised_tensor`'s ImageNet normalisation on a CHW tensor in [0, 1], differentiable."""
    mean, std = (torch.from_numpy(v).to(image01)[:, None, None] for v in (IMAGENET_MEAN, IMAGENET_STD))
    return (image01 - mean) / std


def binary_logit(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The one-logit network's output for one normalised CHW tensor, on the model's device, as a 0-d tensor
    (sigmoid of it = the P(generated) that ``predict`` reports)."""
    model = model.eval()
    return model(x[None].to(next(model.parameters()).device))[0, 0]


def build_resnet(arch: str) -> nn.Module:
    """The backbone with its ImageNet head (1000 classes): torchvision ResNet-50, or a tiny ResNet for tests."""
    from torchvision.models import resnet50
    from torchvision.models.resnet import BasicBlock, ResNet

    if arch == "resnet50":
        return resnet50()
    if arch == "test_resnet":
        return ResNet(BasicBlock, [1, 1, 1, 1])
    raise BenchError(f"cnndet: arch must be 'resnet50' or 'test_resnet', got {arch!r}")


class CNNDet(BinaryNetDetector):
    info = DetectorInfo(
        family="cnn",
        paper="Wang et al. 2020, CNN-generated images are surprisingly easy to spot... for now",
        trains=True, weights=(WEIGHTS,), gpu="recommended", tasks=("binary",),
        notes="paper: native centre crop 224 at test, lr/10 after 5 epochs without validation gain until 1e-6, "
              "the best epoch of the last rate phase kept (train.py's EarlyStopping restarts after each drop); "
              "validation images clean (original: fixed blur sigma 1.5 / PIL JPEG q65 with probability p); "
              "fast: test images resized (short side 256) + centre crop, 3 epochs, constant lr",
    )
    version = "1"
    gpu_batch_size = 128  # ResNet-50 at 224 px: a few GB of activations at inference
    profiles = {"fast": {"test_resize": True, "epochs": 3, "plateau_factor": 0.0, "keep": "best"}}

    def __init__(self, p: float = 0.5, load: int = 256, crop: int = 224, epochs: int = 100, patience: int = 5,
                 lr: float = 1e-4, batch_size: int = 64, arch: str = "resnet50", pretrained: bool = True,
                 test_resize: bool = False, plateau_factor: float = 0.1, keep: str = "last_lr_phase"):
        if not 0 <= p <= 1:
            raise BenchError(f"cnndet: p must be in [0, 1], got {p!r}")
        if crop > load:
            raise BenchError(f"cnndet: crop ({crop}) must not exceed load ({load})")
        super().__init__(p=p, load=load, crop=crop, epochs=epochs, patience=patience, lr=lr, batch_size=batch_size,
                         arch=arch, pretrained=pretrained, test_resize=test_resize, plateau_factor=plateau_factor,
                         keep=keep)
        self.p, self.load, self.crop_size = float(p), int(load), int(crop)
        self.arch, self.pretrained, self.test_resize = arch, bool(pretrained), bool(test_resize)
        self.cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, optimizer="adam", patience=patience,
                               plateau_factor=plateau_factor, keep=keep)
        self.model: nn.Module | None = None
        self.history: dict = {}

    def _build_model(self) -> nn.Module:
        model = build_resnet(self.arch)
        path = self.weight_path(WEIGHTS) if self.pretrained else None
        if path is not None:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        model.fc = nn.Linear(model.fc.in_features, 1)
        nn.init.normal_(model.fc.weight, 0.0, 0.02)
        return model

    def _transform(self, image: np.ndarray, rng) -> torch.Tensor:
        if rng is None and not self.test_resize:
            return to_normalised_tensor(centre_crop_pad(image, self.crop_size))
        x = resize_shorter(image, self.load)
        if rng is not None:
            x = blur_jpeg_augment(x, rng, self.p, self.p)
        x = crop_square(x, self.crop_size, rng)
        if rng is not None and rng.random() < 0.5:
            x = x[:, ::-1]
        return to_normalised_tensor(x)

    differentiable = True

    def differentiable_score(self, image01: torch.Tensor, caption: str | None = None) -> torch.Tensor:
        """The logit through the test-time path of ``_transform`` in torch: the native centre crop (paper), or
        the shorter side resized to ``load`` (torch's antialiased bilinear for PIL's) and the centre crop (fast)."""
        if self.model is None:
            raise BenchError(f"{self.name}: differentiable_score() called before fit()")
        if not self.test_resize:
            x = centre_crop_pad_tensor(image01, self.crop_size)
        else:
            x = resize_shorter_tensor(image01, self.load)
            height, width = x.shape[-2:]
            if height < self.crop_size or width < self.crop_size:
                raise BenchError(f"image of {width}x{height} is smaller than the {self.crop_size} px crop")
            top, left = (height - self.crop_size) // 2, (width - self.crop_size) // 2  # as crop_square
            x = x[:, top:top + self.crop_size, left:left + self.crop_size]
        return binary_logit(self.model, normalise_tensor(x))
