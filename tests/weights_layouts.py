"""Shared fixtures for the weights tests: isolated caches, the libraries' on-disk layouts, test catalog entries.

Every test that touches weights imports ``isolated`` (all cache locations inside tmp_path) and, where it
must stay offline, ``no_network``. The writers below put files where and how the libraries themselves
leave them: a Hugging Face hub cache (``models--ORG--NAME/blobs/<sha256>``, ``snapshots/<commit>/...``
symlinks, ``refs/main``), the torch hub cache (``$TORCH_HOME/hub/checkpoints``), OpenAI's TorchScript
CLIP archive. A test pins the hash of a file it made with a *test catalog entry* (:func:`pin`): the
catalog is data, so the test declares the entry it needs for its own duration; no check is weakened.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest

from bench.core.hashing import sha256_file
from bench.core.registry import Entry, Registry
from bench.weights import download

DEFAULT_COMMIT = "a" * 40


# --------------------------------------------------------------------------- isolation


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Every cache location inside tmp_path; online unless a test says otherwise."""
    for var in ("BENCH_OFFLINE", "HF_HUB_OFFLINE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path / "store"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(download, "_host_reachable", lambda host, port=443: True)  # downloads are faked per test
    return tmp_path


@pytest.fixture
def no_network(monkeypatch):
    """A socket guard: any attempt to reach the network fails the test loudly."""
    calls: list[object] = []

    def guard(*args, **kwargs):
        calls.append(args)
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", guard)
    monkeypatch.setattr(socket.socket, "connect_ex", guard)
    monkeypatch.setattr(socket, "create_connection", guard)
    monkeypatch.setattr(socket, "getaddrinfo", guard)
    return calls


def bench_weights(*argv: str) -> int:
    """``bench weights ...`` in process; returns the exit code."""
    from bench.cli.weights import add_weights_commands

    parser = argparse.ArgumentParser(prog="bench")
    add_weights_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    return args.func(args)


# --------------------------------------------------------------------------- the libraries' cache layouts


def make_hf_cache(root: Path, repo_id: str, files: dict[str, Path], commit: str = DEFAULT_COMMIT,
                  move: bool = False) -> Path:
    """A hub cache layout under ``root/hub`` (``root`` = HF_HOME): refs/main -> snapshot folder whose files
    link to blobs named by their sha256. ``move=True`` moves the sources instead of copying (large files)."""
    return make_hub_repo(root / "hub", repo_id, files, commit, move)


def make_hub_repo(hub: Path, repo_id: str, files: dict[str, Path], commit: str = DEFAULT_COMMIT,
                  move: bool = False) -> Path:
    """As :func:`make_hf_cache`, with ``hub`` the hub cache folder itself (HF_HUB_CACHE)."""
    repo = hub / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True, exist_ok=True)
    for rel, src in files.items():
        blob = repo / "blobs" / sha256_file(str(src))
        blob.parent.mkdir(parents=True, exist_ok=True)
        (shutil.move if move else shutil.copyfile)(str(src), str(blob))
        (snap / rel).parent.mkdir(parents=True, exist_ok=True)
        if not (snap / rel).is_symlink():
            os.symlink(os.path.relpath(blob, (snap / rel).parent), snap / rel)
    return snap


def hf_cache_folder(root: Path, repo_id: str, folder: Path, subfolder: str | None = None) -> Path:
    """Every file of a saved model folder (``save_pretrained``, timm's ``save_for_hf``) into the hub cache,
    under ``subfolder`` of the repo; returns the snapshot's (sub)folder."""
    prefix = f"{subfolder}/" if subfolder else ""
    snap = make_hf_cache(root, repo_id, {prefix + p.name: p for p in folder.iterdir() if p.is_file()}, move=True)
    return snap / subfolder if subfolder else snap


def torch_hub_checkpoint(state: dict, name: str) -> Path:
    """A state dict saved as torch hub / torchvision leave it: ``$TORCH_HOME/hub/checkpoints/<name>``."""
    import torch

    path = Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def openai_clip_archive(model, path: Path) -> Path:
    """An open_clip CLIP model saved as OpenAI's released ``ViT-*.pt``: a TorchScript archive whose state dict
    holds OpenAI's parameter names, with the weights OpenAI stored in fp16 converted as OpenAI did
    (open_clip's ``convert_weights_to_lp``), the rest fp32."""
    import copy

    import open_clip
    import torch
    from torch import nn

    class Node(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    half = copy.deepcopy(model)
    open_clip.model.convert_weights_to_lp(half, dtype=torch.float16)
    root = Node()
    for key, value in half.state_dict().items():
        *parents, leaf = key.split(".")
        node = root
        for name in parents:
            if not hasattr(node, name):
                node.add_module(name, Node())
            node = getattr(node, name)
        node.register_parameter(leaf, nn.Parameter(value.detach().clone(), requires_grad=False))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.script(root).save(str(path))
    return path


# --------------------------------------------------------------------------- test catalog entries


def declare(monkeypatch, registry: Registry, name: str, obj: Any, **meta: Any) -> Any:
    """Declare (or replace) ``name`` in a registry for the duration of one test."""
    monkeypatch.setitem(registry._entries, name, Entry(name, obj, dict(meta)))
    return obj


def pin(monkeypatch, name: str, made: Path):
    """The test catalog entry for a file or folder a test made: the catalog's entry ``name`` with the made
    bytes' sha256 as its known hash, in the field the real entry uses for that file (``file_sha256`` for a
    folder of files, ``alt_sha256`` for the release file an alternate hash is published for, else
    ``sha256``). Declared in the catalog for this test only, so every route (resolver, CLI) sees it."""
    from bench.weights.catalog import COMPONENTS, get_spec
    from bench.weights.checksums import alt_file_name

    spec = get_spec(name)
    if spec.kind == "files":
        spec = dataclasses.replace(spec, sha256=None,
                                   file_sha256=tuple(sha256_file(str(made / f)) for f in spec.filenames))
    elif made.name == alt_file_name(spec):
        spec = dataclasses.replace(spec, alt_sha256=(sha256_file(str(made)),))
    else:
        spec = dataclasses.replace(spec, sha256=sha256_file(str(made)))
    return declare(monkeypatch, COMPONENTS, name, spec, kind=spec.kind)


# --------------------------------------------------------------------------- resolution routes


def resolve_every_route(name: str, made: Path, cache_source: str | None):
    """Resolve ``name`` through each route a user has: the library cache it was written to (``cache_source``,
    None when the component has none), ``--weights NAME=PATH``, and ``bench weights import`` then the store.
    Every route must find the same bytes under the file's own name; returns {route: ResolvedWeights}."""
    from bench import weights as W

    got = {}
    if cache_source:
        got["cache"] = W.resolve(name, download=False)
        assert got["cache"].source == cache_source, got["cache"]
        listed = next(row for row in W.describe_status() if row["name"] == name)  # `bench weights list` agrees
        assert (listed["status"], listed["found_in"], listed["verification"]) == (
            "present", cache_source, got["cache"].verification)
    got["override"] = W.resolve(name, overrides=W.parse_weight_overrides([f"{name}={made}"]), download=False)
    assert bench_weights("weights", "import", name, str(made)) == 0
    got["store"] = W.resolve(name, download=False)
    assert got["store"].source == "store"
    assert len({r.sha256 for r in got.values()}) == 1, {k: r.sha256 for k, r in got.items()}
    if made.is_file():
        assert {r.path.name for r in got.values()} == {made.name}  # a hub link keeps its name, not its blob's
    return got


# --------------------------------------------------------------------------- inputs and offline library loaders


@pytest.fixture
def hub_offline(monkeypatch):
    """The libraries' own hub loaders (open_clip, timm, diffusers) offline: huggingface_hub reads HF_HUB_OFFLINE
    once, at import, so its constant is switched too. Pass the hub folder to them as ``cache_dir``."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def fixed_images(folder: Path, sizes=((64, 88), (80, 56))):
    """An ImageSet of smooth, seeded, non-square RGB images (height, width), one per size, with captions."""
    import numpy as np
    from PIL import Image

    from bench.data.dataset import Item
    from bench.data.imageset import ImageSet

    rng = np.random.default_rng(0)
    items = []
    for i, (h, w) in enumerate(sizes):
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        arr = np.stack([128 + 100 * np.sin(5 * xx + i), 128 + 90 * np.cos(4 * yy), 255 * xx * yy], -1)
        arr = np.clip(arr + rng.normal(0, 12, arr.shape), 0, 255).astype(np.uint8)
        path = folder / f"im{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(path)
        items.append(Item(id=path.name, path=str(path), label=i % 2, generator="real" if i % 2 == 0 else "gen",
                          caption=f"a smooth test pattern number {i}", sha256=sha256_file(str(path)),
                          width=w, height=h))
    return ImageSet(items)
