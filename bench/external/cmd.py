"""``cmd:``: a detector that is a program. For each image set (a grid cell, the validation images) the harness
writes the images as lossless PNG into a temporary folder with a file list, runs the command, and reads a
CSV of ``path,score[,source]`` back (README, "Detectors with no code in the harness").

The command is split like a shell would (``shlex``) but run without one; ``{images}``, ``{list}`` and ``{out}``
in it become the image folder, the list file and the CSV path to write (without ``{out}``, the CSV is read
from the program's standard output). The program, its script (the first argument that is a file) and the
files listed in ``files`` are hashed into ``config()``, so editing the scorer or its model invalidates cached
scores.
"""

from __future__ import annotations

import contextlib
import csv
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from bench.core.detector import FitContext, Prediction
from bench.core.errors import BenchError
from bench.core.hashing import sha256_file
from bench.external.base import ExternalDetector, parse_score, some
from bench.external.images import write_pngs

PLACEHOLDERS = ("{images}", "{list}", "{out}")
STDERR_LINES = 5  # lines of the program's standard error quoted in an error
STDERR_CHARS = 400


def stderr_tail(stderr: bytes | None) -> str:
    """``; stderr: ...`` with the program's last lines on one line, or "" when it wrote none."""
    lines = [line.strip() for line in (stderr or b"").decode("utf-8", "replace").splitlines() if line.strip()]
    text = " | ".join(lines[-STDERR_LINES:])[-STDERR_CHARS:]
    return f"; stderr: {text}" if text else "; it wrote nothing on stderr"


def kill_group(pid: int) -> None:
    """Kill the program and whatever it started (its process group); it may have exited already."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def argument_files(argv: list[str], extra: list[str]) -> dict[str, str]:
    """File -> sha256 of what decides the scores: the program (found on PATH or as a path), the first later
    argument that is an existing file (the script of ``python score.py``) and the ``extra`` files named in the
    spec (a model's weights). Later arguments are not hashed on their own: one may be a log or a counter the
    program writes, which would make every run look new."""
    program = shutil.which(argv[0]) or (argv[0] if Path(argv[0]).is_file() else None)
    if program is None:
        raise BenchError(f"program {argv[0]!r} not found (not on PATH and not a file)")
    files = {argv[0]: sha256_file(os.path.realpath(program))}
    script = next((arg for arg in argv[1:] if not any(p in arg for p in PLACEHOLDERS) and Path(arg).is_file()), None)
    for path in ([script] if script else []) + extra:
        if not Path(path).is_file():
            raise BenchError(f"files: {path!r} is not a file")
        files[path] = sha256_file(path)
    return files


class CommandDetector(ExternalDetector):
    """``cmd:COMMAND``: scores from a program run once per image set; ``timeout`` in seconds per run; ``files``:
    more files whose content decides the scores (hashed into the fit key)."""

    kind = "cmd"
    operational = frozenset({"timeout"})

    def __init__(self, target: str, timeout: float = 3600.0, files: list[str] | None = None,
                 probability: bool = False, classes: list[str] | None = None):
        super().__init__(target, probability=probability, classes=classes, timeout=timeout, files=files)
        try:
            self.argv = shlex.split(target)
        except ValueError as exc:
            raise BenchError(f"command {target!r}: {exc}") from None
        if not self.argv:
            raise BenchError("the command is empty")
        if not timeout > 0:
            raise BenchError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.timeout = float(timeout)
        self.files = argument_files(self.argv, list(files or []))

    def identity(self) -> dict:
        return {"files": self.files}

    def predict(self, images, ctx: FitContext) -> Prediction:
        with tempfile.TemporaryDirectory(prefix="bench-cmd-") as tmp:
            root = Path(tmp)
            paths = write_pngs(images, root / "images")
            listing, out = root / "images.txt", root / "scores.csv"
            listing.write_text("".join(f"{p}\n" for p in paths), encoding="utf-8")
            values = {"{images}": str(root / "images"), "{list}": str(listing), "{out}": str(out)}
            argv = [self.substitute(arg, values) for arg in self.argv]
            stdout = self.run(argv)
            if "{out}" in self.target:
                if not out.is_file():
                    raise BenchError(f"`{self.argv[0]}` exited 0 but wrote no {{out}} file")
                text, where = out.read_text(encoding="utf-8", errors="replace"), "its {out} CSV"
            else:
                text, where = stdout.decode("utf-8", "replace"), "its standard output"
            return self.read_scores(text, paths, where)

    @staticmethod
    def substitute(arg: str, values: dict[str, str]) -> str:
        for placeholder, value in values.items():
            arg = arg.replace(placeholder, value)
        return arg

    def run(self, argv: list[str]) -> bytes:
        """The program's standard output; a one-line error with its stderr's tail on a non-zero exit or a
        timeout. It runs in its own process group, killed whole on a timeout or an interrupt."""
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True)
        except OSError as exc:
            raise BenchError(f"cannot start `{argv[0]}`: {exc.strerror or exc}") from None
        with proc:
            try:
                stdout, stderr = proc.communicate(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                kill_group(proc.pid)
                _, stderr = proc.communicate()
                raise BenchError(f"`{self.argv[0]}` did not finish within {self.timeout:g} s (timeout)"
                                 f"{stderr_tail(stderr)}") from None
            except BaseException:
                kill_group(proc.pid)
                raise
        if proc.returncode != 0:
            raise BenchError(f"`{self.argv[0]}` exited with status {proc.returncode}{stderr_tail(stderr)}")
        return stdout

    def read_scores(self, text: str, paths: list[Path], where: str) -> Prediction:
        """Rows ``path,score[,source]`` (a ``path,score`` header is optional; a path may be given as listed or by
        its file name), one per image: a one-line error for missing, extra or repeated rows and bad scores."""
        index = {path.name: i for i, path in enumerate(paths)}
        scores: list[float | None] = [None] * len(paths)
        sources: list[str | None] = [None] * len(paths)
        extra, repeated = [], []
        for line, row in enumerate(csv.reader(text.splitlines()), start=1):
            if not row or not "".join(row).strip() or (line == 1 and row[0].strip().lower() == "path"):
                continue
            if len(row) < 2:
                raise BenchError(f"{where}, line {line}: expected path,score[,source], got {','.join(row)!r}")
            i = index.get(Path(row[0].strip()).name)
            if i is None:
                extra.append(row[0].strip())
            elif scores[i] is not None:
                repeated.append(row[0].strip())
            else:
                scores[i] = parse_score(row[1].strip(), f"{where}, line {line}")
                sources[i] = row[2].strip() if len(row) > 2 and row[2].strip() else None
        missing = [paths[i].name for i, s in enumerate(scores) if s is None]
        problems = [f"{len(missing)} of {len(paths)} images have no row ({some(missing)})" if missing else "",
                    f"{len(extra)} rows name no image it was given ({some(extra)})" if extra else "",
                    f"{len(repeated)} images have more than one row ({some(repeated)})" if repeated else ""]
        if any(problems):
            raise BenchError(f"{where}: " + "; ".join(p for p in problems if p))
        return self.prediction(scores, None if all(s is None for s in sources) else sources)
