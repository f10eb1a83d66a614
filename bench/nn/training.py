"""The one training loop for every detector that trains a network.

Seeded (model init, shuffling, augmentation and dropout all draw from
generators derived from the run seed), on the GPU when there is one (bf16
autocast there for detectors that declare ``mixed_precision``) and on the CPU
otherwise, with DataLoader workers, validation each epoch, early stopping and
model selection on a declared validation metric, checkpoints that resume after
an interruption, and a progress bar with loss and validation metric.
"""

from __future__ import annotations

import copy
import functools
import io
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from sklearn.metrics import f1_score
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from bench.core import atomic
from bench.core.detector import Detector, FitContext, Prediction, Preparation
from bench.core.errors import BenchError
from bench.core.rng import derive_rng
from bench.data.imageset import ImageSet
from bench.nn.selection import Selection

log = logging.getLogger(__name__)

# transform(image_uint8_hwc, rng_or_None) -> float tensor CHW; rng is None at evaluation time.
Transform = Callable[[np.ndarray, "np.random.Generator | None"], torch.Tensor]


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"  # "adam", "adamw" or "sgd" (with `momentum`)
    patience: int = 3  # epochs without validation improvement before stopping
    momentum: float = 0.9  # sgd only
    sam_rho: float = 0.0  # > 0: sharpness-aware minimisation (bench.nn.sam.SAM) around the optimiser, this radius
    schedule: str = "constant"  # "constant"; "cosine": annealed per epoch to `min_lr` over `cosine_epochs`
    #   (default `epochs`); "step": times `step_gamma` after every `step_every` epochs (see step_factor)
    min_lr: float = 0.0
    cosine_epochs: int | None = None
    step_every: int = 10
    step_gamma: float = 0.9
    keep: str = "best"  # which epoch's weights to keep: "best", "last" or "last_lr_phase" (bench.nn.selection)
    # > 0: when `patience` epochs pass without validation gain, multiply the lr by this factor and go on
    # (CNNDetection's plateau rule; meant for schedule "constant", a schedule would overwrite the lowered rate);
    # training stops once the lr falls below `stop_lr`. 0: stop at once. Each drop starts a new phase whose
    # patience counts from its own best epoch (bench.nn.selection).
    plateau_factor: float = 0.0
    stop_lr: float = 1e-6

    def passes(self, n_train: int, n_val: int) -> int:
        """Images through the trained network at most (``Detector.training_passes``): every epoch trains on
        each training image once and validates on each validation image once."""
        return self.epochs * (n_train + n_val)


def step_factor(epoch: int, every: int, gamma: float) -> float:
    """Learning-rate factor of (0-based) ``epoch`` under NPR's ``train.py`` rule: the rate is multiplied by
    ``gamma`` at the end of every epoch whose index is a non-zero multiple of ``every`` (10, 20, ...), so epochs
    0..10 run at the initial rate, 11..20 at ``gamma`` times it, and so on."""
    return gamma ** (max(epoch - 1, 0) // every)


def _make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig):
    """The per-epoch learning-rate schedule of ``cfg.schedule`` (None for a constant rate)."""
    base = getattr(optimizer, "base_optimizer", optimizer)
    if cfg.schedule == "constant":
        return None
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(base, T_max=max(1, cfg.cosine_epochs or cfg.epochs),
                                                          eta_min=cfg.min_lr)
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.LambdaLR(base, lambda epoch: step_factor(epoch, cfg.step_every,
                                                                                   cfg.step_gamma))
    raise ValueError(f"unknown schedule {cfg.schedule!r} (constant, cosine or step)")


def _plateau_continues(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> bool:
    """After ``patience`` epochs without gain: lower the rate by ``plateau_factor`` and say whether to go on."""
    if cfg.plateau_factor <= 0:
        return False
    groups = getattr(optimizer, "base_optimizer", optimizer).param_groups
    for group in groups:
        group["lr"] *= cfg.plateau_factor
    return min(group["lr"] for group in groups) >= cfg.stop_lr


def accuracy(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Validation metric: accuracy at P(generated) >= 0.5 (one logit)."""
    return float(np.mean((probs[:, 0] >= 0.5).astype(int) == np.asarray(y_true)))


def macro_f1(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Validation metric: macro F1 of the arg-max class (or of p >= 0.5 for one logit)."""
    pred = (probs[:, 0] >= 0.5).astype(int) if probs.shape[1] == 1 else probs.argmax(axis=1)
    return float(f1_score(y_true, pred, average="macro"))


class _TorchView(Dataset):
    """Images of an ImageSet as tensors; augmentation draws from a per-(seed, epoch, index) generator."""

    def __init__(self, images: ImageSet, targets: np.ndarray, transform: Transform, seed: int, train: bool):
        self.images, self.targets, self.transform = images, targets, transform
        self.seed, self.train, self.epoch = seed, train, 0

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        rng = derive_rng(self.seed, "augment", self.epoch, self.images.hashes[i]) if self.train else None
        return self.transform(self.images[i], rng), self.targets[i]


def resolve_device(device: str) -> torch.device:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``; a CUDA device that torch cannot use is a one-line BenchError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise BenchError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from None
    if resolved.type == "cuda":
        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not available:
            raise BenchError(f"--device {device}: torch sees no CUDA GPU on this machine (torch {torch.__version__}, "
                             f"built for CUDA {torch.version.cuda or 'none'}); use --device cpu or auto")
        if resolved.index is not None and resolved.index >= available:
            raise BenchError(f"--device {device}: only {available} CUDA GPU(s) visible (cuda:0 to "
                             f"cuda:{available - 1})")
    return resolved


def autocast_dtype(device: torch.device, mixed_precision: bool) -> torch.dtype | None:
    """bf16 when the detector allows mixed precision (``FitContext.mixed_precision``) and runs on CUDA;
    None (full precision) otherwise, and always on the CPU."""
    return torch.bfloat16 if mixed_precision and device.type == "cuda" else None


def _autocast(device: torch.device, mixed_precision: bool):
    dtype = autocast_dtype(device, mixed_precision)
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None)


def predict_probs(model: nn.Module, images: ImageSet, transform: Transform, ctx: FitContext,
                  desc: str = "scoring") -> np.ndarray:
    """Class probabilities (softmax, or sigmoid for a single logit), in input order."""
    device = resolve_device(ctx.device)
    loader = DataLoader(_TorchView(images, np.zeros(len(images), dtype=np.int64), transform, ctx.seed, False),
                        batch_size=ctx.batch_size, shuffle=False, num_workers=ctx.workers)
    model.eval().to(device)
    out = [batch_probs(model, x, device, ctx.mixed_precision)
           for x, _ in tqdm(loader, desc=desc, leave=False, disable=not ctx.progress)]
    return np.concatenate(out) if out else np.zeros((0, 1))


def batch_probs(model: nn.Module, x: torch.Tensor, device: torch.device, mixed_precision: bool) -> np.ndarray:
    """Class probabilities of one batch (the model in eval mode on ``device``): the one forward pass
    behind both :func:`predict_probs` and the runner's stream, so both give the same numbers. A
    pinned batch is copied without blocking, overlapping the copy with the stream's next batch."""
    with torch.no_grad():
        with _autocast(device, mixed_precision):
            logits = model(x.to(device, non_blocking=x.is_pinned())).float()
        return (torch.sigmoid(logits) if logits.shape[1] == 1 else logits.softmax(dim=1)).cpu().numpy()


def _save_checkpoint(path: Path, state: dict) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic.write_bytes(path, buf.getvalue())


def _load_checkpoint(path: Path, device: torch.device) -> dict | None:
    """A checkpoint's state, loaded with ``weights_only=True`` (tensors and plain containers only: a crafted
    file cannot run code); None when there is none or it cannot be loaded (then training starts over)."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        if not isinstance(state, dict) or not {"model", "optimizer", "history", "kept", "selection",
                                                "epoch"} <= set(state):
            raise ValueError("not a training checkpoint of this version")
        return state
    except Exception as exc:  # truncated, foreign, or holding objects weights_only refuses: start over
        log.warning("checkpoint %s cannot be loaded (%s: %s); training from the first epoch",
                    path, type(exc).__name__, exc)
        path.unlink(missing_ok=True)
        return None


def _make_optimizer(params: list, cfg: TrainConfig) -> torch.optim.Optimizer:
    base = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
            "sgd": functools.partial(torch.optim.SGD, momentum=cfg.momentum)}.get(cfg.optimizer)
    if base is None:
        raise ValueError(f"unknown optimizer {cfg.optimizer!r} (adam, adamw or sgd)")
    if cfg.sam_rho > 0:
        from bench.nn.sam import SAM

        return SAM(params, base, rho=cfg.sam_rho, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return base(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def train_classifier(model: nn.Module, train: ImageSet, val: ImageSet, train_targets: np.ndarray,
                     val_targets: np.ndarray, transform: Transform, cfg: TrainConfig, ctx: FitContext,
                     select: Callable[[np.ndarray, np.ndarray], float] = macro_f1,
                     checkpoint: Path | None = None,
                     loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                     epoch_hook: Callable[[int, nn.Module], None] | None = None) -> dict:
    """Train ``model`` in place; keep the weights of the epoch ``cfg.keep`` names (bench.nn.selection: the
    best validation epoch, the last, or the best of the last rate phase). Returns a history dict with
    ``best_epoch``/``best_val`` (the best validation epoch of the whole fit) and ``kept_epoch``.

    One output unit means binary cross-entropy on 0/1 targets; more means cross-entropy on class
    indices; ``loss_fn(logits, targets)`` replaces either. With ``cfg.sam_rho > 0`` every update is a
    SAM step (two forward/backward passes, BatchNorm statistics updated by the first only).
    ``epoch_hook(epoch, model)`` runs before each epoch (e.g. to regenerate adversarial examples in
    ``train``). ``train``/``val`` need only ``len``, indexing and ``hashes`` (precomputed feature
    rows work too). With ``checkpoint`` set, the state after every epoch is written atomically there
    and a later call with the same path resumes from the last finished epoch.
    """
    device = resolve_device(ctx.device)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = _make_optimizer(params, cfg)
    sam = hasattr(optimizer, "first_step")
    selection = Selection(cfg.keep)
    scheduler = _make_scheduler(optimizer, cfg)
    view = _TorchView(train, train_targets, transform, ctx.seed, True)
    history = {"epoch": [], "loss": [], "val": []}
    # the kept epoch's weights; none under "last", whose kept weights are the model's when training ends
    kept = None if cfg.keep == "last" else copy.deepcopy(model.state_dict())
    start_epoch = 0
    state = _load_checkpoint(checkpoint, device) if checkpoint is not None else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history, kept, start_epoch = state["history"], state["kept"], state["epoch"] + 1
        selection = Selection(**state["selection"])
        torch.set_rng_state(state["torch_rng"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
    bar = tqdm(range(start_epoch, cfg.epochs), desc="training", leave=False, disable=not ctx.progress,
               initial=start_epoch, total=cfg.epochs)
    for epoch in bar:
        view.epoch = epoch
        if epoch_hook is not None:
            epoch_hook(epoch, model)
        loader = DataLoader(view, batch_size=cfg.batch_size, shuffle=True, num_workers=ctx.workers,
                            generator=torch.Generator().manual_seed(ctx.seed * 1000 + epoch), drop_last=False)
        model.train()
        losses = []
        for x, y in loader:
            x, y = x.to(device), y.to(device)

            def batch_loss() -> torch.Tensor:
                with _autocast(device, ctx.mixed_precision):
                    logits = model(x).float()
                if loss_fn is not None:
                    return loss_fn(logits, y)
                return (nn.functional.binary_cross_entropy_with_logits(logits[:, 0], y.float())
                        if logits.shape[1] == 1 else nn.functional.cross_entropy(logits, y))

            loss = batch_loss()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if sam:
                from bench.nn.sam import disable_running_stats

                optimizer.first_step(zero_grad=True)
                with disable_running_stats(model):
                    batch_loss().backward()
                optimizer.second_step(zero_grad=True)
            else:
                optimizer.step()
            losses.append(float(loss.detach()))
        if scheduler is not None:
            scheduler.step()
        score = float(select(val_targets, predict_probs(model, val, transform, ctx, "validating"))) if len(val) \
            else 0.0  # a plain float: checkpoints load with weights_only=True
        history["epoch"].append(epoch)
        history["loss"].append(float(np.mean(losses)) if losses else float("nan"))
        history["val"].append(score)
        if selection.observe(epoch, score) and cfg.keep != "last":
            kept = copy.deepcopy(model.state_dict())
        bar.set_postfix(loss=f"{history['loss'][-1]:.4f}", val=f"{score:.3f}")
        stop = selection.exhausted(epoch, cfg.patience)
        if stop and _plateau_continues(optimizer, cfg):
            stop = False
            selection.rate_dropped(epoch)
        if checkpoint is not None:
            _save_checkpoint(checkpoint, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                          "history": history, "kept": kept, "selection": selection.state(),
                                          "epoch": epoch,
                                          "torch_rng": torch.get_rng_state(),
                                          "scheduler": scheduler.state_dict() if scheduler is not None else None})
        if stop:
            break
    if cfg.keep != "last":
        model.load_state_dict(kept)
    model.to("cpu").eval()
    return {**history, "best_epoch": selection.best_epoch, "best_val": selection.best_score,
            "kept_epoch": selection.kept_epoch}


@contextmanager
def seeded_torch(seed: int) -> Iterator[None]:
    """Run a block with torch's global RNG seeded, restoring the caller's state afterwards.

    Model initialisation and dropout use torch's global generator; forking it keeps
    a detector's training reproducible without changing anyone else's random state.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def resize_to_tensor(image: np.ndarray, size: int) -> torch.Tensor:
    """uint8 HWC -> float CHW in [0, 1], resized (antialiased) to size x size."""
    return resize_square(torch.from_numpy(np.array(image)).permute(2, 0, 1).float().div_(255.0), size)


def resize_square(x01: torch.Tensor, size: int) -> torch.Tensor:
    """Float CHW -> CHW at size x size, bilinear antialiased: :func:`resize_to_tensor`'s resize, in torch
    (differentiable), so a white-box attack sees the pixels ``predict`` sees."""
    return nn.functional.interpolate(x01[None], size=(size, size), mode="bilinear", antialias=True,
                                     align_corners=False)[0]


class CpuPickledModel:
    """Mixin for detectors that hold a trained ``self.model``: the pickled copy (the runner's fit cache)
    holds the model on the CPU, so a fit made on a GPU loads on any machine."""

    def __getstate__(self) -> dict:
        if getattr(self, "model", None) is not None:
            self.model.to("cpu")
        return self.__dict__.copy()


class StreamedNet:
    """Mixin for detectors that score ``predict_probs(self.model, images, self._transform, ctx)``: the
    same computation split for the runner's stream (the eval transform in worker processes, the
    forward pass on batches). Subclasses give :meth:`finish` (probabilities -> Prediction) and may
    widen :meth:`preparation_key` so that detectors with the same eval transform share it."""

    model: nn.Module | None

    def preparation_key(self) -> tuple:
        return (type(self).__qualname__, id(self))  # shared with no other detector

    def preparation(self) -> Preparation:
        return Preparation(self.preparation_key(), functools.partial(self._transform, rng=None))

    def forward_batch(self, batch: torch.Tensor, ctx: FitContext) -> np.ndarray:
        if self.model is None:
            raise BenchError(f"{self.name}: scored before fit()")
        device = resolve_device(ctx.device)
        return batch_probs(self.model.eval().to(device), batch, device, ctx.mixed_precision)


class BinaryNetDetector(StreamedNet, CpuPickledModel, Detector):
    """A one-logit network trained on real (0) vs generated (1) with the shared loop, selected on
    validation accuracy. Subclasses set ``self.cfg`` and give ``_build_model()`` and
    ``_transform(image, rng)``."""

    cfg: TrainConfig
    model: nn.Module | None = None

    def _build_model(self) -> nn.Module:
        raise NotImplementedError

    def _transform(self, image: np.ndarray, rng) -> torch.Tensor:
        raise NotImplementedError

    def fit(self, train: ImageSet, val: ImageSet, ctx: FitContext) -> None:
        with seeded_torch(ctx.seed):
            self.model = self._build_model()
            self.history = train_classifier(self.model, train, val, train.labels, val.labels, self._transform,
                                            self.cfg, ctx, select=accuracy, checkpoint=ctx.checkpoint)

    def fit_passes(self, n_train: int, n_val: int, n_classes: int) -> int:
        return self.cfg.passes(n_train, n_val)

    def predict(self, images: ImageSet, ctx: FitContext) -> Prediction:
        if self.model is None:
            raise BenchError(f"{self.name}: predict() called before fit()")
        return self.finish(predict_probs(self.model, images, self._transform, ctx))

    def finish(self, rows: np.ndarray) -> Prediction:
        return Prediction(score=rows[:, 0])
