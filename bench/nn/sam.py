"""Sharpness-aware minimisation (Foret et al. 2021, "Sharpness-Aware Minimization for Efficiently
Improving Generalization") as a wrapper around any torch optimiser.

One SAM update is two gradient evaluations:

1. ``first_step``: with the gradient g of the loss at w, move to the worst nearby point
   ``w + e``, ``e = rho * g / ||g||`` (``||.||`` the L2 norm over all parameters together;
   the "adaptive" variant scales by ``|w|`` elementwise, Kwon et al. 2021);
2. the caller recomputes the loss and its gradient at ``w + e``;
3. ``second_step``: restore w and let the base optimiser step with the gradient from 2.

BatchNorm running statistics should be updated by the first forward pass only; the
training loop wraps the second one in :func:`disable_running_stats`.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
from torch import nn


class SAM(torch.optim.Optimizer):
    def __init__(self, params, base_optimizer: Callable[..., torch.optim.Optimizer], rho: float = 0.05,
                 adaptive: bool = False, **kwargs: Any):
        if rho <= 0:
            raise ValueError(f"SAM: rho must be positive, got {rho}")
        super().__init__(params, dict(rho=rho, adaptive=adaptive, **kwargs))
        self.base_optimizer = base_optimizer(self.param_groups, **kwargs)
        self.param_groups = self.base_optimizer.param_groups  # one set of groups: schedulers see both
        self.defaults.update(self.base_optimizer.defaults)

    @torch.no_grad()
    def _grad_norm(self) -> torch.Tensor:
        norms = [((p.abs() if group["adaptive"] else 1.0) * p.grad).norm(p=2)
                 for group in self.param_groups for p in group["params"] if p.grad is not None]
        if not norms:
            return torch.tensor(0.0)
        device = norms[0].device
        return torch.stack([n.to(device) for n in norms]).norm(p=2)

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """Move every parameter to ``w + e`` (remembering w)."""
        norm = self._grad_norm()
        for group in self.param_groups:
            scale = group["rho"] / (norm + 1e-12)
            for p in group["params"]:
                if p.grad is None:
                    continue
                self.state[p]["w"] = p.detach().clone()
                e = (p.pow(2) if group["adaptive"] else 1.0) * p.grad * scale.to(p)
                p.add_(e)
        if zero_grad:
            self.zero_grad(set_to_none=True)

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """Go back to w and step the base optimiser with the gradient computed at ``w + e``."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None or "w" not in self.state[p]:
                    continue
                p.copy_(self.state[p].pop("w"))
        self.base_optimizer.step()
        if zero_grad:
            self.zero_grad(set_to_none=True)

    def step(self, closure: Callable[[], torch.Tensor] | None = None):  # type: ignore[override]
        """The closure form: gradients at w must already be computed; ``closure`` recomputes loss and gradients."""
        if closure is None:
            raise ValueError("SAM needs a closure that recomputes the loss and calls backward()")
        self.first_step(zero_grad=True)
        with torch.enable_grad():
            loss = closure()
        self.second_step()
        return loss

    # checkpoints hold the base optimiser's state (moments etc.); SAM's own state lives only inside a step
    def state_dict(self) -> dict:  # type: ignore[override]
        return self.base_optimizer.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:  # type: ignore[override]
        self.base_optimizer.load_state_dict(state_dict)
        self.param_groups = self.base_optimizer.param_groups


@contextmanager
def disable_running_stats(model: nn.Module) -> Iterator[None]:
    """BatchNorm layers normalise with batch statistics but leave their running averages unchanged."""
    saved = []
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            saved.append((module, module.momentum))
            module.momentum = 0.0
    try:
        yield
    finally:
        for module, momentum in saved:
            module.momentum = momentum
