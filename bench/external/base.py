"""What every external detector shares: its registry identity, the scores it reads back, its cache identity.

An external detector trains nothing and has no weights; what decides its scores lives outside the harness
(a program, a server, a file), so its ``config()`` (and with it the fit key and every cell key) holds what
identifies that outside thing (a command and its files' hashes, a URL, a file's hash) and leaves out the
settings that only say how to reach it (timeouts, concurrency, rate): changing those keeps the cache.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Iterable

import numpy as np

from bench.core.detector import Detector, DetectorInfo, Prediction
from bench.core.errors import BenchError

FAMILY = "external"
#: Rows named in an error message about missing or extra images, at most.
SHOWN = 3


def parse_score(text: Any, where: str) -> float:
    """A finite float from a decimal (``repr``, 17 significant digits: exact) or ``float.hex`` text, or a JSON
    number; a one-line error naming ``where`` otherwise."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    elif isinstance(text, str):
        try:
            value = float(text)
        except ValueError:
            try:
                value = float.fromhex(text.strip())
            except ValueError:
                raise BenchError(f"{where}: score {text!r} is not a number") from None
    else:
        raise BenchError(f"{where}: score {text!r} is not a number")
    if not math.isfinite(value):
        raise BenchError(f"{where}: score {text!r} is not a finite number")
    return value


def some(names: Iterable[str]) -> str:
    """The first few of ``names`` for an error message: ``a, b, c and 4 more``."""
    names = list(names)
    shown = ", ".join(str(n) for n in names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


class ExternalDetector(Detector):
    """Base of the ``cmd:``, ``http:`` and ``scores:`` detectors.

    ``probability``: the scores are P(generated) in [0, 1] (the 0.5-threshold metrics apply); by default they
    are only ordered, like AEROBLADE's. ``classes``: the generator names (``real`` included) the returned
    sources are drawn from; attribution metrics need them, as for any detector.
    """

    kind: ClassVar[str]
    #: Settings that say how to reach the outside scorer, not what it computes: not in ``config()``.
    operational: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, target: str, probability: bool = False, classes: list[str] | None = None, **options: Any):
        super().__init__(target=target, probability=probability, classes=classes, **options)
        self.target = target
        self.info = DetectorInfo(
            family=FAMILY, paper=f"external ({self.kind}): {self.describe()}", trains=False, gpu="no",
            tasks=("binary", "attribution") if classes else ("binary",), outputs_probability=bool(probability),
            notes="scored outside the harness; its code is not part of this benchmark")
        if classes:
            self.classes = list(classes)

    def describe(self) -> str:
        """The outside scorer in a few words, for ``bench list detectors -v`` and run.json."""
        return self.target

    def identity(self) -> dict[str, Any]:
        """What identifies the outside scorer beyond its settings (file hashes); part of ``config()``."""
        return {}

    def config(self) -> dict[str, Any]:
        config = super().config()
        config["params"] = {k: v for k, v in self.params.items() if k not in self.operational}
        config["external"] = {"kind": self.kind, **self.identity()}
        return config

    def prediction(self, scores: list[float], sources: list[str | None] | None) -> Prediction:
        """The Prediction of scores read back in image order; sources only when every image has one."""
        if sources is not None and any(s is None for s in sources):
            missing = [i for i, s in enumerate(sources) if s is None]
            raise BenchError(f"a source is given for some images but not for {len(missing)} "
                             f"(positions {some(missing)}); give one for every image or none")
        return Prediction(np.asarray(scores, dtype=np.float64),
                          None if sources is None else np.asarray(sources, dtype=object))
