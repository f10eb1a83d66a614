"""Declaring external detectors: ``NAME=SPEC`` (``--external``) or the config's ``external`` mapping, parsed and
registered into the detector registry, so that ``--detectors NAME`` (and ``all``) selects them.

A SPEC is ``KIND:TARGET`` or ``KIND[key=value,...]:TARGET`` (KIND: ``cmd``, ``http`` or ``scores``), or in YAML
a mapping with the kind as the key of its target, ``{http: URL, concurrency: 8}``. The options are the
keywords of the detector's constructor; a value is read by the type of the keyword's default, lists are
written ``a|b|c`` in the bracket form. Each declared detector is constructed once here, so a bad option, an
unknown program or a missing file is a one-line error before any work starts.
"""

from __future__ import annotations

import importlib
import inspect
import math
import re
from typing import Any

from bench.core.errors import BenchError
from bench.core.registries import DETECTORS, load_plugins
from bench.core.registry import unknown_name_message
from bench.external.base import FAMILY, ExternalDetector

KINDS = {"cmd": "bench.external.cmd:CommandDetector", "http": "bench.external.http:HttpDetector",
         "scores": "bench.external.scores:ScoresDetector"}
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
SPEC = re.compile(r"(?P<kind>[a-z]+)(?:\[(?P<options>[^\]]*)\])?:(?P<target>.+)", re.DOTALL)
LISTS = ("classes", "files")  # options whose value is a list of names
TRUE, FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


def detector_class(kind: str) -> type[ExternalDetector]:
    module, _, attr = KINDS[kind].partition(":")
    return getattr(importlib.import_module(module), attr)


def parse_flag(text: str) -> tuple[str, str]:
    """``NAME=SPEC`` of one ``--external`` flag."""
    name, sep, spec = text.partition("=")
    if not sep or not name.strip() or not spec.strip():
        raise BenchError(f"--external {text!r}: expected NAME=SPEC, e.g. mine=cmd:python score.py {{list}} {{out}}")
    return name.strip(), spec.strip()


def parse_spec(name: str, spec: Any) -> tuple[str, dict[str, Any]]:
    """(kind, constructor keywords) of one declared detector."""
    where = f"external detector {name!r}"
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise BenchError(f"{where}: a name is letters, digits, '_', '.' and '-', starting with a letter or digit")
    if isinstance(spec, str):
        match = SPEC.fullmatch(spec.strip())
        if not match or match["kind"] not in KINDS:
            raise BenchError(f"{where}: expected KIND:TARGET or KIND[key=value,...]:TARGET with KIND one of "
                             f"{', '.join(KINDS)}, got {spec!r}")
        kind, raw = match["kind"], {"target": match["target"].strip()}
        for option in filter(None, (o.strip() for o in (match["options"] or "").split(","))):
            key, sep, value = option.partition("=")
            if not sep:
                raise BenchError(f"{where}: option {option!r} is not key=value")
            raw[key.strip()] = value.strip()
    elif isinstance(spec, dict):
        kinds = [k for k in spec if k in KINDS]
        if len(kinds) != 1:
            raise BenchError(f"{where}: a mapping needs exactly one of {', '.join(KINDS)} (the target), "
                             f"got keys {', '.join(map(str, spec)) or 'none'}")
        kind = kinds[0]
        raw = {"target": spec[kind], **{k: v for k, v in spec.items() if k != kind}}
    else:
        raise BenchError(f"{where}: expected a KIND:TARGET string or a mapping, got {type(spec).__name__}")
    parameters = constructor_defaults(detector_class(kind))
    options = {}
    for key, value in raw.items():
        if key not in parameters:
            raise BenchError(f"{where}: " + unknown_name_message(f"{kind} option", str(key),
                                                                 [k for k in parameters if k != "target"]))
        options[key] = coerce(f"{where}: {key}", value, parameters[key], listed=key in LISTS)
    return kind, options


def constructor_defaults(cls: type) -> dict[str, Any]:
    """Keyword -> default of the detector's constructor and its bases' (None where there is none)."""
    out: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if "__init__" in vars(klass) and issubclass(klass, ExternalDetector):
            for key, p in inspect.signature(klass.__init__).parameters.items():
                if key != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                    out[key] = None if p.default is inspect.Parameter.empty else p.default
    return out


def coerce(where: str, value: Any, default: Any, listed: bool = False) -> Any:
    """``value`` (text from a flag, or a YAML value) as the type of ``default``; a ``listed`` option from a list
    or ``a|b|c``."""
    text = value.strip() if isinstance(value, str) else None
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if text is not None and text.lower() in TRUE + FALSE:
            return text.lower() in TRUE
        raise BenchError(f"{where}: expected true or false, got {value!r}")
    if isinstance(default, (int, float)):
        kind = int if isinstance(default, int) else float
        try:
            number = kind(text) if text is not None else value
        except ValueError:
            number = None
        if (isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number)
                or (kind is int and not isinstance(number, int))):
            raise BenchError(f"{where}: expected {'an integer' if kind is int else 'a number'}, got {value!r}")
        return kind(number)
    if listed:
        names = [v.strip() for v in text.split("|")] if text is not None else value
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
            raise BenchError(f"{where}: expected a list of names (or a|b|c), got {value!r}")
        return [n.strip() for n in names]
    if text is None or not text:
        raise BenchError(f"{where}: expected a non-empty string, got {value!r}")
    return text


def register_external(external: dict[str, Any]) -> list[str]:
    """Register every declared detector (after the plugins, so a clash with a built-in name is caught) and
    return their names. Declaring a name again (another run in the same process) replaces its declaration;
    a name that a detector of the code already has is an error."""
    load_plugins()
    names = []
    for name, spec in external.items():
        kind, options = parse_spec(name, spec)
        try:
            detector = detector_class(kind)(**options)  # checks the options, the program, the file now
        except BenchError as exc:
            raise BenchError(f"external detector {name!r}: {exc}") from None
        meta = {"family": FAMILY, "source": kind, "summary": f"{kind}: {detector.describe()}", "trains": False,
                "weights": (), "gpu": "no", "tasks": detector.info.tasks, "kwargs": options}
        if name in DETECTORS:
            entry = DETECTORS.entry(name)
            if entry.meta.get("family") != FAMILY:
                raise BenchError(f"external detector {name!r}: a detector of the code has that name; choose another")
            entry.target, entry.meta = KINDS[kind], meta
        else:
            DETECTORS.add(name, KINDS[kind], **meta)
        names.append(name)
    return names
