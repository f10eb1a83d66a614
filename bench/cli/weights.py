"""``bench weights list|fetch|import``: see, download and bring in the pretrained components.

Wire into the main parser with ``add_weights_commands(subparsers)``; each
subcommand sets ``func(args) -> int`` (the exit status). Heavy libraries are
imported only when a download actually runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bench.core.errors import BenchError

_EPILOG = """\
Resolution order for every component a detector needs:
  1. --weights NAME=PATH (or the config file's weights: mapping)
  2. the store: $BENCH_WEIGHTS_DIR (default: <user cache>/aigi-bench/weights)
  3. the libraries' caches: Hugging Face hub cache ($HF_HOME), torch hub cache ($TORCH_HOME), ~/.cache/clip
  4. a download into the store, unless BENCH_OFFLINE=1 or HF_HUB_OFFLINE=1

Fully offline: run `bench weights fetch all` on a connected machine, copy its store folder
to the same place (or to $BENCH_WEIGHTS_DIR) on the offline one, and set BENCH_OFFLINE=1.
"""


def _fmt_size(mb: float | None) -> str:
    if mb is None:
        return "?"
    if mb >= 1000:
        return f"{mb / 1000:.1f} GB"
    if mb >= 1:
        return f"{mb:.0f} MB"
    return f"{mb * 1000:.0f} kB"


def cmd_list(args: argparse.Namespace) -> int:
    from bench.weights import describe_status, is_offline, parse_weight_overrides, store_dir

    overrides = parse_weight_overrides(getattr(args, "weights", None) or [], check_exists=False)
    rows = describe_status(overrides)
    if getattr(args, "json", False):
        print(json.dumps({"store": str(store_dir()), "offline": is_offline(), "components": rows}, indent=2))
        return 0
    from tabulate import tabulate

    table = []
    for r in rows:
        status = (f"present ({r['found_in']}, {r['verification']})" if r["status"] == "present"
                  else r["status"])
        used = ", ".join(r["detectors"] or r["used_by"])
        table.append([r["name"], status, _fmt_size(r["size_mb"]), r["licence"], r["source"], used])
    print(tabulate(table, headers=["name", "status", "size", "licence", "source", "used by"], tablefmt="simple"))
    print()
    print(f"store: {store_dir()}  (set BENCH_WEIGHTS_DIR to move it)")
    print(f"offline mode: {'on' if is_offline() else 'off'}  (BENCH_OFFLINE=1 or HF_HUB_OFFLINE=1 turns it on)")
    for r in rows:
        if r["status"] == "invalid":
            print(f"invalid: {r['name']}: {r['reason']}")
    missing = [r["name"] for r in rows if r["status"] != "present"]
    if missing:
        print(f"missing: {len(missing)}; get them with `bench weights fetch {' '.join(missing)}` "
              f"(or `bench weights fetch all`), or `bench weights import NAME PATH`")
    if getattr(args, "verbose", False):
        print()
        for r in rows:
            known = [f"{f} {h}" for f, h in r["file_sha256"].items()] or [h for h in [r["sha256"]] if h]
            known += [f"{h} (an alternate published form)" for h in r["alt_sha256"]]
            sha = "; ".join(known) or "not published (pinned on first fetch)"
            found = f" Found at {r['path']}." if r["path"] else ""
            print(f"{r['name']}: {r['description']}. Paper: {r['paper']}. Licence: {r['licence']}. "
                  f"Published at: {' '.join(r['urls'])}. sha256: {sha}.{found}")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from bench.weights import WeightsUnavailable, fetch, is_offline, store_dir
    from bench.weights.catalog import COMPONENTS, component_names

    try:
        names = component_names() if "all" in args.names else COMPONENTS.resolve(args.names)
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if is_offline():
        print(f"error: offline mode is on (BENCH_OFFLINE / HF_HUB_OFFLINE): fetching needs the network; run "
              f"`bench weights fetch {' '.join(args.names)}` on a connected machine and copy {store_dir()} here, "
              f"or use `bench weights import NAME PATH`", file=sys.stderr)
        return 1
    progress = not args.no_progress
    failed: list[str] = []
    bar = tqdm(names, desc="weights", unit="component", disable=not progress or len(names) < 2, file=sys.stderr)
    for name in bar:
        bar.set_postfix_str(name)
        try:
            got = fetch(name, progress=progress, force=args.force)
        except (WeightsUnavailable, BenchError) as err:
            failed.append(name)
            tqdm.write(f"error: {err}", file=sys.stderr)
            continue
        what = "already in the store" if got.source == "store" else "fetched"
        tqdm.write(f"{name}: {what} -> {got.path} (sha256 {got.sha256[:16]}..., {got.verification})")
    bar.close()
    if failed:
        print(f"{len(failed)} of {len(names)} failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from bench.weights import import_weights

    try:
        got = import_weights(args.name, args.path)
    except BenchError as err:  # unknown name, unreadable path, checksum mismatch: a usage error
        print(f"error: {err}", file=sys.stderr)
        return 2
    note = {"catalog": "matches the catalog's sha256", "hub": "matches the hub's sha256",
            "unverified": "no published checksum: recorded now, checked from now on (trust on first use)"}
    print(f"{got.name}: imported -> {got.path}\n  sha256 {got.sha256} ({note.get(got.verification, got.verification)})")
    return 0


def _print_help(parser: argparse.ArgumentParser) -> Any:
    def run(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    return run


def add_weights_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``weights list|fetch|import`` to the main parser's subparsers; returns the ``weights`` parser."""
    fmt = argparse.RawDescriptionHelpFormatter
    weights = subparsers.add_parser(
        "weights", help="list, download or import the pretrained weights detectors need",
        description="Pretrained components (CLIP, EfficientNet, ResNet, VGG/LPIPS, diffusion autoencoders) "
                    "come from one resolver with a local store, checksums and an offline mode.",
        epilog=_EPILOG, formatter_class=fmt)
    weights.set_defaults(func=_print_help(weights))
    sub = weights.add_subparsers(dest="weights_command", metavar="{list,fetch,import}")

    p = sub.add_parser(
        "list", help="every declared component: present or missing, source, size, licence",
        description="Show every declared pretrained component, whether it is present (and where: override, "
                    "store, hf-cache, torch-cache, clip-cache) or missing, where it would be downloaded from, "
                    "its size and its licence. Hashes nothing and never touches the network.",
        epilog=_EPILOG, formatter_class=fmt)
    p.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")
    p.add_argument("-v", "--verbose", action="store_true", help="also print description, paper and checksum")
    p.add_argument("--weights", action="append", metavar="NAME=PATH", default=[],
                   help="a path override to take into account (repeatable), as for `bench run`")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser(
        "fetch", help="download components into the store and verify their checksums",
        description="Download components into the store ($BENCH_WEIGHTS_DIR) with a progress bar, verify "
                    "their sha256 (the catalog's, or the Hugging Face hub's), and install them atomically. "
                    "Where no checksum is published, the sha256 of what was fetched is recorded and checked "
                    "from then on (trust on first use). Components already in the store are kept.",
        epilog="examples:\n  bench weights fetch clip_vit_b16\n  bench weights fetch 'sd_vae_*' "
               "kandinsky21_movq\n  bench weights fetch all\n\n" + _EPILOG, formatter_class=fmt)
    p.add_argument("names", nargs="+", metavar="NAME",
                   help="component names or wildcards (see `bench weights list`), or 'all'")
    p.add_argument("--force", action="store_true", help="download again even if the store has an intact copy")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser(
        "import", help="verify a file you obtained elsewhere and copy it into the store",
        description="Verify a checkpoint file (or, for diffusers autoencoders, a model folder holding "
                    "config.json and the weights) obtained elsewhere and copy it into the store. A known "
                    "checksum that does not match is an error naming both hashes; without a published "
                    "checksum the file's sha256 is recorded (trust on first use).",
        epilog="examples:\n  bench weights import clip_vit_b16 ~/.cache/clip/ViT-B-16.pt\n"
               "  bench weights import sd_vae_sd1 /models/stable-diffusion-v1-4/vae\n"
               "  bench weights import resnet50 ~/Downloads/resnet50-0676ba61.pth\n\n" + _EPILOG, formatter_class=fmt)
    p.add_argument("name", metavar="NAME", help="component name (see `bench weights list`)")
    p.add_argument("path", metavar="PATH", help="the file (or model folder) to import")
    p.set_defaults(func=cmd_import)
    return weights
