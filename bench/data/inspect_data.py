"""``bench data inspect``: what a dataset holds, and the shortcuts it offers a detector.

Real and generated images that differ in file format, size or embedded
metadata let a detector score well without seeing any generation artefact
(README, "Auditing a dataset"). This report counts each class and warns about those
differences.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from tabulate import tabulate

from bench.data.dataset import Dataset

SIZE_RATIO_WARN = 1.25  # median pixel counts of real vs fake differing by more than this
FORMAT_SHARE_WARN = 0.2  # a format's share differing by more than this between real and fake


def _share(counter: Counter, total: int) -> dict[str, float]:
    return {k: v / total for k, v in counter.items()} if total else {}


def shortcut_warnings(dataset: Dataset) -> list[str]:
    real = [it for it in dataset.items if it.label == 0]
    fake = [it for it in dataset.items if it.label == 1]
    if not real or not fake:
        return []
    warnings = []
    real_fmt, fake_fmt = _share(Counter(it.format for it in real), len(real)), _share(
        Counter(it.format for it in fake), len(fake))
    for fmt in sorted(set(real_fmt) | set(fake_fmt)):
        r, f = real_fmt.get(fmt, 0.0), fake_fmt.get(fmt, 0.0)
        if abs(r - f) > FORMAT_SHARE_WARN:
            warnings.append(f"format shortcut: {fmt} is {r:.0%} of real but {f:.0%} of generated images")
    real_px = np.median([it.width * it.height for it in real])
    fake_px = np.median([it.width * it.height for it in fake])
    ratio = max(real_px, fake_px) / max(min(real_px, fake_px), 1)
    if ratio > SIZE_RATIO_WARN:
        warnings.append(f"size shortcut: median real image has {real_px:.0f} px, median generated {fake_px:.0f} px "
                        f"(x{ratio:.1f})")
    real_meta = np.mean([it.metadata for it in real])
    fake_meta = np.mean([it.metadata for it in fake])
    if abs(real_meta - fake_meta) > FORMAT_SHARE_WARN:
        warnings.append(f"metadata shortcut: {real_meta:.0%} of real vs {fake_meta:.0%} of generated images carry "
                        "EXIF or text chunks")
    return warnings


def inspect_report(dataset: Dataset) -> str:
    rows = []
    for gen in ["real"] + dataset.generators:
        items = [it for it in dataset.items if it.generator == gen]
        if not items:
            continue
        sizes = Counter(f"{it.width}x{it.height}" for it in items)
        formats = Counter(f"{it.format}/{it.mode}" for it in items)
        splits = Counter(it.split for it in items)
        rows.append([gen, "real" if gen == "real" else "fake", len(items),
                     ", ".join(f"{k} {v}" for k, v in formats.most_common(3)),
                     ", ".join(f"{k} {v}" for k, v in sizes.most_common(2)) + (" ..." if len(sizes) > 2 else ""),
                     f"{np.mean([it.metadata for it in items]):.0%}",
                     " / ".join(str(splits.get(s, 0)) for s in ("train", "val", "test"))])
    lines = [f"dataset {dataset.name}  source {dataset.source}  hash {dataset.hash}",
             f"{len(dataset.items)} usable images, {len(dataset.skips)} skipped", "",
             tabulate(rows, headers=["generator", "label", "n", "format/mode", "sizes", "metadata", "train/val/test"])]
    if dataset.skips:
        lines += ["", "skipped:"] + [f"  {s.id}: {s.reason}" for s in dataset.skips[:50]]
        if len(dataset.skips) > 50:
            lines.append(f"  ... and {len(dataset.skips) - 50} more")
    warnings = shortcut_warnings(dataset)
    lines += [""] + ([f"WARNING: {w}" for w in warnings] or ["no format, size or metadata shortcut detected"])
    return "\n".join(lines)
