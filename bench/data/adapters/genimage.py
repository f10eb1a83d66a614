"""GenImage (Zhu et al., NeurIPS 2023 Datasets and Benchmarks).

Each generator ships as one archive that unpacks to ``imagenet_<...>/{train,val}/{ai,nature}``
(archive names as in GenImage's checksums), either directly under the dataset folder or inside the
top-level folders of the release (``Stable Diffusion V1.4/imagenet_ai_0419_sdv4/...``).

Official protocol: train on one generator's ``train``, test on every generator's ``val``. GenImage
has no separate validation split, so ``val`` becomes our test split and the validation split is a
seeded, stratified fifth of ``train`` (:func:`bench.data.split.assign_splits`).

Each generator's folder has its own ImageNet reals, so reals carry their generator as ``subset`` and
``--train-generators sdv14`` trains on SD v1.4's reals only, as the protocol does.

Generators are downloaded one archive at a time (tens of GB each), so a copy holding only some of
them is accepted with a warning naming the absent ones; a generator folder that is there must be
complete.
"""

from __future__ import annotations

import logging
from pathlib import Path

from bench.core.errors import BenchError
from bench.data.adapters.layout import child, descend, image_rows, missing
from bench.data.manifest import Row

log = logging.getLogger(__name__)

ARCHIVES = {"sdv14": "imagenet_ai_0419_sdv4", "sdv15": "imagenet_ai_0424_sdv5", "midjourney": "imagenet_midjourney",
            "wukong": "imagenet_ai_0424_wukong", "adm": "imagenet_ai_0508_adm", "glide": "imagenet_glide",
            "vqdm": "imagenet_ai_0419_vqdm", "biggan": "imagenet_ai_0419_biggan"}
SPLITS = {"train": "train", "val": "test"}


def _find_archive(root: Path, archive: str) -> Path | None:
    found = child(root, archive)
    if found is not None:
        return found
    for top in sorted(p for p in root.iterdir() if p.is_dir()):
        found = child(top, archive)
        if found is not None:
            return found
    return None


def rows(root: Path) -> list[Row]:
    found = {gen: _find_archive(root, archive) for gen, archive in ARCHIVES.items()}
    if not any(found.values()):
        raise missing("genimage", root, f"{ARCHIVES['sdv14']}/train/ai",
                      f"the GenImage archives unpacked under it ({', '.join(ARCHIVES.values())}), each with "
                      "train/ and val/ holding ai/ and nature/")
    absent = [gen for gen, folder in found.items() if folder is None]
    if absent:
        log.warning("genimage: %s has no folder for %s (%s); using the other generators", root, ", ".join(absent),
                    ", ".join(ARCHIVES[g] for g in absent))
    out: list[Row] = []
    for gen, folder in found.items():
        if folder is None:
            continue
        for split_dir, split in SPLITS.items():
            for kind, label in (("ai", 1), ("nature", 0)):
                sub = descend(folder, split_dir, kind)
                if sub is None:
                    raise missing("genimage", root, f"{folder.relative_to(root).as_posix()}/{split_dir}/{kind}",
                                  "train/ and val/, each with ai/ and nature/")
                out += image_rows(root, sub, label, gen, split, subset=gen)
    if not out:
        raise BenchError(f"genimage: no images found under {root}")
    return out
