"""What an imported weights file must hold, checked by ``bench weights import`` before it is stored.

A torch file (``.pt``, ``.pth``, ``.bin``, ``.ckpt``) must load with ``torch.load(weights_only=True)``, as
every loader of the project loads it, and hold a dict (a state dict, or a wrapper of one), except
OpenAI's TorchScript CLIP archive for an ``open_clip`` component (open_clip's own loader reads it); a
``.safetensors`` file must have a readable header. Anything else (a pickle of other objects, random
bytes) is a one-line error at import, not a failure when a detector first uses it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from bench.core.errors import BenchError
from bench.weights.catalog import ComponentSpec

TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


def is_torchscript_archive(path: Path) -> bool:
    """True for a TorchScript archive (OpenAI's released CLIP ``.pt``), which ``torch.load`` refuses with
    ``weights_only=True``: a zip file holding ``constants.pkl``. Tested up front so the model is built once."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.rsplit("/", 1)[-1] == "constants.pkl" for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def _load_torch(path: Path):
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4": the load itself says what is wrong
        try:  # mapped, not read: a checkpoint of several GB is checked without holding it in memory
            return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            return torch.load(str(path), map_location="cpu", weights_only=True)  # the legacy (non-zip) format


def check_weights_file(spec: ComponentSpec, path: Path) -> None:
    """A one-line BenchError unless ``path`` holds what the loaders of ``spec`` can use (module docstring)."""
    component, suffix = spec.name, path.suffix.lower()
    try:
        if suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                handle.keys()
            return
        if suffix not in TORCH_SUFFIXES or (spec.kind == "open_clip" and is_torchscript_archive(path)):
            return
        obj = _load_torch(path)
    except Exception as exc:  # UnpicklingError, a truncated zip, a foreign header: what each library says
        text = str(exc)  # torch's refusal is a page of advice around one line that says what it met
        first = " ".join(text.partition("WeightsUnpickler error:")[2].split("Check the documentation")[0].split()
                         or text.split())[:200]
        raise BenchError(f"cannot import {component}: {path} is not a weights file that loads safely "
                         f"(weights_only=True): {type(exc).__name__}: {first}") from None
    if not isinstance(obj, dict):
        raise BenchError(f"cannot import {component}: {path} holds a {type(obj).__name__}, not a state dict")
