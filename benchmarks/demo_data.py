"""Time the build of the synthetic demo dataset (not a test; prints numbers, asserts nothing).

    python benchmarks/demo_data.py

Budget: 30 s on 2 CPU cores, since `make demo` and the CI suite build it in a fresh cache.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.data.demo_data import demo_dataset_path


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        root = demo_dataset_path(Path(tmp))
        elapsed = time.perf_counter() - start
        images = sum(1 for p in root.rglob("*.png"))
    print(f"demo dataset: {images} images built in {elapsed:.1f} s (budget 30 s on 2 cores)")


if __name__ == "__main__":
    main()
