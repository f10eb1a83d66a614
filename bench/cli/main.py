"""The ``bench`` command line.

Heavy modules (torch, pandas, detectors) are imported inside the handlers, so
``bench --help`` and ``bench list`` stay fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bench.core.errors import BenchError
from bench.core.presets import PRESETS
from bench.cli.run_flags import add_config_flags, config_from_args, plugin_help, use_cli_plugins
from bench.run.suites import suite_names

RUN_EXAMPLES = """examples:
  bench run                                         # default benchmark on the demo data
  bench run --detectors all --perturb jpeg,blur,noise --dataset path/to/dataset
  bench run --detectors spectral --perturb jpeg:1-3,blur --limit 20    # quick smoke run
  bench run --train-on demo --dataset path/to/other_dataset           # cross-dataset
  bench run --train-generators sd15,dalle2 --test-generators gpt-image --dataset DIR
  bench run --config results/runs/<run>/run.json                       # reproduce a run
  bench run --dataset genimage=/data/GenImage --train-generators sdv14   # GenImage: SD v1.4 -> all 8
  bench run --dataset genimage=/data/GenImage --generators sdv14,midjourney   # two generators and their reals
  bench run --train-on forensynths-train=/data/cnndet --dataset forensynths-test=/data/cnndet/test
  bench run --dataset 'hf:NasrinImp/Defactify4_Train[caption=caption]'   # a Hugging Face dataset's Parquet
  bench run --dataset DIR --normalize png                   # every image re-encoded as metadata-free PNG first
  bench run --dataset DIR --normalize size:512,jpeg:95      # resize+crop to 512, then one JPEG q95 for all
  bench run --suite ci --no-audit                           # skip the shortcut audit at the start
  bench run --detectors npr,spectral --seeds 0,1,2                     # 3 training seeds: mean and spread
  bench run --seeds 0,1,2 --vary-split                                 # ... and a new split per seed
  bench run --train-on DIR_A --dataset DIR_B --allow-overlap           # run although A and B share images
  bench run --workers 8 --device cuda                                  # one GPU box: each detector's batch size
  bench run --workers 8 --batch-size 128 --device cuda                 # ... or one batch size for all
  bench run --dataset urls.csv --allow-outside-paths                   # manifest paths as s3:// gs:// URLs (fsspec)
  bench run --executor ray --ray-address auto --detectors npr,spectral # on a running Ray cluster
  bench run --detectors npr,spectral --perturb pgd,transfer:npr,share,screenshot,recapture
  bench run --perturb "vae_roundtrip:taef2,albu:MotionBlur:1-3,albu:GaussNoise{std_range=(0.1,0.1)}"
  bench run --perturb imagenet-c --preset imagenet-c                  # ImageNet-C's corruptions
  bench run --profile fast --detectors npr                             # CPU smoke settings, not the paper's
  bench run --detectors aeroblade --perturb jpeg,crop,blur,noise --preset aeroblade  # AEROBLADE's protocol
  bench run --detectors univfd --perturb jpeg,blur --preset univfd                  # UnivFD's protocol
"""


PLAN_EXAMPLES = """examples:
  bench plan --detectors all --perturb jpeg,blur,noise          # what a full run needs, and how long it takes here
  bench plan --suite ci                                         # the CI suite: cached fits and cells
  bench run --detectors npr --profile fast --dry-run             # the same from bench run
"""


def add_run_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="run detectors over a perturbation grid and write the result store",
        description="Fit each detector on the clean training split, fix a threshold on clean validation data, "
                    "score every (perturbation, severity) cell of the test split, and write results, scores, "
                    "run.json, the leaderboard and the report. Finished work is cached: rerunning the same "
                    "command (also after an interruption) recomputes only what is missing.",
        epilog=RUN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p)
    p.add_argument("--dry-run", action="store_true",
                   help="print the run's plan (as bench plan) and exit: nothing is fitted, scored or written")
    p.set_defaults(func=cmd_run)
    plan = sub.add_parser(
        "plan", help="print what a run would do and how long it should take, without running it",
        description="Compile the run that `bench run` with the same flags would make and print it before any work: "
                    "the data and its split, each detector's fit and cells and which of them the cache already "
                    "holds, and an estimate of the time per detector on this machine from the timings that "
                    "earlier runs recorded in the cache ('unknown' for a detector never run here).",
        epilog=PLAN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(plan)
    plan.set_defaults(func=cmd_plan)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of a run, shared by ``bench run`` and ``bench plan``: where the config starts, one flag per
    config field (bench.cli.run_flags), then how this invocation runs and writes."""
    start = p.add_argument_group("configuration")
    start.add_argument("--config", help="YAML run config (or a run.json) to start from; flags override it")
    start.add_argument("--suite", choices=suite_names(),
                       help="a fixed, named configuration in configs/suites/ (ci: small and fast, for gating)")
    add_config_flags(p)
    where = p.add_argument_group("where it runs and writes")
    where.add_argument("--executor", choices=["local", "ray"], default="local",
                       help="where fits and cells run: this process (default) or a Ray cluster (pip install "
                            "'aigi-bench[ray]'; README, 'Running at scale'); same numbers either way")
    where.add_argument("--ray-address", metavar="ADDR",
                       help="Ray cluster to join (e.g. ray://head:10001 or auto); default: start a local one")
    where.add_argument("--no-audit", action="store_true",
                       help="skip the shortcut audit (metadata-only and content-only baselines) at the start")
    where.add_argument("--out", help="output directory (default: results/runs/<run id>)")
    where.add_argument("--cache-dir", help="cache directory (default: $BENCH_CACHE_DIR or the user cache dir)")
    where.add_argument("--no-report", action="store_true", help="write the store and leaderboard only, no figures")
    where.add_argument("--quiet", action="store_true", help="no progress bars")


def add_plugin_arg(p: argparse.ArgumentParser) -> None:
    """``--plugin`` of the commands that name detectors without a run config (list, check)."""
    p.add_argument("--plugin", action="append", metavar="PATH_OR_MODULE", help=plugin_help())


def run_config_from_args(args: argparse.Namespace):
    from bench.run.config import load_config_file
    from bench.run.suites import suite_config

    data: dict = {}
    if args.suite:
        data.update(suite_config(args.suite))
    if args.config:
        data.update(load_config_file(args.config))
    return config_from_args(args, data)


def register_declared(cfg) -> None:
    """Register the run's detectors with no code in the harness (``--external``) before it names detectors."""
    if cfg.external:
        from bench.external.spec import register_external

        register_external(cfg.external)


def cmd_plan(args: argparse.Namespace) -> int:
    from bench.core.cache import Cache
    from bench.run.dry_run import plan_run, plan_text
    from bench.run.runner import Runner

    cfg = run_config_from_args(args)
    register_declared(cfg)
    runner = Runner(cfg, Path(args.out) if args.out else None, Cache(args.cache_dir), progress=not args.quiet)
    print(plan_text(plan_run(runner)))
    return 0


def cmd_run(args: argparse.Namespace, cfg=None) -> int:
    """``bench run``; ``cfg``: the run config when the caller built it (bench import-scores), else the flags'."""
    from bench.core.cache import Cache
    from bench.report.write import write_leaderboards
    from bench.run.origin import recorded_origin
    from bench.run.runner import Runner
    from bench.run.schema import LEADERBOARD_MD

    if getattr(args, "dry_run", False):  # import-scores reaches here without the flag
        return cmd_plan(args)
    cfg = cfg or run_config_from_args(args)
    register_declared(cfg)
    from bench.run.executors import make_executor

    executor = make_executor(args.executor, args.ray_address)
    origin = recorded_origin(args.config) if getattr(args, "config", None) else None
    runner = Runner(cfg, Path(args.out) if args.out else None, Cache(args.cache_dir), progress=not args.quiet,
                    audit=not args.no_audit, executor=executor, origin=origin)
    record = runner.run()
    out = runner.out_dir
    write_leaderboards([out])
    print()
    print((out / LEADERBOARD_MD).read_text())
    if not args.no_report:
        from bench.report.write import write_report

        paths = write_report([out])
        print(f"\nreport: {len(paths)} files, open {out / 'report.html'}")
    print(f"results: {out}")
    statuses = [d.status for d in record.detectors.values()]
    skipped = [name for name, d in record.detectors.items() if d.status == "skipped"]
    if skipped:
        print(f"skipped ({len(skipped)}, weights unavailable; reasons above and in run.json, "
              f"`bench weights list` shows what is missing): {', '.join(skipped)}", file=sys.stderr)
    for name, det in record.detectors.items():
        if det.status == "failed":
            print(f"failed: {name}: {det.reason}", file=sys.stderr)
    if record.n_skipped_images:
        print(f"{record.n_skipped_images} image(s) skipped (reasons in run.json)", file=sys.stderr)
    return 1 if "failed" in statuses else 0


def cmd_list(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from bench.core.registries import DETECTORS, load_plugins

    use_cli_plugins(args.plugin)
    load_plugins()
    pattern = args.pattern or "*"
    if args.what == "detectors":
        if args.markdown:  # the README's table (tests/test_run_plan.py keeps it in step)
            print(detector_table(pattern, markdown=True))
            return 0
        print(detector_table(pattern))
        print("\n'all' selects every detector except test_*; test_* models are for tests and smoke runs only.")
        if args.verbose:
            print_detector_details(DETECTORS.names(pattern))
        else:
            print("Use -v for each detector's paper and its documented departures from it (imports the models).")
    elif args.what == "perturbations":
        from perturbations.spec import describe_perturbations

        print(describe_perturbations(args.preset))
    else:
        from bench.data.catalog import COLUMN_WIDTHS, dataset_details, dataset_rows

        rows, headers = dataset_rows(pattern)
        print(tabulate(rows, headers=headers, maxcolwidths=COLUMN_WIDTHS))
        print(dataset_details(pattern) if args.verbose else "\nUse -v for how to get each dataset.")
        print("\nPublished datasets: --dataset NAME=PATH (or `bench data fetch NAME`); any folder, CSV manifest or "
              "hf:ORG/NAME[:CONFIG][@SPLIT] also works (see README, 'Datasets').")
    return 0


def detector_table(pattern: str = "*", markdown: bool = False) -> str:
    """The registry's detectors as ``bench list detectors`` prints them; ``markdown``: the detectors ``all``
    selects (no test_* variants), as a Markdown table."""
    from tabulate import tabulate

    from bench.core.registries import DETECTORS

    headers = ["detector", "family", "weights", "trains", "gpu", "tasks", "method", "source"]
    rows = []
    for name in DETECTORS.names(pattern):
        entry = DETECTORS.entry(name)
        meta = entry.meta
        if markdown and meta.get("test"):
            continue
        rows.append([f"`{name}`" if markdown else name, meta.get("family", ""),
                     ", ".join(meta.get("weights", ())) or "-", "yes" if meta.get("trains") else "no",
                     meta.get("gpu", ""), ",".join(meta.get("tasks", ())), meta.get("summary", ""), entry.source])
    if markdown:
        headers, rows = headers[:-1], [row[:-1] for row in rows]  # the README lists this project's own
    return tabulate(rows, headers=headers, tablefmt="github" if markdown else "simple")


def print_detector_details(names: list[str]) -> None:
    """Each detector's paper, departures, fast-profile settings, which attacks can target it, and (heads on
    frozen features) which detectors share its backbone forward pass in the paper profile (README,
    "Profiles and fidelity")."""
    from bench.core.detector import SMOKE_CLASSES, SMOKE_TRAIN, SMOKE_VAL
    from bench.core.registries import DETECTORS, create_detector

    detectors = {name: create_detector(name) for name in names}
    passes: dict[str, list[str]] = {}
    for name, det in detectors.items():
        if hasattr(det, "feature_pass"):
            passes.setdefault(det.feature_pass(), []).append(name)
    for name, det in detectors.items():
        fast = type(det).profile_params("fast")
        budget = create_detector(name, "fast").training_passes(SMOKE_TRAIN, SMOKE_VAL, SMOKE_CLASSES)
        print(f"\n{name}\n  paper: {det.info.paper}\n  departures: {det.info.notes or 'none noted'}")
        print(f"  fast profile: {', '.join(f'{k}={v}' for k, v in fast.items()) or 'the paper settings'}; "
              + (f"fitting the smoke set (demo, --limit 6) takes at most {budget} network passes"
                 if det.info.trains else "trains nothing"))
        if DETECTORS.entry(name).meta.get("smoke"):
            print(f"  not smoke-sized: {DETECTORS.entry(name).meta['smoke']}")
        print("  attacks: " + ("white-box (pgd, fgsm) and transfer" if det.differentiable
                              else "transfer only (not differentiable end to end)"))
        if hasattr(det, "feature_pass"):
            others = [n for n in passes[det.feature_pass()] if n != name]
            print(f"  features: {det.feature_pass()}; shares that pass with: {', '.join(others) or 'no other head'}")


def cmd_data_inspect(args: argparse.Namespace) -> int:
    from bench.core.cache import Cache
    from bench.data.dataset import load_dataset
    from bench.data.inspect_data import inspect_report

    dataset = load_dataset(args.path, Cache(args.cache_dir), seed=args.seed, workers=args.workers,
                           progress=not args.quiet, allow_outside_paths=args.allow_outside_paths)
    print(inspect_report(dataset))
    return 0


def add_dataset_loading_args(p: argparse.ArgumentParser) -> None:
    """The flags of a command that loads one dataset (data inspect, audit)."""
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--cache-dir")
    p.add_argument("--allow-outside-paths", action="store_true",
                   help="read manifest paths that resolve outside the dataset folder (skipped by default)")
    p.add_argument("--quiet", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    from bench.cli.audit import add_audit_command
    from bench.cli.check import add_check_command
    from bench.cli.scaffold import add_new_command
    from bench.cli.data import add_fetch_command
    from bench.cli.external import add_external_commands
    from bench.cli.report import add_report_commands
    from bench.cli.reproduce import add_reproduce_command
    from bench.cli.weights import add_weights_commands

    parser = argparse.ArgumentParser(
        prog="bench", description="Robustness benchmark for detectors of AI-generated images: run detectors over "
                                  "a grid of perturbations, score both real-vs-generated and source attribution, "
                                  "and write leaderboards, robustness curves and regression checks.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_run_command(sub)
    p = sub.add_parser("list", help="list detectors, perturbations (with severity tables) or datasets")
    p.add_argument("what", choices=["detectors", "perturbations", "datasets"])
    p.add_argument("pattern", nargs="?", help="wildcard filter, e.g. 'clip_*'")
    p.add_argument("--preset", default="default", choices=list(PRESETS),
                   help="severity tables to show for perturbations")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="detectors: also print each one's paper and departures from it; datasets: how to get "
                        "each")
    p.add_argument("--markdown", action="store_true",
                   help="detectors: the Markdown table of the README (the detectors 'all' selects)")
    add_plugin_arg(p)
    p.set_defaults(func=cmd_list)
    data = sub.add_parser("data", help="inspect or fetch datasets").add_subparsers(dest="data_command", metavar="ACTION")
    p = data.add_parser("inspect", help="counts per label and generator, formats, sizes, and shortcut warnings")
    p.add_argument("path", help="dataset folder, CSV manifest or registered name")
    p.add_argument("--seed", type=int, default=0, help="seed of the split shown (default: 0)")
    add_dataset_loading_args(p)
    p.set_defaults(func=cmd_data_inspect)
    add_fetch_command(data)
    add_audit_command(sub)
    add_report_commands(sub)
    add_reproduce_command(sub)
    add_external_commands(sub)
    add_weights_commands(sub)
    add_check_command(sub)
    add_new_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `bench list ... | head`: the reader left; nothing is wrong and nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes stdout
        return 0
    except OSError as exc:  # full disk, read-only folder, vanished file: the system's one line, not a traceback
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where} (finished work is cached; fix this and rerun to resume)",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: finished cells are cached; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
