"""Benchmark reading images from Parquet cells against reading the same images as files (not a test;
prints numbers, asserts nothing).

    python benchmarks/hf_parquet_stream.py                  # 600 images of 256x256, row groups of 100
    python benchmarks/hf_parquet_stream.py --n 2000 --row-group 50

It writes N random PNG images once as files and once into a Parquet file in the Hugging Face
``datasets`` image format, then times, for each, loading the dataset (manifest + probing: every image
read, SHA-256 hashed and decoded once, cold cache) and reading every image's bytes again in order and
in a shuffled order (the decoded-image cache is not involved). It also prints the peak resident memory
growth of the Parquet pass, which the row-group cache bounds.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.core.cache import Cache  # noqa: E402
from bench.data.dataset import load_dataset  # noqa: E402
from bench.data.images import read_image_file  # noqa: E402


def _png(rng: np.random.Generator, size: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--row-group", type=int, default=100)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    work = Path(tempfile.mkdtemp(prefix="hf-parquet-bench-"))
    images = [_png(rng, args.size) for _ in range(args.n)]
    labels = [i % 2 for i in range(args.n)]
    for i, (data, label) in enumerate(zip(images, labels)):
        folder = work / "files" / ("1_fake" if label else "0_real")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:06d}.png").write_bytes(data)
    table = pa.table({"image": pa.array([{"bytes": b, "path": f"{i}.png"} for i, b in enumerate(images)],
                                        type=pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                      "label": labels})
    table = table.replace_schema_metadata({"huggingface": json.dumps(
        {"info": {"features": {"image": {"_type": "Image"}, "label": {"names": ["real", "fake"], "_type": "ClassLabel"}}}})})
    (work / "hf" / "data").mkdir(parents=True)
    pq.write_table(table, work / "hf" / "data" / "train-00000-of-00001.parquet", row_group_size=args.row_group)
    total_mb = sum(map(len, images)) / 2**20
    print(f"{args.n} PNG images of {args.size}x{args.size} ({total_mb:.0f} MB), row groups of {args.row_group}")
    for label, spec in (("files  ", str(work / "files")), ("parquet", f"hf:bench/toy={work / 'hf'}")):
        before = _peak_mb()
        t0 = time.perf_counter()
        ds = load_dataset(spec, Cache(work / f"cache-{label.strip()}"), progress=False)
        t_load = time.perf_counter() - t0
        paths = [it.path for it in ds.items]
        t0 = time.perf_counter()
        for p in paths:
            read_image_file(p)
        t_seq = time.perf_counter() - t0
        order = np.random.default_rng(1).permutation(len(paths))
        t0 = time.perf_counter()
        for i in order:
            read_image_file(paths[i])
        t_rand = time.perf_counter() - t0
        print(f"{label}: load+probe {t_load:6.2f} s ({len(ds.items) / t_load:6.0f} img/s) | re-read in order "
              f"{len(paths) / t_seq:7.0f} img/s | shuffled {len(paths) / t_rand:7.0f} img/s | peak RSS +"
              f"{_peak_mb() - before:.0f} MB")


if __name__ == "__main__":
    main()
