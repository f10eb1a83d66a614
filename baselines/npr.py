"""``npr``: Tan et al. 2024, "Rethinking the Up-Sampling Operations in CNN-based Generative
Network for Generalizable Deepfake Detection" (neighbouring pixel relationships).

The input is the NPR residual ``x - up_nearest(down_nearest(x, 1/2))``: each pixel
minus the top-left pixel of its 2x2 cell, which exposes the local correlations
that up-sampling layers leave in generated images. It is scaled by 2/3 and fed to
a small ResNet trained from scratch: a 3x3 stride-2 stem, max-pool, and the first
two ResNet-50 stages (3 and 4 bottlenecks, widths 64 and 128, 512 output
channels), global average pooling and one logit. BCE, Adam, ImageNet normalisation
before the residual, random crop and horizontal flip for training. It needs no
pretrained weights, so it runs fully offline.

Profiles (README, "Profiles and fidelity"):

- ``paper`` (the defaults), as the authors' ``train.py`` and ``data/datasets.py``
  (github.com/chuangchuangtan/NPR-DeepfakeDetection): every image squash-resized to
  256 x 256 (``transforms.Resize((256, 256))``, PIL bilinear), a random 224 crop and a
  horizontal flip for training, the whole 256 x 256 image at test time (their
  ``no_crop=True`` evaluation, ``test_resize=256``); Adam lr 2e-4 (betas 0.9, 0.999), batch 32, 50 epochs,
  the rate times 0.9 at the end of epochs 10, 20, 30 and 40 (``--delr_freq 10``), no
  early stopping, the last epoch kept. Validation runs every epoch for the history only.
- ``fast`` (make demo, the CI suite; under a minute on 2 CPU cores for the demo set's
  ~290 training images of 128 px): no resize, 64 px training crops, the centre 128 px
  at test time (the network is fully convolutional with global average pooling, so it
  applies to a larger crop than it was trained on), 10 epochs at a constant rate, the
  best validation epoch kept. Images smaller than a crop are reflect-padded (no
  resampling: resampling is what NPR detects).

Test-time handling is declared apart from training: ``test_resize`` squash-resizes validation
and test images to that square (256, the paper profile) or leaves them at their native
resolution (None); ``test_crop=None`` then scores the whole image, an integer the centre
square of that size. The authors' ``test.py`` chooses per test set: resize to 256 for
ForenSynths, DiffusionForensics and UniversalFakeDetect ("due to the different shapes of
images in the dataset, resizing is required during batch detection"), native resolution
for GANGen-Detection, and native resolution at batch size 1 for AIGCDetectBenchmark and
GenImage (their README). A detector does not know which dataset it scores, so the paper
profile keeps 256 (their default) and the native handling is a parameter
(``--detector-param npr.test_resize=null``; README, "Profiles, fidelity and released
checkpoints", lists the choice per dataset family). Whole native images of different
sizes are scored one at a time, as the authors' batch size 1.

Remaining departures of the paper profile: the 2x2 nearest down/up-sampling drops the last
row/column of an odd-sized input (the original's ``F.interpolate`` does the same on the 224/256 inputs,
which are even, so no difference here); the initialisation is torchvision's Bottleneck with the
original's Kaiming/constant scheme.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from PIL import Image
from torch import nn

from baselines.cnndet import binary_logit, crop_square, normalise_tensor, to_normalised_tensor
from bench.core.detector import DetectorInfo, FitContext, Prediction, Preparation
from bench.core.errors import BenchError
from bench.data.imageset import ImageSet
from bench.nn.training import BinaryNetDetector, TrainConfig


def npr_residual(x: torch.Tensor) -> torch.Tensor:
    """``x - up_nearest(down_nearest(x, 1/2))`` over the last two dimensions.

    Odd heights or widths lose their last row or column first (as nearest down- and
    up-sampling by 2 does). Zero exactly where every 2x2 cell is constant, e.g. on an
    image that was nearest-neighbour up-sampled by 2.
    """
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    x = x[..., :h, :w]
    up = x[..., ::2, ::2].repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
    return x - up


class NPRNet(nn.Module):
    """The NPR network: 3x3/2 stem, max-pool, two ResNet-50 stages, average pool, one logit."""

    def __init__(self, width: int = 64, blocks: tuple[int, int] = (3, 4), num_outputs: int = 1):
        super().__init__()
        from torchvision.models.resnet import Bottleneck

        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(Bottleneck, width, blocks[0])
        self.layer2 = self._make_layer(Bottleneck, width * 2, blocks[1], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(width * 2 * Bottleneck.expansion, num_outputs)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, block, planes: int, n: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, n)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(npr_residual(x) * (2.0 / 3.0)))))
        x = self.layer2(self.layer1(x))
        return self.fc1(torch.flatten(self.avgpool(x), 1))


def pad_to(image: np.ndarray, size: int) -> np.ndarray:
    """Reflect-pad (bottom and right, no edge repeat) an image smaller than ``size`` in either side."""
    h, w = image.shape[:2]
    if h >= size and w >= size:
        return image
    return np.pad(image, ((0, max(0, size - h)), (0, max(0, size - w)), (0, 0)), mode="reflect")


class NPR(BinaryNetDetector):
    info = DetectorInfo(
        family="cnn",
        paper="Tan et al. 2024, Rethinking the Up-Sampling Operations in CNN-based Generative Network for "
              "Generalizable Deepfake Detection (CVPR)",
        trains=True, weights=(), gpu="optional", tasks=("binary",),
        notes="paper profile as the original (256x256 squash, 224 crop+flip, whole 256 image at test, Adam 2e-4, "
              "batch 32, 50 epochs, lr x0.9 every 10, last epoch); test_resize=null scores native resolution, "
              "as the authors' test.py for GANGen and their README for AIGCDetectBenchmark/GenImage; fast "
              "profile: no resize, 64 px crops, 128 px test crop, 10 epochs at a constant rate, best validation "
              "epoch",
    )
    version = "2"
    gpu_batch_size = 256  # a small network on 224-256 px inputs: larger batches keep a GPU busy
    profiles = {"fast": {"crop": 64, "test_crop": 128, "load": None, "test_resize": None, "epochs": 10,
                         "patience": 10, "keep": "best", "lr_schedule": "constant"}}

    def __init__(self, crop: int = 224, test_crop: int | None = None, load: int | None = 256, width: int = 64,
                 blocks: tuple[int, int] = (3, 4), epochs: int = 50, patience: int | None = None, lr: float = 2e-4,
                 batch_size: int = 32, keep: str = "last", lr_schedule: str = "step", test_resize: int | None = 256):
        if crop % 2 or (test_crop or test_resize or 0) % 2:
            raise BenchError(f"npr: crop sizes must be even (2x2 cells), got {crop}, {test_crop or test_resize}")
        super().__init__(crop=crop, test_crop=test_crop, load=load, width=width, blocks=list(blocks), epochs=epochs,
                         patience=patience, lr=lr, batch_size=batch_size, keep=keep, lr_schedule=lr_schedule,
                         test_resize=test_resize)
        self.crop_size = int(crop)
        self.load = None if load is None else int(load)
        self.test_resize = None if test_resize is None else int(test_resize)
        self.test_crop = None if test_crop is None else int(test_crop)
        self.width, self.blocks = int(width), tuple(int(b) for b in blocks)
        self.cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, optimizer="adam",
                               patience=epochs if patience is None else patience, keep=keep, schedule=lr_schedule,
                               step_every=10, step_gamma=0.9)
        self.model: nn.Module | None = None
        self.history: dict = {}

    def _transform(self, image: np.ndarray, rng) -> torch.Tensor:
        """Training (``rng`` given): resize to ``load``, random crop, flip. Validation and test: resize to
        ``test_resize``, then the centre ``test_crop`` (or the whole image)."""
        side = self.load if rng is not None else self.test_resize
        x = image
        if side is not None and x.shape[:2] != (side, side):
            x = np.asarray(Image.fromarray(np.ascontiguousarray(x)).resize((side, side), Image.BILINEAR))
        size = self.crop_size if rng is not None else self.test_crop
        if size is not None:
            x = crop_square(pad_to(x, size), size, rng)
        if rng is not None and rng.random() < 0.5:
            x = x[:, ::-1]
        return to_normalised_tensor(x)

    def _one_at_a_time(self) -> bool:
        """Whole images at native resolution: their sizes may differ, so they are scored one by one."""
        return self.test_resize is None and self.test_crop is None

    def _scoring_ctx(self, ctx: FitContext) -> FitContext:
        return replace(ctx, batch_size=1) if self._one_at_a_time() else ctx

    def fit(self, train: ImageSet, val: ImageSet, ctx: FitContext) -> None:
        super().fit(train, val, self._scoring_ctx(ctx))  # the context's batch size is validation's

    def predict(self, images: ImageSet, ctx: FitContext) -> Prediction:
        return super().predict(images, self._scoring_ctx(ctx))

    def preparation(self) -> Preparation:
        prepared = super().preparation()
        return replace(prepared, collate=list) if self._one_at_a_time() else prepared

    def forward_batch(self, batch, ctx: FitContext) -> np.ndarray:
        if isinstance(batch, list):  # _one_at_a_time's list collate
            return np.concatenate([super(NPR, self).forward_batch(x[None], ctx) for x in batch])
        return super().forward_batch(batch, ctx)

    def preparation_key(self) -> tuple:
        """NPR detectors with the same scoring crop and test resize share one prepared stream."""
        return ("npr-eval", self.test_crop, self.test_resize)

    def _build_model(self) -> nn.Module:
        return NPRNet(self.width, self.blocks)

    differentiable = True

    def differentiable_score(self, image01: torch.Tensor, caption: str | None = None) -> torch.Tensor:
        """The test-time path of ``_transform`` in torch (the optional ``test_resize`` is torch's bilinear
        instead of PIL's), then the network's logit."""
        if self.model is None:
            raise BenchError(f"{self.name}: differentiable_score() called before fit()")
        x, side = image01, self.test_resize
        if side is not None and tuple(x.shape[-2:]) != (side, side):
            x = nn.functional.interpolate(x[None], size=(side, side), mode="bilinear", align_corners=False)[0]
        if self.test_crop is None:
            return binary_logit(self.model, normalise_tensor(x))
        size = self.test_crop
        height, width = x.shape[-2:]
        if height < size or width < size:  # pad_to by indexing, so pads longer than the side reflect again too
            rows, cols = (torch.from_numpy(np.pad(np.arange(n), (0, max(0, size - n)), mode="reflect"))
                          for n in (height, width))
            x = x[:, rows][:, :, cols]
            height, width = x.shape[-2:]
        top, left = (height - size) // 2, (width - size) // 2
        x = x[:, top:top + size, left:left + size]
        return binary_logit(self.model, normalise_tensor(x))
