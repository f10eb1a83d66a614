"""``--normalize``: rewrite every image of a dataset alike, so that no class keeps a format, size or
metadata shortcut the other lacks (README, "Format-matched evaluation").

A spec is a comma-separated chain of operations, applied in order to the decoded RGB pixels:

- ``png``: no change to the pixels; the image is stored losslessly as PNG without any metadata;
- ``jpeg:Q``: encode once as JPEG at quality Q (4:2:0, baseline, no metadata) and decode again;
- ``size:N``: resize (Lanczos) so that the short side is N, then centre crop N x N;
- ``crop:N``: centre crop N x N without resizing (an image with a side below N becomes a recorded skip).

Whatever the chain, the stored file carries no metadata: it is the JPEG itself when the chain ends
with ``jpeg:Q``, otherwise a PNG of the resulting pixels. Normalised files live in the cache
(namespace ``normalized``), keyed by the source image's content hash, the canonical spec, this
module's version and Pillow's; the items that point to them carry the hash of the *new* bytes, so
every cache key derived from image hashes (fits, features, cell scores) changes with the spec.
Splits, groups and near-duplicate hashes are those of the source images, so a normalised run
trains and tests on the same images as the plain one. Everything is Pillow with fixed settings:
the same spec gives the same bytes wherever the same Pillow build runs.
"""

from __future__ import annotations

import dataclasses
import io
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import PIL
from PIL import Image
from tqdm.auto import tqdm

from bench.core import atomic
from bench.core.cache import Cache
from bench.core.errors import BenchError, ImageSkip
from bench.core.hashing import sha256_bytes, stable_hash
from bench.data.dataset import Dataset, Item
from bench.data.images import decode_bytes, read_image_file
from bench.data.manifest import Skip

log = logging.getLogger(__name__)

NORMALIZE_VERSION = 1
NAMESPACE = "normalized"
OPS = ("png", "jpeg", "size", "crop")
JPEG_SUBSAMPLING = 2  # Pillow's code for 4:2:0, libjpeg's default
PNG_COMPRESS_LEVEL = 6
MIN_SIDE, MAX_SIDE = 16, 16384
SPEC_HELP = "png, jpeg:Q (Q 1..100), size:N or crop:N (N 16..16384), comma-separated in order"


@dataclass(frozen=True)
class Op:
    name: str
    value: int | None = None

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


def parse_normalize_spec(spec: str) -> tuple[Op, ...]:
    """The operations of ``spec``, or a one-line BenchError naming the bad part."""
    if not isinstance(spec, str) or not spec.strip():
        raise BenchError(f"--normalize: empty spec; use {SPEC_HELP}")
    ops = []
    for part in (p.strip().lower() for p in spec.split(",")):
        name, _, arg = part.partition(":")
        if name not in OPS:
            raise BenchError(f"--normalize: unknown operation {part!r}; use {SPEC_HELP}")
        if name == "png":
            if arg:
                raise BenchError(f"--normalize: png takes no value, got {part!r}")
            ops.append(Op("png"))
            continue
        low, high = (1, 100) if name == "jpeg" else (MIN_SIDE, MAX_SIDE)
        what = "quality" if name == "jpeg" else "side in pixels"
        if not arg.isdigit() or not low <= int(arg) <= high:
            raise BenchError(f"--normalize: {name} needs a {what} from {low} to {high} ({name}:N), got {part!r}")
        ops.append(Op(name, int(arg)))
    return tuple(ops)


def canonical_spec(spec: str) -> str:
    """The spec in one spelling (lower case, no spaces): what is recorded and keyed on."""
    return ",".join(str(op) for op in parse_normalize_spec(spec))


def _centre_crop(img: Image.Image, side: int) -> Image.Image:
    w, h = img.size
    left, top = (w - side) // 2, (h - side) // 2
    return img.crop((left, top, left + side, top + side))


def _resize_short_side(img: Image.Image, side: int) -> Image.Image:
    w, h = img.size
    scale = side / min(w, h)
    size = (side, max(side, round(h * scale))) if w <= h else (max(side, round(w * scale)), side)
    return img.resize(size, Image.Resampling.LANCZOS)


def _jpeg_bytes(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, subsampling=JPEG_SUBSAMPLING, optimize=False, progressive=False)
    return buf.getvalue()


def normalize_image(data: bytes, ops: tuple[Op, ...]) -> tuple[bytes, str]:
    """The normalised file (bytes, 'png' or 'jpg') of the image file ``data``; ImageSkip when impossible."""
    img = Image.fromarray(decode_bytes(data))
    encoded: bytes | None = None  # the JPEG of the last op, while no later op changed the pixels
    for op in ops:
        encoded = None
        if op.name == "jpeg":
            encoded = _jpeg_bytes(img, op.value)
            with Image.open(io.BytesIO(encoded)) as decoded:
                img = decoded.convert("RGB")
        elif op.name == "size":
            img = _centre_crop(_resize_short_side(img, op.value), op.value)
        elif op.name == "crop":
            if min(img.size) < op.value:
                raise ImageSkip(f"{img.size[0]}x{img.size[1]} is smaller than --normalize crop:{op.value}")
            img = _centre_crop(img, op.value)
    if encoded is not None:
        return encoded, "jpg"
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue(), "png"


def _holds(path: Path, sha256: str) -> bool:
    """Whether the cached normalised image at ``path`` is still the one its (authenticated) record hashed: the
    image file is content-addressed by that record, so an altered or planted file is rewritten, never scored."""
    if not path.is_file():
        return False
    if sha256_bytes(path.read_bytes()) == sha256:
        return True
    log.warning("cached normalised image %s does not match its record's sha256; rewriting it", path)
    return False


def _normalize_item(item: Item, spec: str, ops: tuple[Op, ...], cache: Cache) -> Item | Skip:
    key = stable_hash([NORMALIZE_VERSION, spec, item.sha256, PIL.__version__])
    record = cache.load_json(NAMESPACE, key)
    if record is not None and "skip" not in record and not _holds(cache.path(NAMESPACE, key, record["ext"]),
                                                                  record["sha256"]):
        record = None  # the image file was removed or altered: rewrite it
    if record is None:
        try:
            source = read_image_file(item.path)
        except ImageSkip as exc:  # the file changed since loading: skipped now, not cached
            return Skip(item.id, f"--normalize {spec}: {exc}")
        try:
            data, ext = normalize_image(source, ops)
        except ImageSkip as exc:
            record = {"skip": f"--normalize {spec}: {exc}"}
        else:
            atomic.write_bytes(cache.path(NAMESPACE, key, ext), data)
            with Image.open(io.BytesIO(data)) as img:
                width, height, fmt, mode = img.width, img.height, img.format, img.mode
            record = {"ext": ext, "sha256": sha256_bytes(data), "width": width, "height": height, "format": fmt,
                      "mode": mode}
        cache.save_json(NAMESPACE, key, record)
    if "skip" in record:
        return Skip(item.id, record["skip"])
    return dataclasses.replace(item, path=str(cache.path(NAMESPACE, key, record["ext"])), sha256=record["sha256"],
                               width=record["width"], height=record["height"], format=record["format"],
                               mode=record["mode"], metadata=False)


def normalize_dataset(dataset: Dataset, spec: str, cache: Cache, workers: int = 2,
                      progress: bool = True) -> Dataset:
    """``dataset`` with every image normalised by ``spec`` (cached); ``normalized_from`` keeps the original."""
    spec = canonical_spec(spec)
    ops = parse_normalize_spec(spec)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        done = list(tqdm(pool.map(lambda it: _normalize_item(it, spec, ops, cache), dataset.items),
                         total=len(dataset.items), desc=f"normalising ({spec})", disable=not progress, leave=False))
    items = [d for d in done if isinstance(d, Item)]
    skips = [d for d in done if isinstance(d, Skip)]
    if not any(it.label == 0 for it in items) or not any(it.label == 1 for it in items):
        raise BenchError(f"--normalize {spec} leaves dataset {dataset.name!r} without real or generated images "
                         f"({len(skips)} skipped, e.g. {skips[0].reason if skips else 'none'})")
    return dataclasses.replace(dataset, items=items, skips=dataset.skips + skips, normalized_from=dataset)

