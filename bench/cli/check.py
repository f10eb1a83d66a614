"""``bench check detector NAME``: the contract checker (bench.testing) on a registered detector, as a table.

Exit status 0 when every check passes (refusals with a reason, n/a and info rows included), 1 when one fails.
"""

from __future__ import annotations

import argparse

from bench.core.detector import PROFILES


def cmd_check_detector(args: argparse.Namespace) -> int:
    from bench.cli.run_flags import use_cli_plugins
    from bench.core.registries import DETECTORS, load_plugins
    from bench.testing import check_detector

    use_cli_plugins(args.plugin)
    load_plugins()
    entry = DETECTORS.entry(args.name)  # an unknown name: one line with did-you-mean
    print(f"checking {args.name} ({entry.source}, profile {args.profile}, {args.device})")
    report = check_detector(args.name, profile=args.profile, device=args.device, raise_on_failure=False)
    print(report.table())
    failed = report.failed
    print(f"\n{args.name}: " + (f"{len(failed)} check(s) failed: {', '.join(r.check for r in failed)}" if failed
                                else "keeps the detector contract"))
    return 1 if failed else 0


def add_check_command(sub: argparse._SubParsersAction) -> None:
    from bench.cli.main import add_plugin_arg

    check = sub.add_parser("check", help="check a detector against the contract the harness relies on"
                           ).add_subparsers(dest="check_what", metavar="WHAT")
    p = check.add_parser("detector", help="score direction, determinism, batch-size and order invariance, untouched "
                                          "inputs, odd sizes and modes, finite scores, cache round trip, "
                                          "differentiable_score, speed (README, 'Your own detector')")
    p.add_argument("name", help="a registered detector (see `bench list detectors`)")
    p.add_argument("--profile", choices=list(PROFILES), default="fast",
                   help="the detector's settings (default: fast, the CPU smoke settings)")
    p.add_argument("--device", default="cpu", help="where to fit and score (default: cpu)")
    add_plugin_arg(p)
    p.set_defaults(func=cmd_check_detector)
