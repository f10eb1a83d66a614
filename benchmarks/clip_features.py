"""Benchmark the shared CLIP feature cache (not a test; prints numbers, asserts nothing).

    python benchmarks/clip_features.py                 # tiny test backbone on the CPU (+ ViT-B/16 on a GPU)
    python benchmarks/clip_features.py --n 1024 --backbones clip_vit_b16 --device cuda

For each backbone it prints

1. images per second through the backbone (decode-free: in-memory PNG images,
   the backbone's own preprocessing included, the model already loaded, no cache),
   and the same for the model forward alone;
2. the time for five heads on one backbone to score a fresh grid cell divided by
   the time for one head to score a fresh cell of the same size (target: < 1.3).
   The heads are clip_svm, clip_svm (binary, SelectKBest), univfd, clip_text_mlp
   and occ_clip, all pointed at the same backbone and fitted beforehand; the first
   head to see a cell pays for the forward passes, the other four read the cache.
   (clip_finetune changes its encoder, so it cannot share a frozen backbone.)

ViT-B/16 runs only when a GPU is present (or with --device); it uses the
pretrained weights when ``bench weights`` can resolve them and a seeded random
initialisation otherwise (the speed is the same; the label says which).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.core.cache import Cache  # noqa: E402
from bench.core.detector import FitContext  # noqa: E402
from bench.data.dataset import load_dataset  # noqa: E402
from bench.data.imageset import ImageSet  # noqa: E402

REPEATS = 3


def make_images(root: Path, n: int, size: int, seed: int = 0) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(n):
        gen = ("real", "gen_a", "gen_b")[i % 3]
        base = rng.normal(128, 40, (size // 8, size // 8, 3))
        img = np.kron(base, np.ones((8, 8, 1)))
        if gen == "real":
            img = img + rng.normal(0, 20, img.shape)
        elif gen == "gen_b":
            img[::2, ::2] = 255 - img[::2, ::2]
        folder = root / ("real" if gen == "real" else f"fake/{gen}")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"{i:05d}.png")


def heads(backbone: str, provenance: dict, tiny: bool):
    from baselines.occ_clip import OCCClip
    from baselines.univfd import UnivFD
    from detectors.clip_svm import ClipSVM
    from detectors.clip_text_mlp import ClipTextMLP

    quick = dict(epochs=3) if tiny else dict(epochs=10)
    out = [
        ClipSVM(backbone=backbone, views=("orig",), c_grid=(10.0,), gamma_grid=(1.0,)),
        ClipSVM(backbone=backbone, views=("orig",), c_grid=(10.0,), gamma_grid=(1.0,), task="binary", k_best=16),
        UnivFD(backbone=backbone, **quick),
        ClipTextMLP(backbone=backbone, hidden=256, **quick),
        OCCClip(backbone=backbone, shots=16, n_ctx=4 if tiny else 16, fgsm_every=1000, **quick),
    ]
    for det in out:
        det.weights_provenance = dict(provenance)
    return out


def bench_backbone(backbone: str, device: str, n: int, size: int, workdir: Path) -> None:
    import torch

    from bench.nn import clip_features
    from bench.nn.backbones import backbone_weights, get_backbone
    from bench.nn.clip_features import ClipFeatures

    spec = get_backbone(backbone)
    provenance: dict = {}
    label = "random init (test backbone)" if spec.component is None else ""
    if spec.component is not None:
        from bench.weights import WeightsUnavailable, resolve

        try:
            provenance[spec.component] = resolve(spec.component).to_record()
            label = "pretrained weights"
        except WeightsUnavailable:
            provenance[spec.component] = {"component": spec.component, "random": True}
            label = "random init (weights not available here; speed is the same)"

    data = workdir / f"data-{backbone}-{size}"
    make_images(data, n_train := 96, size, seed=1)
    make_images(workdir / f"cells-{backbone}-{size}", 2 * REPEATS * n, size, seed=2)
    cache = Cache(workdir / f"cache-{backbone}-{device}")
    train_all = ImageSet(load_dataset(str(data), cache, progress=False).items)
    cell_items = load_dataset(str(workdir / f"cells-{backbone}-{size}"), cache, progress=False).items
    train, val = train_all.subset(range(0, 64)), train_all.subset(range(64, n_train))
    cells = [ImageSet(cell_items[k * n : (k + 1) * n]) for k in range(2 * REPEATS)]  # fresh cells, one per timing
    cell_a = cells[0]
    ctx = FitContext(device=device, seed=0, workers=4, batch_size=64 if device.startswith("cuda") else 32,
                     progress=False, cache=cache)

    class _Holder:  # resolve the weights path the same way the detectors do
        weights_provenance = provenance

        def weight_path(self, component):
            rec = provenance[component]
            return None if rec.get("random") else Path(rec["path"])

    path, sha = backbone_weights(_Holder(), spec)  # type: ignore[arg-type]
    extractor = ClipFeatures(spec, path, sha, 0, device, None, ctx.batch_size, ctx.workers)
    bb = extractor.backbone()
    sync = (lambda: torch.cuda.synchronize()) if device.startswith("cuda") else (lambda: None)
    extractor.images(cell_a.subset(range(min(n, ctx.batch_size))))  # warm-up
    sync()
    t = time.perf_counter()
    extractor.images(cell_a)
    sync()
    with_prep = n / (time.perf_counter() - t)
    x = torch.randn(ctx.batch_size, 3, spec.image_size, spec.image_size, device=bb.device)
    reps = max(1, n // ctx.batch_size)
    with torch.no_grad(), extractor._autocast():
        bb.model.encode_image(x)
        sync()
        t = time.perf_counter()
        for _ in range(reps):
            bb.model.encode_image(x)
        sync()
    model_only = reps * ctx.batch_size / (time.perf_counter() - t)

    dets = heads(backbone, provenance, spec.test)
    for det in dets:
        det.fit(train, val, ctx)
        det.predict(val, ctx)  # warm: first-call costs (sklearn, DataLoader) are not what is measured

    def timed(cell, group) -> tuple[float, int]:
        clip_features.reset_counters()
        sync()
        start = time.perf_counter()
        for det in group:
            det.predict(cell, ctx)
        sync()
        return time.perf_counter() - start, clip_features.forward_passes()

    ones = [timed(cells[k], dets[:1]) for k in range(1, REPEATS + 1)]  # cells[0] was used for throughput
    fives = [timed(cells[k], dets) for k in range(REPEATS + 1, 2 * REPEATS)] + [timed(cells[0], dets)]
    one, passes_one = float(np.median([t for t, _ in ones])), ones[0][1]
    five, passes_five = float(np.median([t for t, _ in fives])), fives[0][1]
    rerun, passes_rerun = timed(cells[1], dets)

    name = torch.cuda.get_device_name() if device.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)"
    print(f"\n{backbone} [{label}] on {name}, {n} images of {size}x{size} px per cell, batch {ctx.batch_size}")
    print(f"  backbone throughput: {with_prep:8.1f} images/s with preprocessing, {model_only:8.1f} images/s model only")
    print(f"  one head on a fresh cell:   {one:7.3f} s ({passes_one} forward passes; median of {REPEATS})")
    print(f"  five heads on a fresh cell: {five:7.3f} s ({passes_five} forward passes; median of {REPEATS})")
    print(f"  five / one = {five / one:.2f}  (target < 1.3)")
    print(f"  five heads again (all cached): {rerun:7.3f} s ({passes_rerun} forward passes)")


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=None, help="images per cell (default 256 on CPU, 1024 on GPU)")
    parser.add_argument("--backbones", default=None,
                        help="comma-separated; default test_tiny_clip, plus clip_vit_b16 when a GPU is present")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cpu for test_*, cuda for the others)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (1 gives stable numbers on a busy machine: OpenMP regions "
                             "stall when another process holds a core)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    names = args.backbones.split(",") if args.backbones else ["test_tiny_clip"] + (["clip_vit_b16"] if cuda else [])
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            device = args.device or ("cpu" if name.startswith("test_") or not cuda else "cuda")
            n = args.n or (1024 if device.startswith("cuda") else 256)
            size = 64 if name.startswith("test_") else 256
            bench_backbone(name, device, n, size, Path(tmp))
    if not cuda and not args.backbones:
        print("\n(no GPU here: ViT-B/16 skipped; run on a GPU machine or pass --backbones clip_vit_b16 --device cpu)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
