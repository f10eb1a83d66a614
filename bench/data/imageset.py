"""Image sets handed to detectors: decoded lazily, perturbed on the fly.

Detectors never see file paths. They get an :class:`ImageSet` with labels,
generators and captions, and index it to obtain RGB uint8 arrays. A
:class:`PerturbedImageSet` applies one perturbation at one severity, with the
random generator derived from (seed, image content hash, perturbation,
severity), so ``cell_key(i)`` identifies the exact pixels of item ``i``.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from collections import OrderedDict
from typing import Sequence

import numpy as np

from bench.core.rng import cell_rng
from bench.data.images import decode_image


class DecodedCache:
    """A byte-bounded LRU of decoded images shared by every set of one run."""

    def __init__(self, budget_bytes: int = 2 << 30):
        self.budget = budget_bytes
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, path: str, max_pixels: int, min_side: int) -> np.ndarray:
        with self._lock:
            arr = self._items.get(path)
            if arr is not None:
                self._items.move_to_end(path)
                return arr
        arr = decode_image(path, max_pixels, min_side)
        arr.setflags(write=False)  # shared: nobody may modify a cached image in place
        with self._lock:
            if path not in self._items and arr.nbytes <= self.budget:
                self._items[path] = arr
                self._bytes += arr.nbytes
                while self._bytes > self.budget:
                    _, old = self._items.popitem(last=False)
                    self._bytes -= old.nbytes
        return arr


class ImageSet(Sequence):
    """A clean (unperturbed) list of dataset items."""

    perturbation = "none"
    severity = 0
    table = "default"
    fingerprint = ""  # perturbed sets: the perturbation's table values and code version (Perturbation.fingerprint)

    def __init__(self, items: list, cache: DecodedCache | None = None, max_pixels: int = 64_000_000, min_side: int = 16):
        self.items = list(items)
        self.cache = cache or DecodedCache()
        self.max_pixels = max_pixels
        self.min_side = min_side
        self.labels = np.array([it.label for it in self.items], dtype=np.int64)
        self.generators = [it.generator for it in self.items]
        self.captions = [it.caption for it in self.items]
        self.ids = [it.id for it in self.items]
        self.hashes = [it.sha256 for it in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self.clean(i)

    def clean(self, i: int) -> np.ndarray:
        it = self.items[i]
        return self.cache.get(it.path, self.max_pixels, self.min_side)

    def cell_key(self, i: int) -> str:
        """Identifies the exact pixels of item ``i`` in this set: content hash, perturbation table and
        severity, and for perturbed cells the seed their random draws derive from and the fingerprint
        of the perturbation (table values, function version)."""
        return f"{self.hashes[i]}:{self.perturbation}@{self.table}:{self.severity}"

    def materialize(self, workers: int = 1) -> None:
        """Clean images are decoded on access (and kept in the shared decoded cache): nothing to do."""

    def subset(self, indices) -> "ImageSet":
        return ImageSet([self.items[i] for i in indices], self.cache, self.max_pixels, self.min_side)


class PerturbedImageSet(ImageSet):
    """The same items with one perturbation applied at full resolution, before any detector preprocessing."""

    def __init__(self, base: ImageSet, perturbation, severity: int, seed: int, preset: str = "default"):
        super().__init__(base.items, base.cache, base.max_pixels, base.min_side)
        self.perturbation_obj = perturbation
        self.perturbation = perturbation.name
        self.severity = int(severity)
        self.seed = int(seed)
        self.preset = preset
        self.table = perturbation.table_preset(preset)
        self.fingerprint = perturbation.fingerprint(preset, self.severity)
        self._memo: dict[int, np.ndarray] = {}

    def cell_key(self, i: int) -> str:
        key = super().cell_key(i)
        return key if self.severity == 0 else f"{key}~seed{self.seed}~{self.fingerprint}"

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        memo = self._memo.get(i)
        return memo if memo is not None else self._compute(i)

    def _compute(self, i: int) -> np.ndarray:
        image = self.clean(i)
        if self.severity == 0:
            return image
        rng = cell_rng(self.seed, self.hashes[i], self.perturbation, self.severity)
        out = self.perturbation_obj.apply(image, self.severity, rng, self.preset)
        out.setflags(write=False)
        return out

    def materialize(self, workers: int = 1, budget_bytes: int = 1 << 30) -> None:
        """Compute every perturbed image once (in threads) so that all detectors of a cell share them.

        Done at most once per set; skipped when the images would not fit in ``budget_bytes``, and
        items are then perturbed on access.
        """
        if self._memo:
            return
        estimate = sum(it.width * it.height * 3 for it in self.items)
        if estimate > budget_bytes:
            return
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            self._memo = dict(enumerate(pool.map(self._compute, range(len(self)))))
