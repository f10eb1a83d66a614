"""Pretrained weights: one resolver, a local store, offline mode, provenance.

May import: bench.core only (not its siblings bench.data and perturbations, nor anything above).
The modules, by job: :mod:`~bench.weights.catalog` (what each component is and where it comes
from), :mod:`~bench.weights.locations` (store and library cache folders, offline mode),
:mod:`~bench.weights.records` (results and errors), :mod:`~bench.weights.checksums`,
:mod:`~bench.weights.store`, :mod:`~bench.weights.resolver`, :mod:`~bench.weights.download`,
:mod:`~bench.weights.manage` (import, listing, ``--weights`` parsing) and
:mod:`~bench.weights.gate` (the runner's go/skip decision before fitting). The names below
are the public API, importable from ``bench.weights``.

Every detector gets its pretrained components (declared in
:mod:`bench.weights.catalog`) through :func:`resolve`, which looks, in order:

1. an explicit path given by the user (``--weights NAME=PATH`` or a config file);
2. the local store, ``$BENCH_WEIGHTS_DIR`` (default: the user cache dir,
   ``aigi-bench/weights``), one folder per component;
3. the libraries' own caches: the Hugging Face hub cache, the torch hub cache
   (``$TORCH_HOME/hub/checkpoints``) and, for OpenAI CLIP, ``~/.cache/clip``;
4. a download into the store, unless offline (``BENCH_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``).

Whatever is found is hashed and checked against the catalog's sha256 (or the
hash pinned when the store entry was made), and comes back as a
:class:`ResolvedWeights` whose :meth:`~ResolvedWeights.to_record` goes into
run.json. When nothing usable is found, :class:`WeightsUnavailable` says why in
one line and gives the exact command that fixes it.

Store layout::

    $BENCH_WEIGHTS_DIR/
        clip_vit_b16/open_clip_model.safetensors
        clip_vit_b16/.provenance.json          where it came from, sha256, size and mtime
        sd_vae_sd1/config.json                 a folder component is the folder itself
        sd_vae_sd1/diffusion_pytorch_model.safetensors
        sd_vae_sd1/.provenance.json
        .hash-cache.json                       sha256 of files already hashed (path, size, mtime)
        .tmp/                                  downloads in progress (renamed into place when verified)

Folder checksum (:func:`sha256_path`): the sha256 of the lines
``"<relative/posix/path>\\0<sha256 of the file>\\n"`` sorted by path, over the
folder's regular files; names starting with "." are ignored. For a diffusers
folder component only its declared files count (config.json and the weight file
diffusers would load), so the same model hashes the same in the store, the hub
cache or a user's folder.

Trust on first use: where the catalog has no checksum, a hub download is
checked against the hub's own LFS sha256, and the store records the sha256 of
what it fetched or imported; a later change of the stored bytes is an error.
"""

from __future__ import annotations

from bench.weights.catalog import ComponentSpec
from bench.weights.checksums import diffusers_variant, is_safetensors, sha256_path
from bench.weights.download import fetch
from bench.weights.locations import SOURCES, is_offline, store_dir
from bench.weights.manage import describe_status, import_weights, parse_weight_overrides, random_weights_allowed
from bench.weights.records import ChecksumMismatch, ResolvedWeights, WeightsUnavailable
from bench.weights.resolver import resolve

__all__ = [
    "ChecksumMismatch",
    "ComponentSpec",
    "ResolvedWeights",
    "SOURCES",
    "WeightsUnavailable",
    "describe_status",
    "diffusers_variant",
    "fetch",
    "import_weights",
    "is_offline",
    "is_safetensors",
    "parse_weight_overrides",
    "random_weights_allowed",
    "resolve",
    "sha256_path",
    "store_dir",
]
