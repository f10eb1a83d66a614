"""Offline mode and the Hugging Face hub cache, read from the environment at call time: shared by the
weights store and the data store, so one switch keeps every download off and both find the same cache."""

from __future__ import annotations

import os
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}
_VARIABLES = ("BENCH_OFFLINE", "HF_HUB_OFFLINE")


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in _TRUE


def is_offline() -> bool:
    """True when ``BENCH_OFFLINE`` or ``HF_HUB_OFFLINE`` is set to 1/true/yes/on: nothing touches the network."""
    return any(_truthy(os.environ.get(name)) for name in _VARIABLES)


def offline_reason() -> str:
    names = [n for n in _VARIABLES if _truthy(os.environ.get(n))]
    return "=1, ".join(names) + "=1" if names else "offline=True"


def xdg_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser()


def hf_hub_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment now (as huggingface_hub does at import)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    home = os.environ.get("HF_HOME")
    return (Path(home).expanduser() if home else xdg_cache_dir() / "huggingface") / "hub"
