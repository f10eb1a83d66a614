"""The one training loop for every detector that trains a network.

Seeded (model init, shuffling, augmentation and dropout all draw from
generators derived from the run seed), on the GPU when there is one (bf16
autocast there) and on the CPU otherwise, with DataLoader workers, validation
each epoch, early stopping and model selection on a declared validation metric,
checkpoints that resume after an interruption, and a progress bar with loss and
validation metric.
"""

from __future__ import annotations

import copy
import io
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

from bench import atomic
from bench.detector import FitContext
from bench.imageset import ImageSet
from bench.rng import derive_rng

# transform(image_uint8_hwc, rng_or_None) -> float tensor CHW; rng is None at evaluation time.
Transform = Callable[[np.ndarray, "np.random.Generator | None"], torch.Tensor]


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"  # "adam" or "adamw"
    patience: int = 3  # epochs without validation improvement before stopping


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
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _autocast(device: torch.device):
    return torch.autocast(device_type="cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast(
        device_type="cpu", enabled=False)


def predict_probs(model: nn.Module, images: ImageSet, transform: Transform, ctx: FitContext,
                  desc: str = "scoring") -> np.ndarray:
    """Class probabilities (softmax, or sigmoid for a single logit), in input order."""
    device = resolve_device(ctx.device)
    loader = DataLoader(_TorchView(images, np.zeros(len(images), dtype=np.int64), transform, ctx.seed, False),
                        batch_size=ctx.batch_size, shuffle=False, num_workers=ctx.workers)
    model.eval().to(device)
    out = []
    with torch.no_grad():
        for x, _ in tqdm(loader, desc=desc, leave=False, disable=not ctx.progress):
            with _autocast(device):
                logits = model(x.to(device)).float()
            out.append((torch.sigmoid(logits) if logits.shape[1] == 1 else logits.softmax(dim=1)).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 1))


def _save_checkpoint(path: Path, state: dict) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic.write_bytes(path, buf.getvalue())


def train_classifier(model: nn.Module, train: ImageSet, val: ImageSet, train_targets: np.ndarray,
                     val_targets: np.ndarray, transform: Transform, cfg: TrainConfig, ctx: FitContext,
                     select: Callable[[np.ndarray, np.ndarray], float] = macro_f1,
                     checkpoint: Path | None = None) -> dict:
    """Train ``model`` in place; keep the weights of the best validation epoch. Returns a history dict.

    One output unit means binary cross-entropy on 0/1 targets; more means cross-entropy on class
    indices. With ``checkpoint`` set, the state after every epoch is written atomically there and a
    later call with the same path resumes from the last finished epoch.
    """
    device = resolve_device(ctx.device)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    optimizer = opt_cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    view = _TorchView(train, train_targets, transform, ctx.seed, True)
    history = {"epoch": [], "loss": [], "val": []}
    best = {"score": -np.inf, "state": copy.deepcopy(model.state_dict()), "epoch": -1}
    start_epoch = 0
    if checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history, best, start_epoch = state["history"], state["best"], state["epoch"] + 1
        torch.set_rng_state(state["torch_rng"])
    bar = tqdm(range(start_epoch, cfg.epochs), desc="training", leave=False, disable=not ctx.progress,
               initial=start_epoch, total=cfg.epochs)
    for epoch in bar:
        view.epoch = epoch
        loader = DataLoader(view, batch_size=cfg.batch_size, shuffle=True, num_workers=ctx.workers,
                            generator=torch.Generator().manual_seed(ctx.seed * 1000 + epoch), drop_last=False)
        model.train()
        losses = []
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            with _autocast(device):
                logits = model(x).float()
            loss = (nn.functional.binary_cross_entropy_with_logits(logits[:, 0], y.float()) if logits.shape[1] == 1
                    else nn.functional.cross_entropy(logits, y))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        score = select(val_targets, predict_probs(model, val, transform, ctx, "validating")) if len(val) else 0.0
        history["epoch"].append(epoch)
        history["loss"].append(float(np.mean(losses)) if losses else float("nan"))
        history["val"].append(score)
        if score > best["score"]:
            best = {"score": score, "state": copy.deepcopy(model.state_dict()), "epoch": epoch}
        bar.set_postfix(loss=f"{history['loss'][-1]:.4f}", val=f"{score:.3f}")
        if checkpoint is not None:
            _save_checkpoint(checkpoint, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                          "history": history, "best": best, "epoch": epoch,
                                          "torch_rng": torch.get_rng_state()})
        if epoch - best["epoch"] >= cfg.patience:
            break
    model.load_state_dict(best["state"])
    model.to("cpu").eval()
    return {**history, "best_epoch": best["epoch"], "best_val": best["score"]}


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
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1).float().div_(255.0)
    return nn.functional.interpolate(x[None], size=(size, size), mode="bilinear", antialias=True,
                                     align_corners=False)[0]
