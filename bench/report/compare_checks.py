"""What makes a comparison invalid before any cell is judged (``bench compare`` exit 2).

- a metric name in ``--metrics``, ``--tol`` or ``--band-metrics`` that neither the
  benchmark nor the reference knows (a typo would otherwise silently compare nothing);
- a negative tolerance;
- a reference without a single number (e.g. saved from a run whose detectors all failed),
  or a ``--metrics`` filter that leaves no reference cell;
- cells whose perturbation level means another physical parameter in the run than in the
  reference (``--preset imagenet-c`` against a ``default`` reference: JPEG q=25 vs q=100);
- data that differs: a dataset's content hash, or the images actually trained on and
  evaluated (a ``--limit`` run against a full reference);
- a run or reference holding several training seeds (``bench run --seeds``): the gate judges one
  training draw against the reference's seed band, so a multi-seed run is refused, not averaged.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import pandas as pd

from bench.core.errors import BenchError
from bench.core.registry import unknown_name_message
from bench.report.runs import seeds_of
from bench.run.metrics import METRICS

# run.json keys that hash the images a run actually trained on and evaluated (after --limit and
# --train/--test-generators), checked when the reference records them.
EVALUATED_HASHES = {"train_hash": "training and validation images", "test_hash": "evaluated test images"}


def check_metric_names(names: Iterable[str] | None, reference_metrics: Iterable[str], option: str) -> None:
    """Every name must be a metric of the benchmark or of the reference; else a did-you-mean error."""
    known = sorted(set(METRICS) | set(reference_metrics))
    for name in names or ():
        if name not in known:
            raise BenchError(f"{option}: " + unknown_name_message("metric", name, known))


def check_single_seed(results: pd.DataFrame, what: str) -> None:
    """One training seed per table: the gate compares one training draw with the reference (or its band)."""
    seeds = seeds_of(results)
    if len(seeds) > 1:
        raise BenchError(f"the {what} holds {len(seeds)} training seeds ({', '.join(map(str, seeds))}); bench compare "
                         "and bench baseline save take a run of one training seed (bench run --train-seed S); "
                         "seed bands come from one run per seed (bench baseline save RUN NAME --band RUN...)")


def check_tolerances(tolerances: dict[str, float], default_tol: float) -> None:
    for metric, value in {**tolerances, "--default-tol": default_tol}.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise BenchError(f"tolerance for {metric} must be a non-negative number, got {value!r}")


def check_reference_cells(ref: pd.DataFrame, metrics: list[str] | None) -> None:
    """A reference with no number at all gates nothing: refuse it instead of reporting OK."""
    if ref.empty or ref["value"].isna().all():
        selection = f" for --metrics {','.join(metrics)}" if metrics else ""
        raise BenchError(f"the reference holds no cells{selection}: nothing to compare against (a reference saved "
                         "from a run whose detectors all failed is not a reference)")


def table_mismatches(merged: pd.DataFrame) -> list[str]:
    """Perturbation levels whose physical parameter (param_label) differs between the reference and the run."""
    if "param_label_ref" not in merged or "param_label_run" not in merged:
        return []
    both = merged.dropna(subset=["param_label_ref", "param_label_run"])
    differ = both[both["param_label_ref"] != both["param_label_run"]]
    levels = differ.drop_duplicates(["perturbation", "severity"]).sort_values(["perturbation", "severity"])
    return [f"{row.perturbation}:{row.severity} is {row.param_label_ref} in the reference, {row.param_label_run} "
            "in the run" for row in levels.itertuples()]


def hash_mismatches(run_record: dict[str, Any], ref_record: dict[str, Any]) -> list[str]:
    """Datasets of the reference's run.json whose hash differs in the run's, and differing evaluated images."""
    ref_datasets = ref_record.get("datasets") or {}
    run_datasets = run_record.get("datasets") or {}
    mismatches = []
    for dataset in sorted(ref_datasets):
        ref_hash = (ref_datasets[dataset] or {}).get("hash")
        run_hash = (run_datasets.get(dataset) or {}).get("hash")
        if ref_hash is not None and run_hash != ref_hash:
            mismatches.append(f"{dataset}: reference {ref_hash}, run {run_hash or 'absent'}")
    for key, what in EVALUATED_HASHES.items():
        ref_hash, run_hash = ref_record.get(key), run_record.get(key)
        if ref_hash is not None and run_hash != ref_hash:
            mismatches.append(f"{what}: reference {ref_hash}, run {run_hash or 'absent'} (--limit or generator "
                              "selection differs?)")
    return mismatches
