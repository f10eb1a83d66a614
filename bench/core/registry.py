"""One generic registry for detectors, perturbations and datasets.

Entries are registered either eagerly (a decorator on the object) or lazily as a
``"module:attr"`` string, so that listing names and ``bench --help`` import
nothing heavy. Duplicate names raise, unknown names answer with close matches,
and names can be listed with shell-style wildcards (``clip_*``).

Every entry remembers where it came from (``source``: this project, an installed package's entry point,
a ``--plugin`` file with its hash), so that ``bench list`` can say so and a name registered twice is an
error naming both places.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterable, Iterator, TypeVar

from bench.core.errors import BenchError

T = TypeVar("T")
#: The source of entries this project registers itself.
BUILTIN_SOURCE = "aigi-bench"


class UnknownNameError(BenchError, KeyError):
    """Raised for a name that is not registered; the message suggests close matches."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class DuplicateNameError(BenchError):
    """Raised for a name registered twice; the message names both sources. Never swallowed by plugin loading:
    which of two detectors a name means must not depend on import order."""


@dataclass
class Entry(Generic[T]):
    """A registered name: the object itself or a lazy ``"module:attr"`` target, plus metadata."""

    name: str
    target: T | str
    meta: dict[str, Any] = field(default_factory=dict)
    source: str = BUILTIN_SOURCE  # where it was registered from (see the module docstring)

    @property
    def builtin(self) -> bool:
        return self.source == BUILTIN_SOURCE

    def load(self) -> T:
        if isinstance(self.target, str):
            module_name, _, attr = self.target.partition(":")
            if not attr:
                raise BenchError(f"lazy entry {self.name!r} must look like 'module:attr', got {self.target!r}")
            obj = getattr(importlib.import_module(module_name), attr)
            self.target = obj
        return self.target  # type: ignore[return-value]


class Registry(Generic[T]):
    """A named collection of objects (classes, factories or specs) of one kind."""

    def __init__(self, kind: str, describe: Callable[[Any], dict[str, Any]] | None = None):
        """``describe(obj)``: default metadata of an object added eagerly (a detector class: from its ``info``)."""
        self.kind = kind
        self.describe = describe
        self._entries: dict[str, Entry[T]] = {}
        self._source = BUILTIN_SOURCE

    @contextmanager
    def loading_from(self, source: str) -> Iterator[None]:
        """Entries added inside the block are recorded as coming from ``source``."""
        previous, self._source = self._source, source
        try:
            yield
        finally:
            self._source = previous

    def add(self, name: str, target: T | str, **meta: Any) -> None:
        if name in self._entries:
            raise DuplicateNameError(f"{self.kind} {name!r} is registered twice: by {self._entries[name].source} and "
                                     f"by {self._source}; rename one of them (or uninstall one package)")
        defaults = self.describe(target) if self.describe and not isinstance(target, str) else {}
        self._entries[name] = Entry(name, target, {**defaults, **meta}, self._source)

    def register(self, name: str, **meta: Any) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""

        def decorate(obj: T) -> T:
            self.add(name, obj, **meta)
            return obj

        return decorate

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self._unknown_message(name)) from None

    def get(self, name: str) -> T:
        return self.entry(name).load()

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style wildcard, sorted."""
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def resolve(self, patterns: Iterable[str]) -> list[str]:
        """Expand names and wildcards into registered names, keeping order, without repeats.

        A pattern that matches nothing raises with suggestions, so a typo is never
        silently an empty selection.
        """
        out: list[str] = []
        for pattern in patterns:
            matched = self.names(pattern) if any(c in pattern for c in "*?[") else [self.entry(pattern).name]
            if not matched:
                raise UnknownNameError(self._unknown_message(pattern))
            out.extend(n for n in matched if n not in out)
        return out

    def _unknown_message(self, name: str) -> str:
        return unknown_name_message(self.kind, name, self.names())


def unknown_name_message(kind: str, name: str, known: "list[str] | tuple[str, ...]") -> str:
    """``unknown KIND 'name'; did you mean ...? (known: ...)``: the one wording for every unknown name."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown {kind} {name!r}{hint} (known: {', '.join(known) or 'none'})"
