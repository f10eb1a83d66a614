"""False and true near-duplicate leaks on real images, before and after the detail check (not a test; prints
numbers, asserts nothing).

    python benchmarks/leak_false_positives.py                 # ../shared/data/wild-dev (880 images)
    python benchmarks/leak_false_positives.py --data DIR      # any folder of images

The leak check (bench.data.leaks) first takes every pair whose 64-bit difference hashes are within
NEAR_DUP_BITS bits, then (since the detail check) keeps a pair only when bench.data.likeness confirms it.
Prints, before ("hash alone") and after ("hash + detail"):

- the false-positive rate: distinct images of the folder against each other (every pair), and, as hard
  negatives, the pairs of distinct images whose hashes are within HARD_BITS bits (the same coarse layout);
- the true-positive rate: each image against its own JPEG-q75, resize-0.75 and blur-1 versions.

The folder is read where it is, never copied. Skipped, with a message, when it is absent.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from bench.data.dataset import _dhash
from bench.data.images import decode_image
from bench.data.likeness import same_picture, thumbnail
from bench.data.split import NEAR_DUP_BITS, near_duplicate_pairs

ROOT = Path(__file__).resolve().parents[1]
WILD_DEV = ROOT.parent / "shared" / "data" / "wild-dev"
HARD_BITS = 12
SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


def jpeg75(img: Image.Image) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=75)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def resize075(img: Image.Image) -> Image.Image:
    return img.resize((max(1, round(img.width * 0.75)), max(1, round(img.height * 0.75))), Image.Resampling.BICUBIC)


def blur1(img: Image.Image) -> Image.Image:
    return img.filter(ImageFilter.GaussianBlur(1))


VERSIONS = {"jpeg-q75": jpeg75, "resize-0.75": resize075, "blur-1": blur1}


def rate(hits: int, total: int) -> str:
    return f"{hits}/{total} = {hits / total:.4%}" if total else "0/0"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=WILD_DEV, help=f"folder of images (default: {WILD_DEV})")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"skipped: {args.data} is absent (the benchmark reads it in place; it is never copied)")
        return 0
    files = sorted(p for p in args.data.rglob("*") if p.suffix.lower() in SUFFIXES)
    pixels = [decode_image(str(p)) for p in files]
    hashes = np.array([_dhash(a) for a in pixels], dtype=np.uint64)
    thumbs = [thumbnail(a) for a in pixels]
    n = len(files)
    print(f"{args.data}: {n} images, {n * (n - 1) // 2} distinct pairs; near-duplicate rule: difference hashes "
          f"within {NEAR_DUP_BITS} bits")

    started = time.perf_counter()
    for bits, label in ((NEAR_DUP_BITS, "false positives"), (HARD_BITS, f"hard negatives (within {HARD_BITS} bits)")):
        pairs = near_duplicate_pairs(hashes, bits).tolist()
        confirmed = sum(same_picture(thumbs[i], thumbs[j]) for i, j in pairs)
        if bits == NEAR_DUP_BITS:
            total = n * (n - 1) // 2
            print(f"{label}: hash alone {rate(len(pairs), total)}; hash + detail {rate(confirmed, total)}")
        else:
            print(f"{label}: {len(pairs)} pairs of distinct images; confirmed as the same picture "
                  f"{rate(confirmed, len(pairs))}")
    for name, version in VERSIONS.items():
        flagged = confirmed = 0
        for a, h, t in zip(pixels, hashes, thumbs):
            b = np.asarray(version(Image.fromarray(a)))
            if (int(h) ^ _dhash(b)).bit_count() <= NEAR_DUP_BITS:
                flagged += 1
                confirmed += same_picture(t, thumbnail(b))
        print(f"true positives, {name}: hash alone {rate(flagged, n)}; hash + detail {rate(confirmed, n)}")
    print(f"({time.perf_counter() - started:.1f} s after decoding)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
