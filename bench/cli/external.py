"""``bench export-grid`` and ``bench import-scores``: a grid scored outside the harness (README, "Detectors with
no code in the harness"). Both take ``bench run``'s flags, so the export and the import name the same grid."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli.main import add_run_arguments, cmd_run, run_config_from_args
from bench.core.errors import BenchError

EXPORT_EXAMPLES = """examples:
  bench export-grid --dataset demo --perturb jpeg:2,blur:1 --limit 3 --out grid/
  (score every file of grid/manifest.csv elsewhere; write grid/scores.csv with the columns file,score)
  bench import-scores grid/scores.csv --as mine --dataset demo --perturb jpeg:2,blur:1 --limit 3
"""


def add_external_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export-grid", help="write every image a run would score (validation images and each test cell) as PNG, "
                            "with manifest.csv, to score them elsewhere",
        description="Takes bench run's flags (the data and grid flags decide the images; detector and report flags "
                    "do nothing here). Writes OUT/images/CELL/SHA256.png, OUT/manifest.csv (file, split, sha256 of "
                    "the original, perturbation, severity, param_label, cell_key, png_sha256) and OUT/grid.json. "
                    "No label, generator or image id is written.",
        epilog=EXPORT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p)
    p.set_defaults(func=cmd_export_grid)
    p = sub.add_parser(
        "import-scores", help="turn a scores file for an exported grid into a detector's cells and run it",
        description="bench run with the external detector NAME=scores:FILE selected, after checking that FILE "
                    "scores exactly the images of this run's grid (an error names the cells that lack scores or "
                    "that the run does not have). Takes bench run's flags; --detectors adds detectors to the run.",
        epilog=EXPORT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scores", metavar="FILE", help="CSV with the columns file (as in manifest.csv), score and "
                                                  "optionally source")
    p.add_argument("--as", dest="name", required=True, metavar="NAME", help="the detector's name in the results")
    p.add_argument("--grid", metavar="DIR", help="the folder bench export-grid wrote (default: FILE's folder)")
    add_run_arguments(p)
    p.set_defaults(func=cmd_import_scores)


def cmd_export_grid(args: argparse.Namespace) -> int:
    from bench.core.cache import Cache
    from bench.external.grid import export_grid

    if not args.out:
        raise BenchError("export-grid: give --out DIR, the folder to write the images into")
    n = export_grid(run_config_from_args(args), Cache(args.cache_dir), Path(args.out), progress=not args.quiet)
    print(f"exported {n} images to {args.out}; score every file of {Path(args.out) / 'manifest.csv'}, write a CSV "
          "with the columns file,score[,source], then: bench import-scores FILE --as NAME with these flags")
    return 0


def cmd_import_scores(args: argparse.Namespace) -> int:
    from bench.core.cache import Cache
    from bench.external.grid import check_coverage
    from bench.external.scores import ScoresDetector
    from bench.external.spec import parse_spec

    cfg = run_config_from_args(args)
    spec = {"scores": args.scores, **({"grid": args.grid} if args.grid else {})}
    cfg.external = {**cfg.external, args.name: spec}
    also = [] if args.detectors is None else cfg.detectors  # --detectors adds to the run
    cfg.detectors = [args.name] + [d for d in also if d != args.name]
    cfg.validate()
    _, options = parse_spec(args.name, spec)
    check_coverage(ScoresDetector(**options), cfg, Cache(args.cache_dir), progress=not args.quiet)
    return cmd_run(args, cfg)
