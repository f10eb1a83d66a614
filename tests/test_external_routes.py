"""One deterministic model, four routes, one answer: helpers.ResidualDetector in process, and the same formula
(tests/external_scorer.py) as a ``cmd:`` program, behind a real ``http:`` server, and scored on an exported grid
brought back with ``bench import-scores``. Each route runs ``bench run`` on the demo data; the per-image scores
and every metric (with its bootstrap interval) must agree value for value, tolerance 0."""

from __future__ import annotations

import csv
import shlex
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bench.cli.main import main
from bench.core.registries import DETECTORS
from external_scorer import ScoringServer, residual_score

SCORER = Path(__file__).resolve().parent / "external_scorer.py"
GRID = ["--dataset", "demo", "--limit", "3", "--perturb", "jpeg:2,blur:1", "--no-report", "--quiet", "--no-audit"]
IN_PROCESS = "test_residual"


# The detectors this module declares leave the registry with it (conftest.py).
pytestmark = [pytest.mark.usefixtures("declared_detectors_stay_here"), pytest.mark.slow]  # slow: whole runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """The run folder of each route (all sharing one cache, as one user's runs would)."""
    root = tmp_path_factory.mktemp("routes")
    common = [*GRID, "--cache-dir", str(root / "cache")]
    DETECTORS.add(IN_PROCESS, "helpers:ResidualDetector", family="test", trains=False, weights=(), gpu="no",
                  tasks=("binary",), test=True, summary="mean absolute Laplacian residual (tests)")
    assert main(["run", "--detectors", IN_PROCESS, *common, "--out", str(root / "in-process")]) == 0
    program = f"cmd:{shlex.quote(sys.executable)} {shlex.quote(str(SCORER))} {{list}} {{out}}"
    assert main(["run", "--detectors", "residual", "--external", f"residual={program}", *common,
                 "--out", str(root / "cmd")]) == 0
    server = ScoringServer()
    try:
        assert main(["run", "--detectors", "residual", "--external", f"residual=http[batch=5]:{server.url}/score",
                     *common, "--out", str(root / "http")]) == 0
    finally:
        server.close()
    grid = root / "grid"
    assert main(["export-grid", *common, "--out", str(grid)]) == 0
    with open(grid / "manifest.csv", newline="") as fh, open(grid / "scores.csv", "w") as out:
        out.write("file,score\n")
        for row in csv.DictReader(fh):  # scored "elsewhere": the exported PNGs only
            out.write(f"{row['file']},{residual_score(np.asarray(Image.open(grid / row['file'])))!r}\n")
    assert main(["import-scores", str(grid / "scores.csv"), "--as", "residual", *common,
                 "--out", str(root / "scores")]) == 0
    return {route: root / route for route in ("in-process", "cmd", "http", "scores")}


def table(run: Path, name: str) -> pd.DataFrame:
    frame = pd.read_parquet(run / name).drop(columns=["run_id", "detector"], errors="ignore")
    return frame.sort_values([c for c in ("image_id", "perturbation", "severity", "generator", "metric")
                              if c in frame.columns]).reset_index(drop=True)


@pytest.mark.parametrize("route", ["cmd", "http", "scores"])
@pytest.mark.parametrize("name", ["scores.parquet", "results.parquet"])
def test_every_route_gives_the_in_process_numbers_exactly(runs, route, name):
    expected, got = table(runs["in-process"], name), table(runs[route], name)
    assert len(expected) > 0 and expected["score" if name == "scores.parquet" else "value"].notna().any()
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


@pytest.mark.parametrize("route", ["http", "scores"])
def test_bench_compare_finds_no_difference_at_tolerance_0(runs, route):
    for run, baseline in ((runs[route], runs["cmd"]), (runs["cmd"], runs[route])):  # both ways: no drop, no gain
        assert main(["compare", str(run), "--baseline", str(baseline), "--default-tol", "0"]) == 0
