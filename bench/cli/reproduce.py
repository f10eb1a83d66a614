"""Argparse wiring for ``bench reproduce`` (bench.report.reproduce does the work)."""

from __future__ import annotations

import argparse
from pathlib import Path

REPRODUCE_EXAMPLES = """examples:
  bench reproduce --list                                   # the reproductions and the paper tables they check
  bench reproduce cnndet-forensynths --dataset forensynths-test=/data/CNNDetection/dataset/test \\
      --train-on forensynths-train=/data/CNNDetection/dataset
  bench reproduce npr-forensynths --limit 200 --device cuda    # a quick, smaller check

Each published generator is run on its own (its fakes against its own reals, as the papers report), on
clean images; the table shows published vs measured, the difference, and whether the published number
lies within the measured 95% bootstrap interval. The comparison is also written to OUT/reproduce.csv.
"""


def add_reproduce_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="run a paper's protocol and compare with its published numbers",
                       description="Run a detector's published protocol (configs/reproduce/NAME.yaml) and print "
                                   "the paper's numbers (NAME.published.yaml) beside the measured ones.",
                       epilog=REPRODUCE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", help="the reproduction to run (see --list)")
    p.add_argument("--list", action="store_true", help="list the reproductions and the tables they check")
    p.add_argument("--dir", type=Path, help="folder of reproductions (default: the repository's configs/reproduce)")
    p.add_argument("--dataset", help="where the test data is: NAME=PATH (default: the config's dataset, from the "
                                     "data store)")
    p.add_argument("--train-on", help="where the training/threshold data is: NAME=PATH (default: the config's)")
    p.add_argument("--weights", action="append", metavar="NAME=PATH",
                   help="use a local file for a weight component, e.g. a released checkpoint (repeatable)")
    p.add_argument("--limit", type=int, help="at most N images per generator class and split (quick checks)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--workers", type=int)
    p.add_argument("--bootstrap", type=int, help="bootstrap replicates for the 95%% intervals")
    p.add_argument("--out", type=Path, help="output folder (default: results/reproduce/NAME)")
    p.add_argument("--cache-dir")
    p.add_argument("--quiet", action="store_true", help="no progress bars or run logs")
    p.set_defaults(func=cmd_reproduce)


def cmd_reproduce(args: argparse.Namespace) -> int:
    from bench.core.cache import Cache
    from bench.core.errors import BenchError
    from bench.report.reproduce import REPRODUCE_DIR, format_comparison, list_lines, load_reproduction, reproduce

    folder = args.dir or REPRODUCE_DIR
    if args.list:
        print("\n".join(list_lines(folder)))
        return 0
    if not args.name:
        raise BenchError("name a reproduction (bench reproduce --list shows them)")
    repro = load_reproduction(args.name, folder)
    overrides = {"dataset": args.dataset, "train_on": args.train_on, "limit": args.limit, "device": args.device,
                 "workers": args.workers, "bootstrap": args.bootstrap}
    if args.weights:
        from bench.weights import parse_weight_overrides

        overrides["weights"] = {**repro.config.get("weights", {}), **parse_weight_overrides(args.weights)}
    out = args.out or Path("results/reproduce") / args.name
    table = reproduce(repro, overrides, out, Cache(args.cache_dir), progress=not args.quiet,
                      log=(lambda *_: None) if args.quiet else print)
    print(format_comparison(repro, table))
    print(f"\ncomparison: {out / 'reproduce.csv'}")
    return 0
