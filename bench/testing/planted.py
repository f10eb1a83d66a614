"""The images the contract checker feeds a detector, as PNG files read back through the harness's ImageSet.

The planted set is trivially separable: "generated" images are smooth (a few random colours, upsampled
bicubically: no high frequencies; the crude generator artefact the project's tests also use) and bright,
"real" ones are darker pictures of the same kind with strong pixel noise. Two signals, so that even a tiny
randomly initialised network with a token training budget (the test_* variants) learns the direction. The odd images (1x1, 17x33, 4000x3000, portrait,
landscape, grayscale, alpha) exercise sizes and modes that real datasets contain; they are decoded by the
same code as a run's images, so a detector sees exactly what ``bench run`` would hand it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from bench.core.hashing import sha256_file
from bench.data.dataset import Item
from bench.data.imageset import ImageSet

SIZE = 48
GENERATOR = "planted"  # the generator name of the planted generated images ("real" for the others)
#: (train, val, test) images of each kind: the test part spans more than one batch of 32.
COUNTS = (12, 8, 20)
#: Name -> (width, height, PIL mode) of the odd images; every one is its own one-image set.
ODD_IMAGES = {"1x1": (1, 1, "RGB"), "17x33": (17, 33, "RGB"), "4000x3000": (4000, 3000, "RGB"),
              "portrait 48x96": (48, 96, "RGB"), "landscape 96x48": (96, 48, "RGB"),
              "grayscale": (40, 40, "L"), "alpha": (40, 40, "RGBA")}


def planted_image(rng: np.random.Generator, generated: bool, width: int = SIZE, height: int = SIZE) -> np.ndarray:
    """A smooth picture (generated) or the same kind of picture with pixel noise (real), RGB uint8."""
    low = 130 if generated else 15  # and brighter: a signal that even random features carry
    coarse = rng.uniform(low, low + 110, (6, 6, 3)).astype(np.uint8)
    img = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC), dtype=np.float64)
    if not generated:
        img = img + rng.normal(0, 30, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def _item(path: Path, label: int, split: str) -> Item:
    with Image.open(path) as image:
        (w, h), mode = image.size, image.mode
    return Item(id=path.name, path=str(path), label=label, generator=GENERATOR if label else "real", split=split,
                sha256=sha256_file(str(path)), width=w, height=h, format="PNG", mode=mode)


def planted_sets(folder: Path, seed: int = 0) -> dict[str, ImageSet]:
    """"train", "val" and "test" ImageSets of the planted set (real and generated alternate), written under
    ``folder``."""
    rng = np.random.default_rng(seed)
    sets = {}
    for split, count in zip(("train", "val", "test"), COUNTS):
        items = []
        for k in range(2 * count):
            path = folder / split / f"{k:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(planted_image(rng, generated=k % 2 == 1)).save(path)
            items.append(_item(path, k % 2, split))
        sets[split] = ImageSet(items)
    return sets


def odd_image_set(folder: Path, name: str, seed: int = 0) -> ImageSet:
    """The one-image set of ``ODD_IMAGES[name]``, readable down to 1 pixel (``min_side=1``)."""
    width, height, mode = ODD_IMAGES[name]
    if width * height > 1_000_000:  # a smooth gradient: fast to write and read at 12 megapixels
        y, x = np.mgrid[0:height, 0:width]
        rgb = np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)], -1).astype(np.uint8)
    else:
        rgb = planted_image(np.random.default_rng(seed), generated=False, width=width, height=height)
    image = Image.fromarray(rgb)
    if mode == "L":
        image = image.convert("L")
    elif mode == "RGBA":
        image.putalpha(Image.fromarray(np.linspace(0, 255, width * height).reshape(height, width).astype(np.uint8)))
    path = folder / "odd" / f"{name.replace(' ', '_')}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return ImageSet([_item(path, 0, "test")], min_side=1)
