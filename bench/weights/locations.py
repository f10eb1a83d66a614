"""Where weights live: the store folder, the libraries' own caches, and offline mode (all read
from the environment at call time).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

# Re-exported: part of the bench.weights API.
from bench.core.environment import hf_hub_cache_dir, is_offline, offline_reason, xdg_cache_dir  # noqa: F401


#: Where a resolved component came from, in resolution order.
SOURCES = ("override", "store", "hf-cache", "torch-cache", "clip-cache", "download")
PROVENANCE_FILE = ".provenance.json"
HASH_CACHE_FILE = ".hash-cache.json"
TMP_DIR = ".tmp"
HEX64 = re.compile(r"[0-9a-f]{64}")


# --------------------------------------------------------------------------- environment


def store_dir() -> Path:
    """The local weights store: ``$BENCH_WEIGHTS_DIR``, else ``<user cache dir>/aigi-bench/weights``."""
    env = os.environ.get("BENCH_WEIGHTS_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("aigi-bench")) / "weights"


def torch_hub_checkpoints_dir() -> Path:
    """Where torch.hub / torchvision / old timm keep downloaded checkpoints."""
    home = os.environ.get("TORCH_HOME")
    return (Path(home).expanduser() if home else xdg_cache_dir() / "torch") / "hub" / "checkpoints"


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
