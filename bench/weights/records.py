"""What resolving a pretrained component yields: a :class:`ResolvedWeights`, or a one-line
:class:`WeightsUnavailable` (or :class:`ChecksumMismatch`) that names the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.core.errors import BenchError


# --------------------------------------------------------------------------- errors and results


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


class WeightsUnavailable(BenchError):
    """A component cannot be resolved. ``str(err)`` is one line: the reason and the exact fix."""

    def __init__(self, name: str, reason: str, fix: str):
        self.name = name
        self.reason = _one_line(reason)
        self.fix = _one_line(fix)
        super().__init__(f"weights {name!r} unavailable: {self.reason}; fix: {self.fix}")


class ChecksumMismatch(WeightsUnavailable):
    """The bytes found do not hash to what the catalog (or the store's pin) expects."""

    def __init__(self, name: str, where: str, expected: str, actual: str, fix: str):
        self.where = where
        self.expected = expected
        self.actual = actual
        super().__init__(name, f"checksum mismatch for {where}: expected sha256 {expected}, got {actual}", fix)


@dataclass(frozen=True)
class ResolvedWeights:
    """A component found on disk: where, how it got there, and what it hashes to."""

    name: str
    path: Path  # a file, or a folder for folder components (diffusers models)
    source: str  # one of SOURCES
    sha256: str  # of the file, or the folder hash of sha256_path
    verification: str = "unverified"  # "catalog" (matches the catalog's hash), "hub" (the hub's LFS sha256),
    # "pinned" (matches the hash recorded when the store entry was made), "unverified" (no known hash)
    origin: str = ""  # URL / hub file / imported path it originally came from, when known

    def to_record(self) -> dict[str, Any]:
        """The run.json entry for this component."""
        return {"component": self.name, "source": self.source, "path": str(self.path), "sha256": self.sha256,
                "verification": self.verification, "origin": self.origin}
