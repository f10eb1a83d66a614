"""The registries of the benchmark and the packages that fill them.

Detectors, baselines, perturbations and datasets register lazily (``"module:attr"``
strings with metadata), so listing them imports no model code. Entries from installed packages and
``--plugin`` files join them through :mod:`bench.core.plugins`.
"""

from __future__ import annotations

import importlib

from typing import Any

from bench.core.detector import CUSTOM_PROFILE, DetectorInfo
from bench.core.plugins import load_entry_points, load_plugin, plugin_specs
from bench.core.registry import Registry


def detector_meta(obj: Any) -> dict[str, Any]:
    """The listing metadata of a detector class registered as an object (a plugin's ``@DETECTORS.register``):
    read from its ``info``, so a plugin need not repeat it."""
    info = getattr(obj, "info", None)
    if not isinstance(info, DetectorInfo):
        return {}
    doc = (obj.__doc__ or "").strip().splitlines()
    return {"family": info.family, "trains": info.trains, "weights": info.weights, "gpu": info.gpu,
            "tasks": info.tasks, "summary": doc[0] if doc else info.paper}


DETECTORS: Registry = Registry("detector", describe=detector_meta)
PERTURBATIONS: Registry = Registry("perturbation")
DATASETS: Registry = Registry("dataset")
#: Image round trips through an autoencoder (``vae_roundtrip:AE``): lazy ``"module:attr"`` loaders that the
#: plugins holding the autoencoder code register, so perturbations can use them without importing upward.
AUTOENCODERS: Registry = Registry("autoencoder")

_PLUGIN_PACKAGES = ("perturbations", "detectors", "baselines", "bench.data.datasets")
#: Entry point group (``aigi_bench.<group>``) -> the registry its entries join.
ENTRY_POINT_GROUPS = {"detectors": DETECTORS, "perturbations": PERTURBATIONS, "datasets": DATASETS}
_loaded = False
_plugins_loaded: set[str] = set()


def load_plugins() -> None:
    """Import the packages whose ``__init__`` registers entries and the installed entry points (once), then
    every ``--plugin`` of this process not loaded yet (bench.core.plugins.use_plugins adds them)."""
    global _loaded
    if not _loaded:
        _loaded = True
        for package in _PLUGIN_PACKAGES:
            importlib.import_module(package)
        load_entry_points(ENTRY_POINT_GROUPS)
    for spec in plugin_specs():
        if spec not in _plugins_loaded:
            _plugins_loaded.add(spec)
            load_plugin(spec, (DETECTORS, PERTURBATIONS, DATASETS, AUTOENCODERS))


def create_detector(name: str, profile: str = "paper", **overrides):
    """Build a registered detector the way every run does: the profile's settings, the variant's registry
    kwargs, then overrides.

    The one factory in front of the detector registry (as timm's ``create_model``); the instance's
    ``name`` is its registry name, which its config and cache keys use. A variant may pin its profile
    (registry meta ``profile``: the tiny test_* models are fast whatever the run asks); any override
    makes the detector's profile "custom". A detector from outside the project records its registry source
    (``source``, in its config and so in its fit key).
    """
    load_plugins()
    entry = DETECTORS.entry(name)
    cls = entry.load()
    profile = entry.meta.get("profile", profile)
    detector = cls(**{**cls.profile_params(profile), **entry.meta.get("kwargs", {}), **overrides})
    detector.name = name
    detector.profile = CUSTOM_PROFILE if overrides else profile
    detector.source = None if entry.builtin else entry.source
    return detector
