"""Counting passes through networks: what ``Detector.training_passes`` declares, measured
(``benchmarks/detector_cost.py``; the tests check declared against measured on the tiny detectors)."""

from __future__ import annotations

import weakref
from contextlib import contextmanager
from typing import Iterator

import torch
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook


@contextmanager
def count_passes(min_parameters: int = 100_000) -> Iterator[list[int]]:
    """Passes through networks while the block runs, in ``counter[0]``.

    A network is a module that holds at least ``min_parameters`` parameters; only a call of one that is not
    inside another network's call counts: the batch size of an image batch (a 4-D tensor), or one pass for a
    batch of token sequences (3-D: a text encoder's prompts). Feature rows (2-D) and small modules (a head, a
    transform) count nothing; a training step's backward adds nothing to its forward.
    """
    counter, depth = [0], [0]
    networks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # module -> is it a network

    def is_network(module: torch.nn.Module) -> bool:
        if module not in networks:
            networks[module] = sum(p.numel() for p in module.parameters()) >= min_parameters
        return networks[module]

    def enter(module, args) -> None:
        if not is_network(module):
            return
        x = args[0] if args else None
        if depth[0] == 0 and isinstance(x, torch.Tensor) and x.dim() >= 3:
            counter[0] += int(x.shape[0]) if x.dim() == 4 else 1
        depth[0] += 1

    def leave(module, args, output) -> None:
        if is_network(module):
            depth[0] = max(0, depth[0] - 1)

    handles = [register_module_forward_pre_hook(enter), register_module_forward_hook(leave)]
    try:
        yield counter
    finally:
        for handle in handles:
            handle.remove()
