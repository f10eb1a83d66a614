"""``http:``: a detector served over HTTP (FastAPI, TorchServe, a hosted API).

Two documented protocols (docs/external-detectors.md):

- ``json`` (default): ``POST URL`` with ``{"images": [{"id": "000000", "data": "<base64 PNG>"}, ...]}``, up to
  ``batch`` images per request; the answer is ``{"scores": [...], "sources": [...]}`` in the same order
  (``sources`` optional);
- ``multipart``: one image per request, ``multipart/form-data`` with the PNG in the field ``image``; the answer is
  ``{"score": x, "source": "..."}`` (``source`` optional).

Up to ``concurrency`` requests are in flight, at most ``rate`` per second (0: no limit); a request that gets
no answer within ``timeout`` seconds, cannot connect, or is answered 429 or 5xx is retried ``retries`` times
with exponential backoff (``backoff`` x 2^attempt seconds, or the server's ``Retry-After``). A token is read
from the environment variable named by ``token_env`` when the images are scored and sent as
``Authorization: Bearer TOKEN`` (or as the raw value of ``token_header``); it is never stored on the detector
(whose pickled fit is cached) nor in its config, run.json or any message: errors quote the server with the
token masked. Credentials in the URL are refused for the same reason.
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

from bench.core.detector import FitContext, Prediction
from bench.core.errors import BenchError
from bench.external.base import ExternalDetector, parse_score
from bench.external.images import png_bytes

FORMATS = ("json", "multipart")
RETRY_STATUS = (429, 500, 502, 503, 504)
MAX_WAIT = 300.0  # seconds: the longest Retry-After honoured
BODY_CHARS = 200  # characters of a server's answer quoted in an error


class RateLimit:
    """At most ``per_second`` request starts per second over every thread (0: no limit)."""

    def __init__(self, per_second: float):
        self.interval = 1.0 / per_second if per_second else 0.0
        self.next = 0.0
        self.lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next)
            self.next = start + self.interval
        time.sleep(max(0.0, start - now))


def retry_after(headers) -> float | None:
    """The server's ``Retry-After`` in seconds (a number or an HTTP date), capped at MAX_WAIT; None without one."""
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_WAIT)


class HttpDetector(ExternalDetector):
    """``http:URL``: scores from a server, ``batch`` images per JSON request or one per multipart request."""

    kind = "http"
    operational = frozenset({"concurrency", "rate", "retries", "backoff", "timeout", "token_env", "token_header"})

    def __init__(self, target: str, format: str = "json", batch: int = 16, concurrency: int = 4, rate: float = 0.0,
                 retries: int = 3, backoff: float = 1.0, timeout: float = 60.0, token_env: str | None = None,
                 token_header: str = "Authorization", probability: bool = False, classes: list[str] | None = None):
        super().__init__(target, probability=probability, classes=classes, format=format, batch=batch,
                         concurrency=concurrency, rate=rate, retries=retries, backoff=backoff, timeout=timeout,
                         token_env=token_env, token_header=token_header)
        url = urllib.parse.urlsplit(target)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise BenchError(f"{target!r} is not an http:// or https:// URL")
        if url.username or url.password:
            raise BenchError("the URL holds credentials, which would be written to run.json; give the token in "
                             "an environment variable named by token_env")
        if format not in FORMATS:
            raise BenchError(f"format must be {' or '.join(FORMATS)}, got {format!r}")
        for key, value, low in (("batch", batch, 1), ("concurrency", concurrency, 1), ("retries", retries, 0)):
            if value < low:
                raise BenchError(f"{key} must be an integer >= {low}, got {value}")
        for key, value in (("rate", rate), ("backoff", backoff)):
            if value < 0:
                raise BenchError(f"{key} must be a number >= 0, got {value}")
        if not timeout > 0:
            raise BenchError(f"timeout must be a positive number of seconds, got {timeout}")
        self.format, self.batch, self.concurrency = format, batch, concurrency
        self.rate, self.retries, self.backoff, self.timeout = rate, retries, backoff, timeout
        self.token_env, self.token_header = token_env, token_header

    def token(self) -> str | None:
        if not self.token_env:
            return None
        value = os.environ.get(self.token_env)
        if not value:
            raise BenchError(f"the environment variable {self.token_env} (token_env) is not set")
        return value

    def predict(self, images, ctx: FitContext) -> Prediction:
        token = self.token()  # read here, never kept on the detector
        headers = {}
        if token:
            headers[self.token_header] = f"Bearer {token}" if self.token_header.lower() == "authorization" else token
        size = self.batch if self.format == "json" else 1
        chunks = [range(first, min(first + size, len(images))) for first in range(0, len(images), size)]
        limit = RateLimit(self.rate)
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            answers = list(pool.map(lambda chunk: self.score_chunk(images, chunk, headers, limit, token), chunks))
        scores = [s for chunk in answers for s, _ in chunk]
        sources = [src for chunk in answers for _, src in chunk]
        return self.prediction(scores, None if all(s is None for s in sources) else sources)

    def score_chunk(self, images, chunk: range, headers: dict, limit: RateLimit, token: str | None) -> list:
        """(score, source) of each image of ``chunk``, from one request (retried as documented)."""
        if self.format == "json":
            body = json.dumps({"images": [{"id": f"{i:06d}", "data": base64.b64encode(png_bytes(images[i])).decode()}
                                          for i in chunk]}).encode()
            content_type = "application/json"
        else:
            body, content_type = multipart_image(f"{chunk[0]:06d}.png", png_bytes(images[chunk[0]]))
        answer = self.post(body, {**headers, "Content-Type": content_type, "Accept": "application/json"}, limit, token)
        where = f"the answer for images {chunk[0]}-{chunk[-1]}"
        try:
            payload = json.loads(answer)
        except ValueError:
            text = mask(answer.decode("utf-8", "replace")[:BODY_CHARS], token)
            raise BenchError(f"{where} is not JSON: {text!r}") from None
        if self.format == "multipart":
            if not isinstance(payload, dict) or "score" not in payload:
                raise BenchError(f"{where} has no \"score\": {mask(str(payload)[:BODY_CHARS], token)}")
            return [(parse_score(payload["score"], where), self.parsed_source(payload.get("source"), where))]
        scores = payload.get("scores") if isinstance(payload, dict) else None
        sources = payload.get("sources") if isinstance(payload, dict) else None
        if not isinstance(scores, list) or len(scores) != len(chunk):
            raise BenchError(f"{where}: expected \"scores\", a list of {len(chunk)} numbers, got "
                             f"{mask(str(scores)[:BODY_CHARS], token)}")
        if sources is not None and (not isinstance(sources, list) or len(sources) != len(chunk)):
            raise BenchError(f"{where}: \"sources\" must be a list of {len(chunk)} names when given")
        names = sources if sources is not None else [None] * len(chunk)
        return [(parse_score(s, f"{where}, image {i}"), self.parsed_source(names[n], where))
                for n, (i, s) in enumerate(zip(chunk, scores))]

    @staticmethod
    def parsed_source(value, where: str) -> str | None:
        if value is None or isinstance(value, str):
            return value or None
        raise BenchError(f"{where}: a source must be a generator name, got {value!r}")

    def post(self, body: bytes, headers: dict, limit: RateLimit, token: str | None) -> bytes:
        """The body of a 2xx answer; 429, 5xx, timeouts and connection errors are retried with backoff."""
        for attempt in range(self.retries + 1):
            limit.wait()
            wait = None
            try:
                request = urllib.request.Request(self.target, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return response.read()
            except urllib.error.HTTPError as exc:
                text = exc.read()[:BODY_CHARS].decode("utf-8", "replace")
                problem = f"HTTP {exc.code} {exc.reason}: {mask(text, token)}".rstrip(": ")
                if exc.code not in RETRY_STATUS:
                    raise BenchError(f"{self.target} answered {problem}") from None
                wait = retry_after(exc.headers)
            except (OSError, http.client.HTTPException) as exc:  # URLError, refused or dropped connections, timeouts
                reason = getattr(exc, "reason", exc)
                problem = (f"no answer within {self.timeout:g} s (timeout)" if isinstance(reason, TimeoutError)
                           else f"cannot connect: {mask(str(reason) or type(reason).__name__, token)}")
            if attempt < self.retries:
                time.sleep(self.backoff * 2 ** attempt if wait is None else wait)
        tries = f"{self.retries + 1} tries" if self.retries else "1 try"
        raise BenchError(f"{self.target}: {problem} ({tries})")


def multipart_image(filename: str, data: bytes) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body holding one PNG in the field ``image``, and its Content-Type."""
    boundary = uuid.uuid4().hex
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'
            "Content-Type: image/png\r\n\r\n")
    return head.encode() + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def mask(text: str, token: str | None) -> str:
    """``text`` with the token replaced by ``***``: what a server echoes never carries it into a message."""
    return text.replace(token, "***") if token else text
