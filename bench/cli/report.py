"""Argparse wiring for ``bench report``, ``bench compare``, ``bench compare-detectors`` and
``bench baseline save``.

The handlers import the report and compare modules when they run, not when
the parser is built, so that ``bench --help`` stays fast (no pandas, no
matplotlib). Options left unset fall back to the library's defaults.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench.core.errors import BenchError

COMPARE_EPILOG = """\
how cells are judged (the reference decides; see README, "Gating your CI"):
  exact      detectors whose numbers did not move under any training seed of the
             reference's band: any change fails (a gain too)
  band       trained networks: --band-metrics must stay above the training-seed
             band minus the tolerance
  ungated    a trained network's other metrics: listed, not judged
  tolerance  a reference saved without a band: any metric may drop by the tolerance

exit codes:
  0  every reference cell is present and none regressed
  1  a cell regressed, or an exact cell changed
  2  invalid comparison: reference cells missing from the run, a dataset hash
     that differs from the reference, or unreadable inputs

"worse" follows each metric's higher_is_better: a rising EER or ECE is a drop.
"""


def _given(**options: Any) -> dict[str, Any]:
    """The options the user set, so that the library defaults apply to the others."""
    return {name: value for name, value in options.items() if value is not None}


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def cmd_report(args: argparse.Namespace) -> int:
    from bench.core.atomic import ensure_writable_dir
    from bench.report.write import write_report

    if args.out:
        ensure_writable_dir(args.out, "report output directory (--out)")
    elif Path(args.run_dirs[0]).is_dir():  # a missing run directory is reported when it is read, not created
        ensure_writable_dir(args.run_dirs[0], "report output directory (the first RUN_DIR)")
    paths = write_report(args.run_dirs, args.out, include_random=args.include_random,
                         **_given(metric=args.metric, reference_detector=args.reference_detector))
    for path in paths:
        print(path)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Exit 0, 1 or 2 (COMPARE_EPILOG); a BenchError (unreadable input) reaches ``bench.cli.main.main``, which exits 2."""
    from bench.report.compare import compare_dirs, format_modes, format_summary, format_table, parse_tolerances

    for flag, given in (("--metrics", args.metrics), ("--band-metrics", args.band_metrics)):
        if given == []:  # "" or ",": checking no metric would pass every run
            raise BenchError(f"{flag} names no metric; leave it out for the default")
    tolerances = parse_tolerances(args.tol)
    defaults = _given(default_tol=args.default_tol, band_metrics=args.band_metrics)
    result = compare_dirs(args.run, args.baseline, tolerances, metrics=args.metrics, **defaults)
    print(format_table(result, args.show))
    print(format_modes(result))
    print(format_summary(result))
    return result.exit_code


COMPARE_DETECTORS_EPILOG = """\
examples:
  bench compare-detectors results/runs/RUN npr spectral
  bench compare-detectors results/runs/RUN npr spectral --metric tpr_at_fpr_5
  bench compare-detectors results/runs/RUN npr spectral --generator sd15
  bench compare-detectors results/runs/RUN npr spectral --seed 1    # one training seed of a --seeds run

per cell: A, B, diff = A - B, 95% CI, p-value (H0: no difference), Holm-adjusted
p-value across the cells listed, * where significant at 0.05 after Holm.
roc_auc: DeLong's test for correlated ROC curves (CI = diff +- 1.96 se), with the
paired bootstrap CI beside it; other metrics: the paired bootstrap (the run's own
draws: same images, same groups, same seed for both detectors).
a run with several training seeds (--seeds): each value is the mean over the seeds,
paired per seed (same images); a run with a split per seed (--vary-split) needs --seed.
"""


def cmd_compare_detectors(args: argparse.Namespace) -> int:
    from bench.report.pairwise import compare_detectors, format_comparison
    from bench.report.runs import read_run

    results, scores, record = read_run(args.run)
    frame = compare_detectors(results, scores, record, args.a, args.b, **_given(metric=args.metric,
                                                                               generator=args.generator,
                                                                               seed=args.seed))
    print(format_comparison(frame))
    return 0


def cmd_baseline_save(args: argparse.Namespace) -> int:
    from bench.core.atomic import ensure_writable_dir
    from bench.report.reference import DEFAULT_REFERENCE_ROOT, save_baseline
    from bench.run.schema import RUN_JSON

    ensure_writable_dir(args.root or DEFAULT_REFERENCE_ROOT, "reference root (--root)")
    target = save_baseline(args.run, args.name, band_runs=args.band or (), **_given(reference_root=args.root))
    band = f" with a seed band of {len(args.band) + 1} runs" if args.band else ""
    print(f"saved reference {args.name!r}{band} to {target}; commit it to make it the reference")
    git = json.loads((target / RUN_JSON).read_text(encoding="utf-8")).get("git") or {}
    if git.get("dirty"):
        print("warning: the run came from a working tree with uncommitted changes", file=sys.stderr)
    return 0


def _add_report(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write leaderboards, figures and report.html from one or more runs",
        description=(
            "Write leaderboard.md, leaderboard.tex (booktabs), leaderboard.html, figures/ (robustness "
            "curves, per-generator heatmaps, confusion matrices; PNG and PDF) and a self-contained "
            "report.html. Several runs are merged (e.g. one run per detector); a cell present in "
            "more than one run is taken from the later one."
        ),
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directory or stored reference")
    parser.add_argument("--out", metavar="DIR", help="output directory (default: the first RUN_DIR)")
    parser.add_argument("--metric", help="metric of the leaderboard and heatmap (default: roc_auc)")
    parser.add_argument(
        "--include-random", action="store_true",
        help="keep random-weight sanity detectors in tables and figures (left out by default)",
    )
    parser.add_argument(
        "--reference-detector", metavar="NAME",
        help="add the mCE column: corruption error relative to this detector (ImageNet-C's mCE)",
    )
    parser.set_defaults(func=cmd_report)


def _add_compare_detectors(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "compare-detectors",
        help="paired comparison of two detectors of one run, per cell, with p-values (Holm)",
        description="Compare detectors A and B of one run image by image, cell by cell (needs scores.parquet).",
        epilog=COMPARE_DETECTORS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run", metavar="RUN", help="run directory (with scores.parquet)")
    parser.add_argument("a", metavar="A", help="first detector")
    parser.add_argument("b", metavar="B", help="second detector")
    parser.add_argument("--metric", help="binary metric to compare (default: roc_auc)")
    parser.add_argument("--generator", help="'all' (default) or one generator's images against all reals")
    parser.add_argument("--seed", type=int, help="compare one training seed of a run made with --seeds "
                                                 "(default: the mean over its seeds)")
    parser.set_defaults(func=cmd_compare_detectors)


def _add_compare(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="check a run against a stored reference; non-zero exit on regression",
        description=(
            "Match cells on (detector, dataset, generator, perturbation, severity, metric),\n"
            "print the differences worst first and a summary line, and exit 0, 1 or 2."
        ),
        epilog=COMPARE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run", metavar="RUN", help="run directory (or stored reference) to check")
    parser.add_argument(
        "--baseline", required=True, metavar="REF", help="reference (or run) directory, e.g. results/reference/ci"
    )
    parser.add_argument(
        "--tol", metavar="SPEC",
        help="largest allowed drop per metric, e.g. roc_auc=0.02,acc=0.03",
    )
    parser.add_argument(
        "--default-tol", type=float, metavar="X",
        help="largest allowed drop for metrics not named in --tol (default: 0.02)",
    )
    parser.add_argument(
        "--metrics", type=_comma_list, metavar="LIST",
        help="only check these metrics, comma-separated (default: all)",
    )
    parser.add_argument(
        "--band-metrics", type=_comma_list, metavar="LIST",
        help="metrics gated against the seed band for trained networks (default: roc_auc,ap)",
    )
    parser.add_argument(
        "--show", type=int, default=25, metavar="N",
        help="print the N worst cells (default: 25; 0 prints all)",
    )
    parser.set_defaults(func=cmd_compare)


def _add_baseline(subparsers: Any) -> None:
    parser = subparsers.add_parser("baseline", help="manage stored reference runs")
    actions = parser.add_subparsers(dest="baseline_command", metavar="ACTION", required=True)
    save = actions.add_parser(
        "save",
        help="store a run as reference NAME",
        description=(
            "Copy results.parquet, results.csv and run.json (not the scores) of RUN into ROOT/NAME, "
            "replacing a reference of that name. Commit the folder so that `bench compare` can use it.\n\n"
            "example (the CI reference: one run per training seed, the first one is the reference):\n"
            "  for s in 0 1 2 3 4 5 6 7; do bench run --suite ci --train-seed $s --out runs/ci-s$s; done\n"
            "  bench baseline save runs/ci-s0 ci --band runs/ci-s{1,2,3,4,5,6,7}"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    save.add_argument("run", metavar="RUN", help="finished run directory")
    save.add_argument("name", metavar="NAME", help="reference name, e.g. ci")
    save.add_argument("--root", metavar="DIR", help="folder of references (default: results/reference)")
    save.add_argument(
        "--band", nargs="+", metavar="RUN",
        help="runs of the same configuration under other --train-seed values: store the per-cell spread over "
             "all the seeds, so that trained networks are gated within it and the others exactly",
    )
    save.set_defaults(func=cmd_baseline_save)


def add_report_commands(subparsers: Any) -> None:
    """Add ``report``, ``compare`` and ``baseline`` to the ``bench`` subparsers."""
    _add_report(subparsers)
    _add_compare(subparsers)
    _add_compare_detectors(subparsers)
    _add_baseline(subparsers)
