"""``bench data fetch``: download a published dataset into the data store, or print how to get it."""

from __future__ import annotations

import argparse
from pathlib import Path

FETCH_EXAMPLES = """examples:
  bench data fetch forensynths-test               # Hugging Face hosted: downloads and unzips into the data store
  bench data fetch defactify4 --to /data/defactify4
  bench data fetch hf:NasrinImp/Defactify4_Train  # any Hugging Face dataset's Parquet files
  bench data fetch genimage                       # not on the hub: prints the exact manual steps
then: bench run --dataset forensynths-test   (or --dataset NAME=DIR after --to DIR)
"""


def add_fetch_command(data_sub: argparse._SubParsersAction) -> None:
    p = data_sub.add_parser(
        "fetch", help="download a registered dataset (or hf:ORG/NAME) where it is on the Hugging Face hub, "
                      "else print how to get it",
        description="Downloads resume where an interrupted fetch stopped; BENCH_OFFLINE=1 refuses. The data "
                    "store is $BENCH_DATA_DIR (default: <user cache dir>/aigi-bench/data).",
        epilog=FETCH_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="a dataset from `bench list datasets`, or hf:ORG/NAME")
    p.add_argument("--to", type=Path, help="download into this folder instead of the data store")
    p.set_defaults(func=cmd_data_fetch)


def cmd_data_fetch(args: argparse.Namespace) -> int:
    from bench.data.fetch import fetch_dataset

    dest, manual = fetch_dataset(args.name, args.to)
    if manual:
        print(manual)
        return 0
    use = f"--dataset {args.name}" if args.to is None else f"--dataset {args.name}={dest}"
    print(f"{args.name}: downloaded to {dest}; use {use}")
    return 0
