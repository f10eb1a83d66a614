"""``http:`` detectors against a real HTTP server on 127.0.0.1 started by the test (tests/external_scorer.py's
ScoringServer, the same formula as helpers.ResidualDetector): both protocols, retries with backoff, timeouts,
concurrency and rate limits, and a token that reaches the server and nothing else."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from bench.cli.main import main
from bench.core.detector import FitContext
from bench.core.errors import BenchError
from bench.data.imageset import PerturbedImageSet
from bench.external.http import HttpDetector
from external_scorer import ScoringServer
from helpers import ResidualDetector
from perturbations import get_perturbation

TOKEN = "s3cr3t-t0ken-value"


# The detectors this module declares leave the registry with it (conftest.py).
pytestmark = [pytest.mark.usefixtures("declared_detectors_stay_here"), pytest.mark.slow]  # slow: runs


@pytest.fixture
def server():
    server = ScoringServer(token=TOKEN, failures=2, delay=1.0)
    yield server
    server.close()


@pytest.fixture(scope="module")
def cell(tiny_splits):
    return PerturbedImageSet(tiny_splits["test"].subset(range(6)), get_perturbation("blur"), 1, seed=0)


def reference(images) -> np.ndarray:
    return ResidualDetector().predict(images, FitContext()).score


@pytest.mark.parametrize("options", [{}, {"batch": 4}, {"format": "multipart", "concurrency": 3}])
def test_a_served_detector_scores_exactly_what_it_computes_in_process(server, cell, options):
    scores = HttpDetector(f"{server.url}/score", **options).predict(cell, FitContext()).score
    assert np.array_equal(scores, reference(cell))
    expected_requests = 6 if options.get("format") == "multipart" else -(-6 // options.get("batch", 16))
    assert len(server.requests) == expected_requests


def test_5xx_is_retried_with_backoff_and_gives_up_after_the_retries(server, cell):
    detector = HttpDetector(f"{server.url}/flaky", retries=2, backoff=0.0)
    assert np.array_equal(detector.predict(cell, FitContext()).score, reference(cell))
    assert len(server.requests) == 3  # 503, 503, then the answer
    server.flaky = 0
    with pytest.raises(BenchError, match=r"/flaky: HTTP 503 Service Unavailable: \{\"error\": \"warming up\"\} "
                                         r"\(2 tries\)$"):
        HttpDetector(f"{server.url}/flaky", retries=1, backoff=0.0).predict(cell, FitContext())


def test_429_waits_as_long_as_retry_after_says(server, cell):
    started = time.monotonic()
    HttpDetector(f"{server.url}/busy", retries=1, backoff=0.0).predict(cell, FitContext())
    assert time.monotonic() - started >= 1.0 and len(server.requests) == 2


def test_a_slow_server_times_out_per_request(server, cell):
    started = time.monotonic()
    with pytest.raises(BenchError, match=r"/slow: no answer within 0.3 s \(timeout\) \(2 tries\)$"):
        HttpDetector(f"{server.url}/slow", timeout=0.3, retries=1, backoff=0.0).predict(cell, FitContext())
    assert time.monotonic() - started < 0.9 + 0.5  # two requests of 0.3 s, not the server's 1 s each


def test_an_unreachable_server_and_a_non_json_answer_are_one_line_errors(server, cell):
    with pytest.raises(BenchError, match=r"cannot connect: .*\(1 try\)$"):
        HttpDetector("http://127.0.0.1:9/score", retries=0).predict(cell, FitContext())
    with pytest.raises(BenchError, match=r"the answer for images 0-5 is not JSON: '<html>oops</html>'$"):
        HttpDetector(f"{server.url}/bad").predict(cell, FitContext())


def test_concurrency_and_rate_are_limits(server, cell):
    HttpDetector(f"{server.url}/slow", batch=1, concurrency=2, timeout=10).predict(cell, FitContext())
    assert server.max_in_flight == 2  # six one-second requests, two at a time
    started = time.monotonic()
    HttpDetector(f"{server.url}/score", batch=1, concurrency=6, rate=10).predict(cell, FitContext())
    assert time.monotonic() - started >= 0.5  # six starts, 0.1 s apart


def test_the_token_comes_from_the_environment_and_is_masked_in_errors(server, cell, monkeypatch):
    detector = HttpDetector(f"{server.url}/auth", token_env="EXT_TEST_TOKEN", retries=2, backoff=0.0)
    with pytest.raises(BenchError, match="the environment variable EXT_TEST_TOKEN .* is not set"):
        detector.predict(cell, FitContext())
    monkeypatch.setenv("EXT_TEST_TOKEN", TOKEN)
    assert np.array_equal(detector.predict(cell, FitContext()).score, reference(cell))
    assert server.requests[-1][1]["Authorization"] == f"Bearer {TOKEN}"
    monkeypatch.setenv("EXT_TEST_TOKEN", TOKEN + "-wrong")
    masked = r"answered HTTP 401 Unauthorized: .*bad credentials: Bearer \*\*\*"
    with pytest.raises(BenchError, match=masked) as failure:
        detector.predict(cell, FitContext())
    assert TOKEN not in str(failure.value)
    assert server.requests[-1][0] == "/auth" and len(server.requests) == 2  # a 401 is not retried


def test_the_token_never_reaches_the_store_the_cache_or_the_output(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EXT_TEST_TOKEN", TOKEN)
    spec = f"http[token_env=EXT_TEST_TOKEN,concurrency=2]:{server.url}/auth"
    assert main(["run", "--detectors", "ext_served", "--external", f"ext_served={spec}", "--dataset", "demo",
                 "--limit", "3", "--perturb", "jpeg:2", "--quiet", "--no-audit", "--out", str(tmp_path / "run"),
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    assert all(headers["Authorization"] == f"Bearer {TOKEN}" for _, headers in server.requests)
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["detectors"]["ext_served"]["status"] == "ok"
    assert record["detectors"]["ext_served"]["config"]["params"]["target"] == f"{server.url}/auth"
    files = [p for p in Path(tmp_path).rglob("*") if p.is_file()]
    assert any(p.name == "report.html" for p in files)
    assert [p for p in files if TOKEN.encode() in p.read_bytes()] == []
    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err
