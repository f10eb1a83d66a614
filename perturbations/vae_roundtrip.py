"""``vae_roundtrip:AE``: the image encoded and decoded by an autoencoder, once per severity step.

Severity k = k round trips (decode(encode(x)), rounded to uint8 after each, as a saved image
would be). Any autoencoder registered in ``bench.core.registries.AUTOENCODERS`` can be named: the
latent-diffusion VAEs (``sd1``, ``sd2``), the Kandinsky 2.1 MoVQ (``kd21``) and the tiny TAESD
family (``taesd``, ``taesdxl``, ``taesd3``, ``taef1``, ``taef2``; 5 MB, CPU-friendly).

Layering: this package sits below the plugins and may not import ``baselines`` or ``bench.nn``,
where the autoencoder code and its weights loading live. The baselines package registers one
lazy ``"module:attr"`` loader per autoencoder in the core ``AUTOENCODERS`` registry; this module
resolves the name there, so the import happens at run time, in the direction of the registry,
and ``bench --help`` loads no model. The loader resolves the weights through ``bench.weights``
(a missing component is a one-line error naming the fix, raised when ``--perturb`` is read) and
returns the round trip with the weights' sha256 (and its code version), which go into every
cell's fingerprint: other weights under the same name never serve cached scores.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np

from bench.core.errors import BenchError
from bench.core.registries import AUTOENCODERS, load_plugins
from bench.core.registry import UnknownNameError, unknown_name_message
from perturbations.base import Perturbation
from perturbations.families import Family, add_family

ROUND_TRIPS = (1, 2, 3)
CHAIN_MEMO = 512  # round-trip outputs kept, so level k starts from level k-1's image: k trips cost one

_CHAIN: OrderedDict[tuple[str, str, int], np.ndarray] = OrderedDict()
_CHAIN_LOCK = threading.Lock()


def _remember(key: tuple[str, str, int], image: np.ndarray) -> None:
    with _CHAIN_LOCK:
        _CHAIN[key] = image
        while len(_CHAIN) > CHAIN_MEMO:
            _CHAIN.popitem(last=False)


def _loader(name: str):
    load_plugins()
    try:
        entry = AUTOENCODERS.entry(name)
    except UnknownNameError:
        raise BenchError("vae_roundtrip: " + unknown_name_message("autoencoder", name, _choices())) from None
    return entry.load()


def roundtrips(name: str):
    """``fn(image, n, rng)``: ``n`` round trips through autoencoder ``name`` (loaded on first use)."""

    def vae_roundtrip(image: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        if not (isinstance(n, (int, np.integer)) and n >= 1):
            raise BenchError(f"vae_roundtrip: the number of round trips must be an integer >= 1, got {n!r}")
        roundtrip = _loader(name)(name)
        digest = hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()
        with _CHAIN_LOCK:
            done = max((k for k in range(int(n), 0, -1) if (name, digest, k) in _CHAIN), default=0)
            out = _CHAIN[(name, digest, done)] if done else image
        for k in range(done + 1, int(n) + 1):
            out = roundtrip(out)
            out.setflags(write=False)
            _remember((name, digest, k), out)
        return out.copy()

    return vae_roundtrip


def _choices() -> list[str]:
    load_plugins()
    return AUTOENCODERS.names()


def build(argument: str) -> tuple[Perturbation, str]:
    name = argument.strip().lower()
    load = _loader(name)
    weights = load(name).sha256  # resolves (and checks) the weights now: a missing one fails before the run
    component = AUTOENCODERS.entry(name).meta.get("component")
    return Perturbation(
        name=f"vae_roundtrip:{name}",
        description=f"Round trips through the {name} autoencoder (weights {component or 'random, tests only'}, "
        f"sha256 {weights[:12]}), encode+decode, uint8 after each, CPU float32, deterministic.",
        param_name="round trips", unit="", fn=roundtrips(name), tables={"default": ROUND_TRIPS},
        identity=lambda: load(name).identity,
    ), "{} trip(s)"


add_family(Family("vae_roundtrip", "autoencoder", build, _choices,
                  "vae_roundtrip:AE: 1..3 encode/decode round trips through an autoencoder of the weights catalog"))
