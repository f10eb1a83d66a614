"""WildRF (Cavia et al., "Real-Time Deepfake Detection in the Real-World", 2024): real and generated
images collected from social platforms. Official splits: ``train/`` and ``val/`` with
``{0_real,1_fake}``; ``test/`` with one folder per platform (reddit, twitter, facebook), each with
``{0_real,1_fake}``. The generators are not labelled: test fakes take their platform's name, so
``--test-generators twitter`` evaluates one platform; train/val fakes are ``wildrf``."""

from __future__ import annotations

from pathlib import Path

from bench.data.adapters.layout import child, locate, missing, real_fake_rows, require
from bench.data.manifest import Row

PLATFORMS = ("reddit", "twitter", "facebook")
EXPECTED = "train/ and val/ with 0_real/ and 1_fake/, test/ with reddit/, twitter/ and facebook/ (each with both)"


def rows(root: Path) -> list[Row]:
    root = locate(root, "test", ("WildRF",))
    out: list[Row] = []
    for split in ("train", "val"):
        out += real_fake_rows("wildrf", root, require("wildrf", root, split, EXPECTED), "wildrf", split)
    test = require("wildrf", root, "test", EXPECTED)
    for platform in PLATFORMS:
        folder = child(test, platform)
        if folder is None:
            raise missing("wildrf", root, f"test/{platform}", EXPECTED)
        out += real_fake_rows("wildrf", root, folder, platform, "test")
    return out
