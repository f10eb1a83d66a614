"""ForenSynths (Wang et al., CVPR 2020, the CNNDetection data) and the test sets that reuse its layout.

Layouts, as CNNDetection's training and evaluation code read them:

- training set: ``train/<class>/{0_real,1_fake}`` and ``val/<class>/{0_real,1_fake}`` for the 20
  LSUN object classes, all fakes from ProGAN; UnivFD's code reads the same images under
  ``train/progan/<class>/...``, so both are accepted;
- test set (``CNN_synth_testset.zip``): ``<generator>/{0_real,1_fake}`` for 13 generators, where
  ProGAN, StyleGAN, StyleGAN2 and CycleGAN keep one more level of per-class folders;
- AIGCDetectBenchmark's test set (PatchCraft, Zhong et al. 2023) has the same per-generator layout
  with diffusion generators added; it is read without a fixed generator list.
"""

from __future__ import annotations

from pathlib import Path

from bench.core.errors import BenchError
from bench.data.adapters.layout import child, locate, missing, nonempty, real_fake_rows
from bench.data.manifest import Row

PROGAN_CLASSES = ("airplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
                  "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
                  "train", "tvmonitor")
TEST_GENERATORS = ("progan", "stylegan", "stylegan2", "biggan", "cyclegan", "stargan", "gaugan", "crn", "imle",
                   "seeingdark", "san", "deepfake", "whichfaceisreal")


def train_rows(root: Path) -> list[Row]:
    """ProGAN training and validation images: official splits train and val (no test split: use it
    with ``--train-on`` and evaluate on ``forensynths-test``)."""
    root = locate(root, "train", ("dataset",))
    rows: list[Row] = []
    for split in ("train", "val"):
        folder = child(root, split)
        if folder is None:
            raise missing("forensynths-train", root, split, "CNNDetection's dataset/ folder with train/ and val/, "
                                                          "each holding the 20 ProGAN classes")
        folder = child(folder, "progan") or folder
        for cls in PROGAN_CLASSES:
            class_dir = child(folder, cls)
            if class_dir is None or not (child(class_dir, "0_real") and child(class_dir, "1_fake")):
                rel = class_dir.relative_to(root) if class_dir else folder.relative_to(root) / cls
                raise missing("forensynths-train", root, f"{rel.as_posix()}/0_real|1_fake",
                              f"20 class folders ({', '.join(PROGAN_CLASSES)}) each with 0_real/ and 1_fake/")
            rows.extend(real_fake_rows("forensynths-train", root, class_dir, "progan", split))
    return nonempty("forensynths-train", root, rows)


def _per_generator_rows(dataset: str, root: Path, generators: tuple[str, ...] | None) -> list[Row]:
    if generators is None:
        folders = [d for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    else:
        absent = [g for g in generators if child(root, g) is None]
        if absent:
            raise missing(dataset, root, absent[0], f"one folder per generator ({', '.join(generators)}); "
                                                    f"missing: {', '.join(absent)}")
        folders = [child(root, g) for g in generators]
    rows = [row for d in folders for row in real_fake_rows(dataset, root, d, d.name.lower())]
    return nonempty(dataset, root, rows)


def test_rows(root: Path) -> list[Row]:
    """The 13-generator test set: no official train split (a seeded split when used alone; every image
    when evaluated after ``--train-on``)."""
    return _per_generator_rows("forensynths-test", locate(root, "progan", ("test", "CNN_synth_testset")),
                               TEST_GENERATORS)


def aigcdetect_test_rows(root: Path) -> list[Row]:
    """AIGCDetectBenchmark's test set: every ``<generator>/`` folder with the CNNDet layout."""
    root = locate(root, "progan", ("test", "AIGCDetect_testset"))
    if not root.is_dir():
        raise BenchError(f"aigcdetect-test: {root} is not a folder")
    return _per_generator_rows("aigcdetect-test", root, None)
