"""The shortcut audit at the start of ``bench run`` (bench.data.audit), cached, summarised for run.json.

The audit covers every usable image of the evaluated dataset (not only the ``--limit`` selection), so that
run.json holds the same numbers as ``bench audit DATASET``. It is cached in the run's cache directory by
the dataset's content (image hashes, labels, generators, groups, order), the seed and the bootstrap
count, so a second run costs nothing. With ``--normalize`` the normalised images are audited too and
both are recorded ("original" and "normalized"), which shows what the normalisation took away. The
audit never changes a detector's number: it only reads the images.
"""

from __future__ import annotations

import time
from typing import Callable

from bench.core.cache import Cache
from bench.core.errors import BenchError
from bench.core.hashing import stable_hash
from bench.data.audit import AUDIT_VERSION, AuditResult, audit_dataset, verdict
from bench.data.dataset import Dataset

NAMESPACE = "audit"


def cached_audit(dataset: Dataset, cache: Cache, seed: int, workers: int, n_boot: int) -> AuditResult:
    content = [(it.sha256, it.label, it.generator, it.group) for it in dataset.items]
    key = stable_hash([AUDIT_VERSION, dataset.name, dataset.hash, content, seed, n_boot])
    stored = cache.load_json(NAMESPACE, key)
    if stored is not None:
        return AuditResult.from_dict(stored)
    result = audit_dataset(dataset, seed=seed, workers=workers, n_boot=n_boot)
    cache.save_json(NAMESPACE, key, result.to_dict())
    return result


def run_audit(dataset: Dataset, normalize: str | None, cache: Cache, seed: int, workers: int, n_boot: int,
              log: Callable[[str], None]) -> dict:
    """run.json's "audit" block: the audit of the evaluated dataset (and of its source before
    ``--normalize``), or the one-line reason it could not be computed (too few images to cross-validate)."""
    started = time.perf_counter()
    source = dataset.normalized_from or dataset
    block: dict = {"dataset": dataset.name, "normalize": normalize}
    try:
        results = {"original": cached_audit(source, cache, seed, workers, n_boot)}
        if dataset.normalized_from is not None:
            results["normalized"] = cached_audit(dataset, cache, seed, workers, n_boot)
    except BenchError as exc:
        log(f"audit skipped: {exc}")
        return {**block, "error": str(exc)}
    block.update({name: result.to_dict() for name, result in results.items()})
    block["seconds"] = round(time.perf_counter() - started, 2)
    for name, result in results.items():
        for baseline in result.scores:
            log(f"audit ({name}): {verdict(result, baseline)}")
    return block


def evaluated_audit(record: dict) -> dict | None:
    """The audit of the images a run evaluated (the normalised ones when there are), from its run.json."""
    block = record.get("audit") or {}
    return block.get("normalized") or block.get("original")
