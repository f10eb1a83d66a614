"""Where weights live: the store folder, the libraries' own caches, and offline mode (all read
from the environment at call time).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any


#: Where a resolved component came from, in resolution order.
SOURCES = ("override", "store", "hf-cache", "torch-cache", "clip-cache", "download")
PROVENANCE_FILE = ".provenance.json"
HASH_CACHE_FILE = ".hash-cache.json"
TMP_DIR = ".tmp"
_TRUE = {"1", "true", "yes", "on"}
HEX64 = re.compile(r"[0-9a-f]{64}")


# --------------------------------------------------------------------------- environment


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in _TRUE


def is_offline() -> bool:
    """True when ``BENCH_OFFLINE`` or ``HF_HUB_OFFLINE`` is set to 1/true/yes/on: nothing touches the network."""
    return _truthy(os.environ.get("BENCH_OFFLINE")) or _truthy(os.environ.get("HF_HUB_OFFLINE"))


def offline_reason() -> str:
    names = [n for n in ("BENCH_OFFLINE", "HF_HUB_OFFLINE") if _truthy(os.environ.get(n))]
    return "=1, ".join(names) + "=1" if names else "offline=True"


def store_dir() -> Path:
    """The local weights store: ``$BENCH_WEIGHTS_DIR``, else ``<user cache dir>/aigi-bench/weights``."""
    env = os.environ.get("BENCH_WEIGHTS_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("aigi-bench")) / "weights"


def _xdg_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser()


def hf_hub_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment now (as huggingface_hub does at import)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    home = os.environ.get("HF_HOME")
    return (Path(home).expanduser() if home else _xdg_cache() / "huggingface") / "hub"


def torch_hub_checkpoints_dir() -> Path:
    """Where torch.hub / torchvision / old timm keep downloaded checkpoints."""
    home = os.environ.get("TORCH_HOME")
    return (Path(home).expanduser() if home else _xdg_cache() / "torch") / "hub" / "checkpoints"


def clip_cache_dir() -> Path:
    """Where OpenAI's clip package and open_clip's URL downloads keep the original CLIP .pt files."""
    return Path("~/.cache/clip").expanduser()


# --------------------------------------------------------------------------- the store


def read_provenance(entry: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((entry / PROVENANCE_FILE).read_text("utf-8"))
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None
