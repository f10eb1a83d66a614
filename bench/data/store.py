"""Where datasets live on this machine: the data store (``$BENCH_DATA_DIR``, else
``<user cache dir>/aigi-bench/data``), which ``bench data fetch`` fills and where a registered dataset
is looked for when no path is given."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    env = os.environ.get("BENCH_DATA_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("aigi-bench")) / "data"


def dataset_dir(name: str) -> Path:
    """The store folder of a registered dataset, or of a Hugging Face repository (``hf:ORG/NAME``)."""
    if name.startswith("hf:"):
        return data_dir() / "hf" / name[3:].replace("/", "--")
    return data_dir() / name
