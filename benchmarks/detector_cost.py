"""What each detector costs to fit and to score, in both profiles (not a test; prints a table, asserts nothing).

    python benchmarks/detector_cost.py                              # every registered detector but test_*
    python benchmarks/detector_cost.py --detectors 'clip_*' --profiles fast
    python benchmarks/detector_cost.py --limit 6 --max-epochs 2 --timeout 600

Every (detector, profile) runs in a subprocess of its own with a fresh cache (no fit, feature, error-map or
cell is reused), on the demo set with ``--limit`` (default 6: the smoke run's 24 training, 24 validation and
24 test images), seed 0, on the CPU unless ``--device``, with random weights where a detector's weights are
missing (the ``weights`` column says ``random``: the cost is that of the real network, the scores mean
nothing). Columns:

* ``fit s``: the runner's fit (``Runner.fit_all``: the detector's ``fit`` and the validation images scored
  for its threshold), wall time, as in ``bench run``;
* ``score s/img``: one clean cell of the test images through the runner's executor, per image;
* ``peak MB``: the subprocess's peak resident memory (``ru_maxrss``: Python, torch, the models, the data);
* ``passes fit`` / ``passes score``: passes through networks (modules of at least 100,000 parameters) counted
  by :func:`bench.nn.passes.count_passes`: each image of an image batch, or one per batch of token
  sequences through a text encoder; a training step's forward and backward count once, the SD VAE's
  encoder and decoder twice (a tiny autoencoder, one module, once), AEROBLADE's LPIPS network once per
  image (it takes the image and its reconstruction in one call);
* ``declared``: :meth:`Detector.training_passes` on the measured training and validation sizes (the fit
  column also holds the validation images scored for the threshold, and early stopping can end sooner).

A paper profile that trains for more than ``--max-epochs`` epochs is fitted with ``epochs`` capped (a
custom setting, for the measurement only) and extrapolated: the passes the cap left out (declared for the
full profile minus declared for the capped one) are added, each at the capped fit's mean time per pass;
marked ``~`` (an upper bound: every declared epoch, no early stopping). Fast profiles are measured whole. A measurement that runs past ``--timeout`` seconds is printed as ``> T``. Where the fast
profile has no settings of its own it is the paper profile, measured once (``= paper``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

def measure(name: str, profile: str, args: argparse.Namespace) -> dict:
    """One (detector, profile) in this process: fit, then one clean cell; the figures as a dict."""
    from bench.core.cache import Cache
    from bench.core.detector import SMOKE_CLASSES
    from bench.core.registries import create_detector
    from bench.nn.passes import count_passes
    from bench.run.config import RunConfig
    from bench.run.plan import CLEAN
    from bench.run.runner import Runner
    from bench.run.splits import build_splits

    full = create_detector(name, profile)
    epochs = full.params.get("epochs")
    capped = profile == "paper" and epochs is not None and epochs > args.max_epochs
    params = {name: {"epochs": args.max_epochs}} if capped else {}
    cfg = RunConfig(detectors=[name], dataset="demo", limit=args.limit, device=args.device, workers=args.workers,
                    perturb="none", profile=profile, random_weights=True, detector_params=params, bootstrap=0)
    with tempfile.TemporaryDirectory() as cache_dir:
        runner = Runner(cfg, Path(cache_dir) / "out", Cache(cache_dir), progress=False, log=lambda *_: None)
        splits = build_splits(cfg, runner.cache, progress=False)
        started = time.perf_counter()
        with count_passes() as fit_passes:
            run = runner.fit_all([name], splits, {name: None})[name]
        fit_s = time.perf_counter() - started
        if run.status != "ok":
            return {"error": f"{run.status}: {run.reason}"}
        test = runner.settings.limits.image_set(splits.test, runner.decoded)
        started = time.perf_counter()
        with count_passes() as score_passes:
            runner.score_cells([run], test, [CLEAN])
        score_s = time.perf_counter() - started
    n_train, n_val = len(splits.train), len(splits.val)
    declared = full.training_passes(n_train, n_val, SMOKE_CLASSES)
    passes = fit_passes[0]
    if capped:  # the passes the capped fit left out, at the capped fit's mean time per pass
        extra = declared - run.detector.training_passes(n_train, n_val, SMOKE_CLASSES)
        fit_s, passes = fit_s + extra * fit_s / max(1, passes), passes + extra
    return {"fit_s": fit_s, "score_s_per_image": score_s / max(1, len(test)),
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "fit_passes": passes,
            "score_passes": score_passes[0], "declared": declared, "weights": run.weights,
            "extrapolated": f"from {args.max_epochs} of {epochs} epochs" if capped else "",
            "images": [n_train, n_val, len(test)]}


def child(args: argparse.Namespace) -> None:
    print(json.dumps(measure(args.child[0], args.child[1], args)))


def parent(args: argparse.Namespace) -> None:
    from tabulate import tabulate

    from bench.core.registries import create_detector
    from bench.run.runner import expand_detectors

    names = expand_detectors([p.strip() for p in args.detectors.split(",")])
    rows = []
    for name in names:
        paper_row = None
        for profile in args.profiles.split(","):
            if profile == "fast" and paper_row is not None and not create_detector(name).profile_params("fast"):
                rows.append([name, "fast", "= paper", *paper_row[3:]])
                continue
            command = [sys.executable, __file__, "--child", name, profile, "--limit", str(args.limit),
                       "--max-epochs", str(args.max_epochs), "--device", args.device, "--workers", str(args.workers)]
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
                lines = done.stdout.strip().splitlines()
                result = json.loads(lines[-1]) if done.returncode == 0 and lines else \
                    {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
            except subprocess.TimeoutExpired:
                result = {"error": f"> {args.timeout} s"}
            row = format_row(name, profile, result)
            print("  " + " | ".join(str(v) for v in row), file=sys.stderr, flush=True)  # progress
            rows.append(row)
            if profile == "paper":
                paper_row = row
    print(f"detector cost on the demo set (--limit {args.limit}: train/val/test images per row), seed 0, device "
          f"{args.device}, {args.workers} workers; {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}),"
          f" torch threads {torch_threads()}; ~ = extrapolated from capped epochs (upper bound)\n")
    print(tabulate(rows, headers=["detector", "profile", "weights", "fit s", "score s/img", "peak MB", "passes fit",
                                  "passes score", "declared", "images", "note"], disable_numparse=True))


def format_row(name: str, profile: str, r: dict) -> list:
    if "error" in r:
        return [name, profile, "", "", "", "", "", "", "", "", r["error"][:60]]
    mark = "~" if r["extrapolated"] else ""
    return [name, profile, r["weights"], f"{mark}{r['fit_s']:.1f}", f"{r['score_s_per_image']:.3f}",
            f"{r['peak_mb']:.0f}", f"{mark}{r['fit_passes']:.0f}", str(r["score_passes"]), str(r["declared"]),
            "/".join(map(str, r["images"])), r["extrapolated"]]


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detectors", default="all", help="names or wildcards, comma-separated (all: but test_*)")
    parser.add_argument("--profiles", default="paper,fast")
    parser.add_argument("--limit", type=int, default=6, help="images per class and split (the smoke run's 6)")
    parser.add_argument("--max-epochs", type=int, default=2, help="cap on trained epochs; beyond it, extrapolated")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per (detector, profile)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--child", nargs=2, metavar=("DETECTOR", "PROFILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    child(args) if args.child else parent(args)


if __name__ == "__main__":
    main()
