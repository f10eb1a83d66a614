"""Decide, before fitting, whether a detector's pretrained weights are available.

A detector whose weights cannot be resolved is skipped with a one-line reason
and the command that would fix it; random initialisation is allowed only for
``test_*`` variants or with ``--random-weights``, and is then labelled
``weights="random"`` in every result row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from bench.weights.manage import random_weights_allowed
from bench.weights.records import WeightsUnavailable
from bench.weights.resolver import resolve


@dataclass
class WeightsDecision:
    label: str  # pretrained | trained | none | random
    provenance: dict = field(default_factory=dict)  # component -> {source, path, sha256} or {"random": True}
    skip_reason: str = ""


def check_detector_weights(name: str, meta: dict, overrides: Mapping[str, str] | None = None,
                           random_weights: bool = False) -> WeightsDecision:
    """``overrides`` and ``random_weights`` are the run config's ``weights`` and ``random_weights``."""
    components = tuple(meta.get("weights", ()))
    if not components:
        return WeightsDecision("trained" if meta.get("trains") else "none")
    provenance: dict = {}
    missing: list[WeightsUnavailable] = []
    for component in components:
        try:
            provenance[component] = resolve(component, overrides=overrides).to_record()
        except WeightsUnavailable as exc:
            missing.append(exc)
            provenance[component] = {"component": component, "source": None, "error": str(exc)}
    if not missing:
        return WeightsDecision("pretrained", provenance)
    if random_weights_allowed(name, random_weights):
        for exc in missing:
            provenance[exc.name] = {"component": exc.name, "source": "random", "random": True}
        return WeightsDecision("random", provenance)
    return WeightsDecision("", provenance, skip_reason=missing_weights_reason(missing))


def missing_weights_reason(missing: list[WeightsUnavailable]) -> str:
    """One line: which components are missing, why (the first reason), and the command that fixes it."""
    names = [exc.name for exc in missing]
    fix = missing[0].fix if len(missing) == 1 else (
        f"bench weights fetch {' '.join(names)} (or bench weights import NAME PATH for each)")
    return f"missing weights {', '.join(names)}: {missing[0].reason}; fix: {fix}"
