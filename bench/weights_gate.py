"""Decide, before fitting, whether a detector's pretrained weights are available.

A detector whose weights cannot be resolved is skipped with a one-line reason
and the command that would fix it; random initialisation is allowed only for
``test_*`` variants or with ``--random-weights``, and is then labelled
``weights="random"`` in every result row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.config import RunConfig
from bench.weights import WeightsUnavailable, random_weights_allowed, resolve


@dataclass
class WeightsDecision:
    label: str  # pretrained | trained | none | random
    provenance: dict = field(default_factory=dict)  # component -> {source, path, sha256} or {"random": True}
    skip_reason: str = ""


def check_detector_weights(name: str, meta: dict, cfg: RunConfig) -> WeightsDecision:
    components = tuple(meta.get("weights", ()))
    if not components:
        return WeightsDecision("trained" if meta.get("trains") else "none")
    provenance: dict = {}
    missing: list[str] = []
    for component in components:
        try:
            resolved = resolve(component, overrides=cfg.weights)
        except WeightsUnavailable as exc:
            missing.append(str(exc))
            provenance[component] = {"source": None, "error": str(exc)}
            continue
        provenance[component] = {"source": resolved.source, "path": str(resolved.path), "sha256": resolved.sha256}
    if not missing:
        return WeightsDecision("pretrained", provenance)
    if random_weights_allowed(name, cfg.random_weights):
        for component in components:
            if provenance[component].get("source") is None:
                provenance[component] = {"source": "random", "random": True}
        return WeightsDecision("random", provenance)
    return WeightsDecision("", provenance, skip_reason="; ".join(missing))
