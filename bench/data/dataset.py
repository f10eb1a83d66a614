"""A dataset: manifest rows that decoded cleanly, their splits, and a content hash.

Loading a dataset probes every image once: the bytes are hashed (sha256), the
image is fully decoded (so truncated files are found now, not mid-run) and a
64-bit difference hash is kept to group near-duplicates. Probe results are
cached per (path, size, mtime): a file replaced by one of the same size and
modification time keeps its old probe, unless ``verify`` (``--verify-data``)
rehashes every image. Unusable images become recorded skips.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from bench.core.cache import Cache
from bench.core.errors import BenchError, ImageSkip
from bench.core.hashing import sha256_bytes, stable_hash
from bench.data.generators import check_generators, generators_of, keep_generators
from bench.data.images import MAX_PIXELS, MIN_SIDE, decode_bytes, probe_bytes, read_image_file
from bench.data.manifest import Row, Skip
from bench.data.parquet_images import member_file
from bench.data.sources import resolve_source
from bench.data.urls import is_url, url_stamp
from bench.data.split import assign_splits

PROBE_VERSION = 2
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Item(Row):
    sha256: str = ""
    width: int = 0
    height: int = 0
    format: str = ""
    mode: str = ""
    dhash: int = 0
    metadata: bool = False  # EXIF or text chunks (e.g. a generator's workflow) present in the file


@dataclass
class Dataset:
    name: str
    source: str
    items: list[Item]
    skips: list[Skip] = field(default_factory=list)
    synthetic: bool = False
    normalized_from: Dataset | None = None  # the source dataset of a --normalize'd one (bench.data.normalize)
    given_splits: bool = False  # the manifest gave the splits (checked for overlaps: bench.data.leaks)

    @property
    def hash(self) -> str:
        """Content hash: image bytes, labels, generators and splits (not paths)."""
        return stable_hash(sorted((it.sha256, it.label, it.generator, it.split or "") for it in self.items))

    @property
    def generators(self) -> list[str]:
        return sorted({it.generator for it in self.items if it.label == 1})

    def split(self, name: str) -> list[Item]:
        return [it for it in self.items if it.split == name]

    def summary(self) -> dict:
        counts: dict[str, dict[str, int]] = {}
        for it in self.items:
            counts.setdefault(it.generator, {}).setdefault(it.split or "-", 0)
            counts[it.generator][it.split or "-"] += 1
        return {"name": self.name, "source": self.source, "hash": self.hash, "n_images": len(self.items),
                "n_skipped": len(self.skips), "counts": counts, "synthetic": self.synthetic}


def _dhash(arr: np.ndarray) -> int:
    grey = Image.fromarray(arr).convert("L").resize((9, 8), Image.Resampling.BILINEAR)
    g = np.asarray(grey, dtype=np.int16)
    bits = (g[:, 1:] > g[:, :-1]).flatten()
    return int(np.packbits(bits).view(">u8")[0])


def _probe_file(path: str, max_pixels: int, min_side: int) -> dict:
    try:
        data = read_image_file(path)
        info = probe_bytes(data, max_pixels, min_side)
        arr = decode_bytes(data, max_pixels, min_side)
    except ImageSkip as exc:
        return {"skip": str(exc)}
    return {"sha256": sha256_bytes(data), "width": info.width, "height": info.height,
            "format": info.format, "mode": info.mode, "dhash": _dhash(arr), "metadata": info.metadata}


def probe_rows(rows: list[Row], cache: Cache, workers: int = 2, max_pixels: int = MAX_PIXELS,
               min_side: int = MIN_SIDE, progress: bool = True, verify: bool = False) -> tuple[list[Item], list[Skip]]:
    """Probe every row (cached by path, size and mtime; with ``verify`` every row is probed again and the cache
    refreshed, with a warning counting the images whose cached probe was stale); return usable items and skips."""

    def stamp(path: str) -> tuple | None:
        if is_url(path):
            return url_stamp(path)
        try:
            st = os.stat(member_file(path))
            return st.st_size, st.st_mtime_ns
        except OSError:
            return None

    def key(row: Row) -> str:
        return stable_hash([PROBE_VERSION, row.path, stamp(row.path), max_pixels, min_side])

    keys = [key(r) for r in rows]
    cached: list[dict | None] = [cache.load_json("probe", k) for k in keys]
    results: list[dict | None] = [None] * len(rows) if verify else list(cached)
    todo = [i for i, r in enumerate(results) if r is None]
    if todo:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = pool.map(lambda i: _probe_file(rows[i].path, max_pixels, min_side), todo)
            for i, res in zip(todo, tqdm(futures, total=len(todo), desc="probing images", disable=not progress,
                                         leave=False)):
                results[i] = res
                if "skip" not in res or res["skip"] != "file not found":
                    cache.save_json("probe", keys[i], res)
    stale = sum(1 for i in todo if cached[i] is not None and cached[i] != results[i])
    if stale:
        log.warning("--verify-data: %d image(s) differ from their cached probe (same path, size and modification "
                    "time); the probes were refreshed", stale)
    items: list[Item] = []
    skips: list[Skip] = []
    for row, res in zip(rows, results):
        assert res is not None
        if "skip" in res:
            skips.append(Skip(row.id, res["skip"]))
        else:
            items.append(Item(**row.__dict__, **res))
    return items, skips


def collapse_duplicates(items: list[Item]) -> tuple[list[Item], list[Skip]]:
    """One item per content hash: exact copies with the same label and generator collapse onto the first
    (the others are recorded skips, and a warning says how many); bytes that rows label differently
    (real and generated, or two generators) are all skipped, since no label can be trusted.
    """
    groups: dict[str, list[Item]] = {}
    for it in items:
        groups.setdefault(it.sha256, []).append(it)
    kept: set[int] = set()
    skips: list[Skip] = []
    for group in groups.values():
        first = group[0]
        labels = sorted({f"{'real' if it.label == 0 else 'generated'} ({it.generator})" for it in group})
        if len(labels) > 1:
            skips.extend(Skip(it.id, f"same bytes as {', '.join(o.id for o in group if o is not it)} but labelled "
                                     f"{' / '.join(labels)}: conflicting labels, skipped") for it in group)
            continue
        kept.add(id(first))
        skips.extend(Skip(it.id, f"duplicate of {first.id} (same bytes, same label): counted once")
                     for it in group[1:])
    if skips:
        log.warning("%d manifest row(s) are duplicates or carry conflicting labels for the same bytes; "
                    "see the skipped images", len(skips))
    return [it for it in items if id(it) in kept], skips


def load_dataset(spec: str, cache: Cache, seed: int = 0, workers: int = 2, max_pixels: int = MAX_PIXELS,
                 min_side: int = MIN_SIDE, progress: bool = True, allow_outside_paths: bool = False,
                 generators: list[str] | None = None, caption_groups: bool = True, verify: bool = False) -> Dataset:
    """``generators`` keeps only those generators and their reals (bench.data.generators), before any
    image is read, so a few generators of a large dataset cost only their own images; ``verify`` rehashes every
    image instead of trusting the probe cache (:func:`probe_rows`)."""
    source = resolve_source(spec, cache.root)
    name = source.name
    rows, skips = source.read(allow_outside_paths)
    if generators:
        check_generators(generators, generators_of(rows), "--generators", name)
        rows = keep_generators(rows, generators)
    items, probe_skips = probe_rows(rows, cache, workers, max_pixels, min_side, progress, verify)
    items, duplicate_skips = collapse_duplicates(items)
    given_splits = any(it.split for it in items)
    items, split_skips = assign_splits(items, seed, caption_groups)
    dataset = Dataset(name, source.location, items, skips + probe_skips + duplicate_skips + split_skips,
                      source.synthetic, given_splits=given_splits)
    if not any(it.label == 0 for it in items) or not any(it.label == 1 for it in items):
        raise BenchError(f"dataset {name!r} needs both real and generated images; "
                         f"usable: {len(items)}, skipped: {len(dataset.skips)}")
    return dataset


def limit_per_class(items: list[Item], limit: int | None, seed: int) -> list[Item]:
    """At most ``limit`` items per generator class (a seeded choice), keeping the original order."""
    if not limit:
        return items
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        by_class.setdefault(it.generator, []).append(i)
    keep: set[int] = set()
    for idx in by_class.values():
        keep.update(rng.permutation(idx)[:limit].tolist() if len(idx) > limit else idx)
    return [it for i, it in enumerate(items) if i in keep]
