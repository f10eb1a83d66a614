"""``bench audit DATASET``: the metadata-only and content-only baselines (bench.data.audit)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

AUDIT_EXAMPLES = """examples:
  bench audit path/to/dataset                              # both baselines, all images and per generator
  bench audit path/to/dataset --fail-above 0.7             # CI: exit 1 when metadata alone scores AUC > 0.7
  bench audit demo --baselines metadata --json audit.json  # headers only (no pixel decoding), saved as JSON
  bench audit DIR --fail-above 0.8 --fail-on any           # fail when either baseline exceeds 0.8
  bench audit DIR --normalize png                          # before/after re-encoding every image as plain PNG
  bench audit DIR --normalize size:512,jpeg:95             # resize+crop to 512, then one JPEG q95 for all

exit codes: 0 no baseline above --fail-above, 1 a baseline above it, 2 a usage or input error
"""


def _auc(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"an AUC is between 0 and 1, got {value}")
    return value


def add_audit_command(sub: Any) -> None:
    from bench.cli.main import add_dataset_loading_args

    p = sub.add_parser(
        "audit", help="how well metadata alone, or content alone, separates real from generated images",
        description="Measure a dataset's shortcuts: a metadata-only baseline (file format, size, bytes per pixel, "
                    "JPEG quality, subsampling, EXIF/ICC/XMP/text chunks, C2PA and generator tags; the pixels are "
                    "never decoded) with gradient boosting, and a content-only baseline (8x8 colour thumbnail and "
                    "colour histograms) with logistic regression. Both are scored by group-aware 5-fold "
                    "cross-validation (near-duplicates kept in one fold) as ROC-AUC with a bootstrap 95%% interval, "
                    "on all images and per generator against the real images. An AUC near 0.5 means no shortcut.",
        epilog=AUDIT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", help="dataset folder, CSV manifest or registered name")
    p.add_argument("--baselines", default="metadata,content",
                   help="comma-separated: metadata, content (default: both)")
    p.add_argument("--fail-above", type=_auc, metavar="AUC",
                   help="exit 1 when the checked baseline's AUC (all images) exceeds this")
    p.add_argument("--fail-on", choices=["metadata", "content", "any"], default="metadata",
                   help="which baseline --fail-above checks (default: metadata)")
    p.add_argument("--seed", type=int, default=0, help="seed for folds, models and bootstrap (default: 0)")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap replicates for the intervals (default: 200)")
    p.add_argument("--top", type=int, default=5, help="metadata features to list (default: 5)")
    p.add_argument("--json", metavar="PATH", help="also write the audit as JSON")
    p.add_argument("--normalize", metavar="SPEC",
                   help="also audit the images normalised as `bench run --normalize SPEC` would (png, jpeg:Q, "
                        "size:N, crop:N, comma-separated) and show before/after; --fail-above then checks after")
    add_dataset_loading_args(p)
    p.set_defaults(func=cmd_audit)


def cmd_audit(args: argparse.Namespace) -> int:
    from bench.core.cache import Cache
    from bench.core.errors import BenchError
    from bench.data.audit import BASELINES, audit_comparison, audit_dataset, audit_report
    from bench.data.dataset import load_dataset
    from bench.data.normalize import canonical_spec, normalize_dataset

    baselines = tuple(b.strip() for b in args.baselines.split(",") if b.strip())
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown or not baselines:
        raise BenchError(f"unknown baseline(s) {', '.join(unknown) or '(none given)'}; choose from "
                         f"{', '.join(BASELINES)}")
    if args.fail_on in BASELINES and args.fail_above is not None and args.fail_on not in baselines:
        raise BenchError(f"--fail-on {args.fail_on} needs that baseline in --baselines")
    if args.bootstrap < 0 or args.workers < 1 or args.top < 0:
        raise BenchError("--bootstrap and --top must be >= 0, --workers >= 1")
    normalize = canonical_spec(args.normalize) if args.normalize is not None else None
    cache = Cache(args.cache_dir)
    dataset = load_dataset(args.dataset, cache, seed=args.seed, workers=args.workers,
                           progress=not args.quiet, allow_outside_paths=args.allow_outside_paths)
    audit = lambda ds: audit_dataset(ds, seed=args.seed, workers=args.workers, n_boot=args.bootstrap,
                                     baselines=baselines)
    result = audit(dataset)
    if normalize:
        before, result = result, audit(normalize_dataset(dataset, normalize, cache, args.workers, not args.quiet))
        print(audit_comparison(before, result, normalize, top=args.top))
        saved = {"normalize": normalize, "before": before.to_dict(), "after": result.to_dict()}
    else:
        print(audit_report(result, top=args.top))
        saved = result.to_dict()
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(saved, fh, indent=2)
    if args.fail_above is None:
        return 0
    checked = baselines if args.fail_on == "any" else (args.fail_on,)
    over = [b for b in checked if result.auc(b) > args.fail_above]
    for b in over:
        print(f"audit failed: the {b} baseline scores AUC {result.auc(b):.3f} > {args.fail_above}", file=sys.stderr)
    return 1 if over else 0
