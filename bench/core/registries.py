"""The registries of the benchmark and the packages that fill them.

Detectors, baselines, perturbations and datasets register lazily (``"module:attr"``
strings with metadata), so listing them imports no model code.
"""

from __future__ import annotations

import importlib

from bench.core.detector import CUSTOM_PROFILE
from bench.core.registry import Registry

DETECTORS: Registry = Registry("detector")
PERTURBATIONS: Registry = Registry("perturbation")
DATASETS: Registry = Registry("dataset")
#: Image round trips through an autoencoder (``vae_roundtrip:AE``): lazy ``"module:attr"`` loaders that the
#: plugins holding the autoencoder code register, so perturbations can use them without importing upward.
AUTOENCODERS: Registry = Registry("autoencoder")

_PLUGIN_PACKAGES = ("perturbations", "detectors", "baselines", "bench.data.datasets")
_loaded = False


def load_plugins() -> None:
    """Import the packages whose ``__init__`` registers entries (once)."""
    global _loaded
    if not _loaded:
        _loaded = True
        for package in _PLUGIN_PACKAGES:
            importlib.import_module(package)


def create_detector(name: str, profile: str = "paper", **overrides):
    """Build a registered detector the way every run does: the profile's settings, the variant's registry
    kwargs, then overrides.

    The one factory in front of the detector registry (as timm's ``create_model``); the instance's
    ``name`` is its registry name, which its config and cache keys use. A variant may pin its profile
    (registry meta ``profile``: the tiny test_* models are fast whatever the run asks); any override
    makes the detector's profile "custom".
    """
    load_plugins()
    entry = DETECTORS.entry(name)
    cls = entry.load()
    profile = entry.meta.get("profile", profile)
    detector = cls(**{**cls.profile_params(profile), **entry.meta.get("kwargs", {}), **overrides})
    detector.name = name
    detector.profile = CUSTOM_PROFILE if overrides else profile
    return detector
