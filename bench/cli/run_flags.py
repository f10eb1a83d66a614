"""The flags of ``bench run`` (and ``bench plan``) built from the run config's schema, and the config read back.

Every :class:`~bench.run.config.RunConfig` field is a flag: ``--field-name``, with the field's help, group,
choices and metavar (:func:`bench.run.config.setting`); its type decides the flag's form. Booleans are
switches (``--no-caption-groups`` for the one that defaults to on), lists take comma-separated values, and
the mappings take repeatable ``NAME=VALUE`` items (``--weights NAME=PATH``, ``--external NAME=SPEC``,
``--detector-param DETECTOR.KEY=VALUE``, the value read as YAML). A flag that is not given leaves the
value of ``--suite`` / ``--config`` (or the default) in place.
"""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from bench.core.errors import BenchError
from bench.run.config import GROUPS, RunConfig, config_fields

# Flags whose name is not the field's: one item per flag.
FLAG_NAMES = {"detector_params": "--detector-param", "plugins": "--plugin"}
REPEATED_LISTS = {"plugins"}  # list fields given as repeated flags (a path may hold a comma)


def flag_name(field_name: str) -> str:
    return FLAG_NAMES.get(field_name, "--" + field_name.replace("_", "-"))


def _help(f) -> str:
    text = f.metadata["help"]
    text = text() if callable(text) else text
    default = f.default if not callable(f.default_factory) else f.default_factory()
    if f.type.startswith("bool") or default in (None, {}, []) or "default:" in text:
        return text
    shown = ",".join(map(str, default)) if isinstance(default, list) else default
    return f"{text} (default: {shown})"


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per config field, in argument groups (data, grid, seeds and statistics, execution)."""
    groups = {name: parser.add_argument_group(name) for name in GROUPS}
    for f in config_fields():
        group, meta = groups[f.metadata["group"]], f.metadata
        options: dict[str, Any] = {"dest": f.name, "help": _help(f), "default": None}
        if meta.get("metavar"):
            options["metavar"] = meta["metavar"]
        if f.type.startswith("bool"):
            if f.default is True:
                options["help"] = f"turn off the default: {options['help']}"
                group.add_argument("--no-" + f.name.replace("_", "-"), action="store_false", **options)
            else:
                group.add_argument(flag_name(f.name), action="store_true", **options)
            continue
        if f.type.startswith("dict") or f.name in REPEATED_LISTS:
            options["action"] = "append"
        elif f.type.startswith("int"):
            options["type"] = int
        elif f.type.startswith("float"):
            options["type"] = float
        if meta.get("choices"):
            options["choices"] = list(meta["choices"]())
        group.add_argument(flag_name(f.name), **options)


def _pairs(items: list[str], flag: str) -> list[tuple[str, str]]:
    out = []
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise BenchError(f"{flag} {item!r}: expected KEY=VALUE")
        out.append((key.strip(), value))
    return out


def _detector_params(items: list[str]) -> dict[str, dict[str, Any]]:
    """``DETECTOR.KEY=VALUE`` items (the detector name may hold dots: the key is after the last one)."""
    params: dict[str, dict[str, Any]] = {}
    for target, text in _pairs(items, "--detector-param"):
        detector, dot, key = target.rpartition(".")
        if not dot or not detector or not key:
            raise BenchError(f"--detector-param {target}={text}: expected DETECTOR.KEY=VALUE (e.g. npr.epochs=5)")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        params.setdefault(detector, {})[key] = value
    return params


def plugin_help() -> str:
    return next(f.metadata["help"] for f in config_fields() if f.name == "plugins")


def _plugin_specs(specs) -> list:
    """Plugin specs as a list: ``plugins:`` may be one comma-separated string, as on the command line."""
    if isinstance(specs, str):
        return [spec.strip() for spec in specs.split(",") if spec.strip()]
    return list(specs or [])


def use_cli_plugins(specs) -> list[str]:
    """Load ``--plugin`` / ``plugins:`` specs (a list, or one comma-separated string) here and in child
    processes, before anything names a detector; returns them as the run config records them."""
    from bench.core.plugins import use_plugins

    return use_plugins(_plugin_specs(specs))


def config_from_args(args: argparse.Namespace, base: dict[str, Any]) -> RunConfig:
    """``base`` (a suite's or a config file's keys) with every given flag laid over it, checked. Plugins are
    loaded first: the checks name their detectors."""
    data = dict(base)
    for f in config_fields():
        value = getattr(args, f.name, None)
        if value is None:
            continue
        if f.name == "plugins":
            data["plugins"] = [*_plugin_specs(data.get("plugins")), *value]
        elif f.name == "weights":
            from bench.weights import parse_weight_overrides

            data["weights"] = {**data.get("weights", {}), **parse_weight_overrides(value)}
        elif f.name == "external":
            from bench.external.spec import parse_flag

            data["external"] = {**data.get("external", {}), **dict(map(parse_flag, value))}
        elif f.name == "detector_params":
            merged = {name: dict(kwargs) for name, kwargs in (data.get("detector_params") or {}).items()}
            for name, kwargs in _detector_params(value).items():
                merged.setdefault(name, {}).update(kwargs)
            data["detector_params"] = merged
        else:
            data[f.name] = value
    if data.get("plugins"):
        data["plugins"] = use_cli_plugins(data["plugins"])
    return RunConfig.from_dict(data)
