"""Detectors, perturbations and datasets from outside this repository: installed packages and ``--plugin`` files.

Two routes, both ending in the same registries as the project's own entries (README, "Your own detector"):

- **Entry points.** An installed distribution declares ``[project.entry-points."aigi_bench.detectors"]``
  (or ``.perturbations``, ``.datasets``). Each value is a ``"module:attr"`` target: a function
  ``register(registry)`` that adds entries the way detectors/__init__.py does (lazy ``"module:Class"``
  strings with metadata, so listing imports only that light module), or an object registered under the
  entry point's name (a Detector subclass: its metadata comes from its ``info``, which imports its module).
- **Plugin files and modules** (``--plugin PATH_OR_MODULE``, ``plugins:`` in a run config): a file is
  imported as ``bench.core.plugin_files.<stem>`` (see that package for why the name is stable), a module
  by its name; either registers its entries when imported (``DETECTORS.add`` or ``@DETECTORS.register``).
  The list travels to child processes in ``$AIGI_BENCH_PLUGINS``.

Every entry records its source ("entry point: pkg 1.2.0", "plugin: /path/f.py sha256:..."); a plugin
detector's config carries it, so its fit key and run.json change with the file or the package version.
A plugin that fails to import is one line on stderr and the rest still load;
a name registered twice is a :class:`~bench.core.registry.DuplicateNameError` naming both sources.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from contextlib import ExitStack
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable, Iterable

from bench.core.errors import BenchError
from bench.core.hashing import sha256_file
from bench.core.registry import DuplicateNameError, Registry

PLUGINS_ENV = "AIGI_BENCH_PLUGINS"
ENTRY_POINT_PREFIX = "aigi_bench."
FILE_PACKAGE = "bench.core.plugin_files"
_files: dict[str, Path] = {}  # module stem -> the plugin file imported under it


def is_file_spec(spec: str) -> bool:
    return spec.endswith(".py") or "/" in spec or os.sep in spec


def plugin_specs() -> list[str]:
    """The plugins of this process and its children, in the order given."""
    return [s for s in os.environ.get(PLUGINS_ENV, "").split(os.pathsep) if s]


def use_plugins(specs: Iterable[Any]) -> list[str]:
    """Add ``--plugin`` specs (files made absolute) to ``$AIGI_BENCH_PLUGINS`` so that load_plugins, here and
    in every child process, imports them; returns them normalised (what a run config records)."""
    out = []
    for spec in specs:
        if not isinstance(spec, str) or not spec.strip():
            raise BenchError(f"plugins: expected a file path or module name, got {spec!r}")
        spec = spec.strip()
        out.append(str(Path(spec).expanduser().resolve()) if is_file_spec(spec) else spec)
    current = plugin_specs()
    added = [s for s in dict.fromkeys(out) if s not in current]
    if added:
        os.environ[PLUGINS_ENV] = os.pathsep.join(current + added)
    return out


def _guarded(what: str, load: Callable[[], None]) -> None:
    """``load()``; an import failure becomes one line naming ``what`` and the exception, and loading goes on."""
    try:
        load()
    except DuplicateNameError:
        raise
    except Exception as exc:
        _report(what, exc)


def _report(what: str, exc: Exception) -> None:
    first = (str(exc).strip().splitlines() or [""])[0]
    print(f"error: {what} failed to import: {type(exc).__name__}: {first}", file=sys.stderr)


def _all_from(registries: Iterable[Registry], source: str) -> ExitStack:
    stack = ExitStack()
    for registry in registries:
        stack.enter_context(registry.loading_from(source))
    return stack


def load_entry_points(groups: dict[str, Registry]) -> None:
    """Register what installed distributions declare under ``aigi_bench.<group>`` for each registry's group."""
    for group, registry in groups.items():
        for ep in entry_points(group=ENTRY_POINT_PREFIX + group):
            dist = getattr(ep, "dist", None)
            source = f"entry point: {dist.name} {dist.version}" if dist else f"entry point: {ep.value}"

            def register(ep=ep, registry=registry) -> None:
                obj = ep.load()
                if inspect.isfunction(obj):
                    obj(registry)
                else:
                    registry.add(ep.name, obj)

            with registry.loading_from(source):
                _guarded(f"entry point {ep.name} = {ep.value} ({source})", register)


def load_plugin(spec: str, registries: Iterable[Registry]) -> None:
    """Import one ``--plugin`` file or module with its entries recorded under its source."""
    if is_file_spec(spec):
        _load_file(Path(spec), list(registries))
        return
    try:
        found = importlib.util.find_spec(spec)
    except Exception:  # a parent package that does not import: the import below says why
        found = None
    origin = found.origin if found and found.origin and os.path.isfile(found.origin) else None
    source = f"plugin: module {spec}" + (f" sha256:{sha256_file(origin)[:16]}" if origin else "")
    with _all_from(registries, source):
        _guarded(f"plugin module {spec}", lambda: importlib.import_module(spec))


def _load_file(path: Path, registries: list[Registry]) -> None:
    stem = path.stem
    if stem in _files and _files[stem] != path:
        raise BenchError(f"plugins {_files[stem]} and {path} have the same file name; rename one")
    module = f"{FILE_PACKAGE}.{stem}"
    if not path.is_file():
        _report(f"plugin {path}", FileNotFoundError("no such file"))
        return
    _files[stem] = path
    if module in sys.modules:  # already imported here, e.g. by unpickling one of its detectors
        return
    package = importlib.import_module(FILE_PACKAGE)
    if str(path.parent) not in package.__path__:
        package.__path__.insert(0, str(path.parent))

    with _all_from(registries, f"plugin: {path} sha256:{sha256_file(str(path))[:16]}"):
        _guarded(f"plugin {path}", lambda: importlib.import_module(module))
