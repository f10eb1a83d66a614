"""Synthbuster (Bammey, IEEE OJSP 2023): 1000 images from each of 9 diffusion models, generated from
descriptions of the 1000 RAISE-1k photographs.

The release (Zenodo) unpacks to ``synthbuster/<generator>/<RAISE id>.png``; the RAISE-1k photographs
are not in it and are downloaded separately (converted to PNG, as in B-Free's ``real_RAISE_1k.zip``)
into a folder next to the generator folders (or one level up). Files are named by their RAISE id, so a photograph and its 9 generated
counterparts share a group: they always land in the same split and are resampled together.
Test-only: no official train split.
"""

from __future__ import annotations

from pathlib import Path

from bench.data.adapters.layout import child, image_rows, locate, missing, nonempty
from bench.data.manifest import Row

GENERATORS = ("dalle2", "dalle3", "firefly", "glide", "midjourney-v5", "stable-diffusion-1-3",
              "stable-diffusion-1-4", "stable-diffusion-2", "stable-diffusion-xl")
REAL_FOLDERS = ("real_RAISE_1k", "RAISE", "raise_1k", "RAISE-1k", "real")


def _raise_id(path: Path) -> str:
    return path.stem.lower()


def rows(base: Path) -> list[Row]:
    root = locate(base, "dalle3", ("synthbuster",))
    out: list[Row] = []
    for gen in GENERATORS:
        folder = child(root, gen)
        if folder is None:
            raise missing("synthbuster", root, gen, f"one folder per generator: {', '.join(GENERATORS)}")
        out += image_rows(root, folder, 1, gen, group_of=_raise_id)
    real = next((f for f in (child(folder, name) for name in REAL_FOLDERS for folder in (root, base)) if f), None)
    if real is None:
        raise missing("synthbuster", base, REAL_FOLDERS[0],
                      f"the RAISE-1k photographs in one of {', '.join(REAL_FOLDERS)} (next to the generator "
                      "folders or one level up)")
    return nonempty("synthbuster", root, image_rows(real.parent, real, 0, "real", group_of=_raise_id) + out)
