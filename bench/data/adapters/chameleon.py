"""Chameleon (Yan et al., "A Sanity Check for AI-generated Image Detection", ICLR 2025): AI-generated
images that fooled human annotators, and real photographs, in ``test/{0_real,1_fake}``. Test-only; the
generators are not labelled, so every fake is ``chameleon``."""

from __future__ import annotations

from pathlib import Path

from bench.data.adapters.layout import locate, nonempty, real_fake_rows, require
from bench.data.manifest import Row


def rows(root: Path) -> list[Row]:
    root = locate(root, "test", ("Chameleon",))
    folder = require("chameleon", root, "test", "test/ with 0_real/ and 1_fake/")
    return nonempty("chameleon", root, real_fake_rows("chameleon", root, folder, "chameleon"))
