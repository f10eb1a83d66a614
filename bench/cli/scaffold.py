"""``bench new detector NAME [--dir DIR]``: a ready package for a detector of one's own.

It writes DIR/NAME/ with a pyproject.toml declaring the ``aigi_bench.detectors`` entry point (a
``register`` function in the package's light ``__init__``, so listing never imports the model), the
detector class with the contract's optional hooks commented, a README stub and a test that runs the
contract checker. ``pip install -e DIR/NAME`` makes ``bench list detectors`` show it; the generated
detector passes ``bench check detector NAME`` as written.
"""

from __future__ import annotations

import argparse
import keyword
import re
from pathlib import Path

from bench.core.errors import BenchError

PYPROJECT = '''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"
description = "{name}: a detector of AI-generated images for aigi-bench"
requires-python = ">=3.10"
dependencies = ["aigi-bench", "numpy"]

[project.optional-dependencies]
test = ["pytest"]

# `bench list detectors` finds the detector here; the function registers it lazily (README, "Your own detector")
[project.entry-points."aigi_bench.detectors"]
{name} = "{package}:register"

[tool.setuptools]
packages = ["{package}"]
'''

INIT = '''"""{name}: registered with aigi-bench through the entry point in pyproject.toml.

This module stays light (no model imports): `bench list detectors` imports it to read the metadata below.
"""


def register(detectors):
    detectors.add("{name}", "{package}.detector:{cls}", family="custom", trains=False, gpu="no",
                  tasks=("binary",), summary="high-frequency energy: smooth images score as generated")
'''

DETECTOR = '''"""{name}: scores a batch of RGB uint8 images, higher = more likely generated.

Replace the score with your method. The contract (README, "Your own detector") in short: predict returns one
finite score per image, in image order, the same for the same image whatever its batch or neighbours;
`bench check detector {name}` checks it.
"""

import numpy as np

from bench.core.detector import Detector, DetectorInfo, FitContext, Prediction


class {cls}(Detector):
    info = DetectorInfo(family="custom", paper="(your method)", trains=False, gpu="no", outputs_probability=True)
    separates_planted = True  # the checker's smooth "generated" images score high; False if yours need not

    def predict(self, images, ctx: FitContext) -> Prediction:
        scores = []
        for image in images:  # numpy uint8 (H, W, 3), read-only, any size from 1x1 up
            grey = image.mean(axis=2)
            detail = np.abs(np.diff(grey, axis=0)).sum() + np.abs(np.diff(grey, axis=1)).sum()
            scores.append(1.0 / (1.0 + detail / grey.size / 4.0))  # no detail = smooth = likely generated
        return Prediction(score=np.array(scores))

    # Optional hooks, each buys one thing (README, "Your own detector", the contract table):
    # - fit(self, train, val, ctx): training on the clean train/val ImageSets (set info.trains=True and
    #   declare fit_passes(n_train, n_val, n_classes), the training budget).
    # - preparation() -> Preparation, forward_batch(batch, ctx), finish(rows): streamed scoring, the CPU
    #   part in worker processes while the model scores (must equal predict).
    # - differentiable = True and differentiable_score(image01, caption): white-box attacks (pgd, fgsm).
    # - info.tasks=("binary", "attribution"), self.classes in fit, Prediction(source=...): attribution.
    # - profiles = {{"fast": {{...}}}}: CPU smoke settings; score_tolerance: batch-size tolerance.
'''

TEST = '''from bench.testing import check_detector

from {package}.detector import {cls}


def test_{package}_keeps_the_detector_contract():
    check_detector({cls}())
'''

README = '''# {name}

A detector for aigi-bench, packaged as a plugin (the `aigi_bench.detectors` entry point in pyproject.toml).

    pip install -e .
    bench list detectors {name}
    bench check detector {name}
    bench run --detectors {name}
    pytest tests
'''


def detector_package(name: str, folder: Path) -> Path:
    """Write the package of detector ``name`` into ``folder/name``; returns that folder."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or keyword.iskeyword(name):
        raise BenchError(f"detector name {name!r}: use lower-case letters, digits and '_' (a Python package name)")
    root = folder / name
    if root.exists():
        raise BenchError(f"{root} exists already; choose another --dir or name")
    cls = "".join(part.capitalize() for part in name.split("_")) or name
    values = {"name": name, "package": name, "cls": cls, "dist": name.replace("_", "-")}
    files = {root / "pyproject.toml": PYPROJECT, root / name / "__init__.py": INIT, root / name / "detector.py": DETECTOR,
             root / "tests" / f"test_{name}.py": TEST, root / "README.md": README}
    for path, template in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**values), encoding="utf-8")
    return root


def cmd_new_detector(args: argparse.Namespace) -> int:
    root = detector_package(args.name, Path(args.dir))
    print(f"wrote {root}: pyproject.toml (entry point), {args.name}/detector.py (the detector), "
          f"tests/test_{args.name}.py (the contract check)")
    print(f"next: pip install -e {root} && bench check detector {args.name}")
    return 0


def add_new_command(sub: argparse._SubParsersAction) -> None:
    new = sub.add_parser("new", help="start a detector package of your own").add_subparsers(dest="new_what",
                                                                                            metavar="WHAT")
    p = new.add_parser("detector", help="write a ready package: pyproject with the entry point, the detector class "
                                        "with the contract's hooks commented, and a test that runs the checker")
    p.add_argument("name", help="the detector's (and package's) name, e.g. my_detector")
    p.add_argument("--dir", default=".", help="where to create the package folder (default: here)")
    p.set_defaults(func=cmd_new_detector)
