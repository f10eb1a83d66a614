"""A deterministic scorer that lives outside the harness, for the external-detector tests.

``residual_score`` is the one formula (mean absolute 4-neighbour Laplacian of the uint8 image in float64, over
255); the same function scores in process (``helpers.ResidualDetector``), as a program (``python
external_scorer.py LIST OUT``, a ``cmd:`` detector) and behind a real HTTP server (``serve``), so the four routes
of the harness can be compared value for value. Only numpy, Pillow and the standard library: it runs as a
program without the harness on its path.
"""

from __future__ import annotations

import argparse
import base64
import email.parser
import email.policy
import io
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from PIL import Image


def residual_score(image: np.ndarray) -> float:
    x = np.asarray(image).astype(np.float64)
    residual = 4 * x[1:-1, 1:-1] - x[:-2, 1:-1] - x[2:, 1:-1] - x[1:-1, :-2] - x[1:-1, 2:]
    return float(np.abs(residual).mean() / 255.0)


def png_score(data: bytes) -> float:
    return residual_score(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))


def main(argv: list[str] | None = None) -> int:
    """``LIST [OUT]``: score every PNG listed, write ``path,score`` rows (repr: exact) to OUT or stdout. The
    other flags make it misbehave in the ways the harness must report."""
    p = argparse.ArgumentParser()
    p.add_argument("list")
    p.add_argument("out", nargs="?")
    p.add_argument("--count", help="append a line to this file on every run")
    p.add_argument("--crash", help="a file holding N: with --count, exit 1 on the N-th run while it exists")
    p.add_argument("--hex", action="store_true", help="write scores as float.hex")
    p.add_argument("--fail", type=int, help="print to stderr and exit with this status")
    p.add_argument("--sleep", type=float, default=0.0)
    p.add_argument("--drop", action="store_true", help="leave the last image out")
    p.add_argument("--extra", action="store_true", help="add a row for a file that was not given")
    p.add_argument("--word", action="store_true", help="write a word instead of the first score")
    p.add_argument("--no-out", action="store_true", help="write nothing")
    p.add_argument("--source", help="name this source for every image but the first")
    args = p.parse_args(argv)
    if args.count:
        with open(args.count, "a") as fh:
            fh.write("run\n")
        calls = len(open(args.count).read().splitlines())
        if args.crash and os.path.exists(args.crash) and int(open(args.crash).read()) == calls:
            print(f"crashed on run {calls}", file=sys.stderr)
            return 1
    time.sleep(args.sleep)
    if args.fail is not None:
        print("loading model\nCUDA error: out of memory", file=sys.stderr)
        return args.fail
    if args.no_out:
        return 0
    paths = [line.strip() for line in open(args.list, encoding="utf-8") if line.strip()]
    rows = ["path,score,source" if args.source else "path,score"]
    for n, path in enumerate(paths[:-1] if args.drop else paths):
        score = residual_score(np.asarray(Image.open(path).convert("RGB")))
        text = "not-a-number" if args.word and n == 0 else score.hex() if args.hex else repr(score)
        rows.append(f"{path},{text}" + (f",{args.source if n else ''}" if args.source else ""))
    if args.extra:
        rows.append("/elsewhere/other.png,0.5")
    text = "\n".join(rows) + "\n"
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return 0


class ScoringServer(ThreadingHTTPServer):
    """The scorer behind ``POST /PATH``: JSON batches or multipart images (README's protocol). Paths change how
    it answers: ``/flaky`` 503 (Retry-After: 0) ``failures`` times first, ``/busy`` 429 with Retry-After: 1 once,
    ``/slow`` sleeps ``delay`` s, ``/auth`` wants ``Authorization: Bearer <token>`` and echoes a wrong one,
    ``/bad`` answers text. It records each request's path and headers and the most requests in flight."""

    daemon_threads = True

    def __init__(self, token: str = "", failures: int = 2, delay: float = 1.0):
        super().__init__(("127.0.0.1", 0), Handler)
        self.token, self.failures, self.delay = token, failures, delay
        self.requests: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        self.flaky = self.busy = self.in_flight = self.max_in_flight = 0
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class Handler(BaseHTTPRequestHandler):
    server: ScoringServer

    def log_message(self, *args) -> None:  # quiet
        pass

    def answer(self, status: int, payload, headers: dict | None = None) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        server = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with server.lock:
            server.requests.append((self.path, dict(self.headers)))
            server.in_flight += 1
            server.max_in_flight = max(server.max_in_flight, server.in_flight)
        try:
            self.respond(body)
        finally:
            with server.lock:
                server.in_flight -= 1

    def respond(self, body: bytes) -> None:
        server, path = self.server, self.path
        with server.lock:
            if path == "/flaky":
                server.flaky += 1
                if server.flaky <= server.failures:
                    return self.answer(503, {"error": "warming up"}, {"Retry-After": "0"})
            if path == "/busy":
                server.busy += 1
                if server.busy == 1:
                    return self.answer(429, {"error": "slow down"}, {"Retry-After": "1"})
        if path == "/auth" and self.headers.get("Authorization") != f"Bearer {server.token}":
            return self.answer(401, {"error": f"bad credentials: {self.headers.get('Authorization')}"})
        if path == "/slow":
            time.sleep(server.delay)
        if path == "/bad":
            return self.answer(200, b"<html>oops</html>")
        content_type = self.headers.get("Content-Type", "")
        if content_type.startswith("multipart/form-data"):
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                f"Content-Type: {content_type}\r\n\r\n".encode() + body)
            (part,) = [p for p in message.iter_parts() if p.get_param("name", header="content-disposition") == "image"]
            return self.answer(200, {"score": png_score(part.get_payload(decode=True))})
        images = json.loads(body)["images"]
        self.answer(200, {"scores": [png_score(base64.b64decode(image["data"])) for image in images]})


if __name__ == "__main__":
    sys.exit(main())
