"""Checks on a run's ``detector_params`` (per-detector keyword overrides) before any work starts.

An override is passed straight to the detector's constructor, where a misspelt name would be a raw
TypeError and a nonsensical value (``epochs: -1``) would train nothing and still publish the detector as
"trained". So each override must name a keyword of the constructor, have the type of that keyword's default,
and, where the default is a positive count (epochs, batch size, shots, width, ...), be a positive integer.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

from bench.core.errors import BenchError
from bench.core.registries import DETECTORS, load_plugins
from bench.core.registry import unknown_name_message


def check_detector_params(detector_params: dict[str, dict[str, Any]]) -> None:
    """One BenchError naming the first unknown detector, unknown keyword or badly typed value."""
    load_plugins()
    for name, overrides in detector_params.items():
        parameters = _keywords(DETECTORS.entry(name).load())
        for key, value in overrides.items():
            if key not in parameters:
                raise BenchError(f"detector_params: {name}: " + unknown_name_message("parameter", key, list(parameters)))
            if value is None and _allows_none(parameters[key]):
                continue
            expected = _expected(parameters[key].default, value)
            if expected:
                raise BenchError(f"detector_params: {name}.{key}: expected {expected}, got {value!r}")


def _keywords(cls: type) -> dict[str, inspect.Parameter]:
    return {key: p for key, p in inspect.signature(cls.__init__).parameters.items()
            if key != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def _allows_none(parameter: inspect.Parameter) -> bool:
    """The keyword is annotated ``X | None`` (or ``Optional[X]``): null (YAML ``null``, ``~``) switches it off."""
    text = parameter.annotation if isinstance(parameter.annotation, str) else repr(parameter.annotation)
    return "None" in text or "Optional" in text


def _expected(default: Any, value: Any) -> str:
    """What ``value`` should have been, judged by the keyword's default; "" when it is acceptable."""
    if default is inspect.Parameter.empty or default is None:
        return ""
    if isinstance(default, bool):
        return "" if isinstance(value, bool) else "true or false"
    if isinstance(default, int):
        if not isinstance(value, int) or isinstance(value, bool):
            return "an integer"
        return "a positive integer" if default > 0 and value < 1 else ""
    if isinstance(default, float):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            return "a finite number"
        return "a number >= 0" if default >= 0 and value < 0 else ""
    if isinstance(default, str):
        return "" if isinstance(value, str) else "a string"
    if isinstance(default, (tuple, list)):
        return "" if isinstance(value, (tuple, list)) else "a list"
    return ""
