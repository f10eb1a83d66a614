"""The images of a run: train, validation and test parts, their hashes, and the checks on them.

Loads ``--dataset`` (and ``--train-on``), applies ``--normalize``, the generator filters and
``--limit``, and refuses overlaps between training and test data unless ``--allow-overlap``
(:mod:`bench.data.leaks`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.core.cache import Cache
from bench.core.errors import BenchError
from bench.core.hashing import stable_hash
from bench.data.dataset import Dataset, Item, limit_per_class, load_dataset
from bench.data.generators import check_generators, keep_generators
from bench.data.leaks import find_overlaps
from bench.data.normalize import normalize_dataset
from bench.data.split import near_duplicate_groups
from bench.run.config import RunConfig


@dataclass
class Splits:
    train: list[Item]
    val: list[Item]
    test: list[Item]
    train_hash: str
    test_hash: str  # the test images actually evaluated (after --limit and --test-generators)
    test_dataset: Dataset
    train_dataset: Dataset
    overlaps: list[dict] = field(default_factory=list)  # allowed overlaps between parts (--allow-overlap)
    split_seed: int = 0


def build_splits(cfg: RunConfig, cache: Cache, progress: bool, split_seed: int | None = None) -> Splits:
    """Train, validation and test images; ``split_seed`` (default: the run seed) draws the split and --limit."""
    split_seed = cfg.seed if split_seed is None else split_seed

    def load(spec: str, generators: list[str] | None = None) -> Dataset:
        dataset = load_dataset(spec, cache, split_seed, cfg.workers, cfg.max_pixels, cfg.min_side, progress,
                               cfg.allow_outside_paths, generators, cfg.caption_groups, cfg.verify_data)
        return normalize_dataset(dataset, cfg.normalize, cache, cfg.workers, progress) if cfg.normalize else dataset

    test_ds = load(cfg.dataset, cfg.generators)
    train_ds = load(cfg.train_on) if cfg.train_on and cfg.train_on != cfg.dataset else test_ds
    train, val = train_ds.split("train"), train_ds.split("val")
    test = test_ds.items if train_ds is not test_ds else test_ds.split("test")

    def keep(items: list[Item], gens: list[str] | None, role: str, ds: Dataset) -> list[Item]:
        if not gens:
            return items
        check_generators(gens, ds.generators, role, ds.name)
        return keep_generators(items, gens)

    train = keep(train, cfg.train_generators, "--train-generators", train_ds)
    val = keep(val, cfg.train_generators, "--train-generators", train_ds)
    test = keep(test, cfg.test_generators, "--test-generators", test_ds)
    train, val, test = (limit_per_class(x, cfg.limit, split_seed) for x in (train, val, test))
    for role, items in (("training", train), ("validation", val), ("test", test)):
        if not any(it.label == 0 for it in items) or not any(it.label == 1 for it in items):
            raise BenchError(f"the {role} split has no {'real' if not any(it.label == 0 for it in items) else 'generated'} "
                             "images; use a larger dataset or --limit, or give splits in the manifest")
    train_hash = stable_hash(sorted((it.sha256, it.generator, "train") for it in train)
                             + sorted((it.sha256, it.generator, "val") for it in val))
    test_hash = stable_hash(sorted((it.sha256, it.label, it.generator) for it in test))
    overlaps = check_overlaps(cfg, train_ds, test_ds, train, val, test)
    return Splits(train, val, test, train_hash, test_hash, test_ds, train_ds, overlaps, split_seed)


def check_overlaps(cfg: RunConfig, train_ds: Dataset, test_ds: Dataset, train: list[Item], val: list[Item],
                   test: list[Item]) -> list[dict]:
    """Splits given by a manifest, or a --train-on dataset, may share images with the test set: find identical
    and near-duplicate images across the parts (bench.data.leaks); an error unless --allow-overlap, then
    the overlaps are returned for run.json. A seeded split keeps groups whole, so it is not checked."""
    if train_ds is test_ds and not test_ds.given_splits:
        return []
    name = (lambda part, ds: part) if train_ds is test_ds else (lambda part, ds: f"{ds.name}:{part}")
    overlaps = find_overlaps({name("train", train_ds): train, name("val", train_ds): val,
                              name("test", test_ds): test})
    if overlaps and not cfg.allow_overlap:
        listed = "; ".join(o.describe() for o in overlaps[:10])
        more = f"; and {len(overlaps) - 10} more" if len(overlaps) > 10 else ""
        raise BenchError(f"{len(overlaps)} image group(s) overlap between training and test data ({listed}{more}); "
                         "fix the splits, or pass --allow-overlap to run anyway (recorded in run.json)")
    return [o.record() for o in overlaps]


def normalization_record(spec: str | None, splits: Splits) -> dict | None:
    """run.json's "normalize": the spec and, per dataset, the content hash of its images before it."""
    if not spec:
        return None
    datasets = {ds.name: ds for ds in (splits.test_dataset, splits.train_dataset)}
    return {"spec": spec, "source_hashes": {name: ds.normalized_from.hash for name, ds in datasets.items()
                                            if ds.normalized_from is not None}}


def bootstrap_groups(items: list[Item]):
    """Bootstrap group of each test image: near-duplicates, the manifest's group (same source image)
    and caption siblings are resampled together (:mod:`bench.run.resample`)."""
    return near_duplicate_groups([it.dhash for it in items], [it.group for it in items],
                                 [it.caption for it in items])
