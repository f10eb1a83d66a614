"""The detector contract checker: :func:`check_detector` runs every check and says, per check, what failed and
how to fix it.

A check's status is ``pass``, ``fail``, ``refused`` (an odd image the detector declined with a BenchError
and its reason: allowed), ``n/a`` (the check does not apply, with the reason) or ``info`` (speed: printed,
never judged). A detector that trains is first fitted on the planted set (bench.testing.planted).
"""

from __future__ import annotations

import io
import pickle
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bench.core.detector import DEFAULT_BATCH_SIZE, Detector, FitContext, Prediction, rows_in_process
from bench.core.errors import BenchError
from bench.data.imageset import ImageSet
from bench.testing.planted import GENERATOR, ODD_IMAGES, odd_image_set, planted_sets

#: The batch sizes whose scores must agree (DEFAULT_BATCH_SIZE is the reference).
BATCH_SIZES = (1, 7)
#: How far differentiable_score may be from predict's score: torch's and PIL's resampling differ in the
#: last digits (tests/test_white_box_detectors.py pins equality to 1e-5 at sizes where both are exact).
DIFFERENTIABLE_TOLERANCE = 1e-3
#: The planted set's least AUC for the direction check (a reversed detector scores near 0).
MIN_AUC = 0.8
PASS, FAIL, REFUSED, NA, INFO = "pass", "fail", "refused", "n/a", "info"


@dataclass(frozen=True)
class CheckResult:
    check: str
    status: str
    message: str = ""


class DetectorCheckError(AssertionError):
    """Raised by :func:`check_detector` when a check fails; the message lists each failed check."""


@dataclass
class CheckReport:
    detector: str
    results: list[CheckResult]

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == FAIL]

    def status(self, check: str) -> str:
        return next(r.status for r in self.results if r.check == check)

    def table(self) -> str:
        from tabulate import tabulate

        return tabulate([[r.check, r.status, r.message] for r in self.results], headers=["check", "status", "message"],
                        maxcolwidths=[None, None, 90])


class _Watched(ImageSet):
    """The same images, handed out as writable copies that are compared with the decoded originals afterwards
    (the harness itself hands out read-only arrays, where an in-place edit is an error)."""

    def __init__(self, base: ImageSet):
        super().__init__(base.items, base.cache, base.max_pixels, base.min_side)
        self.handed: list[tuple[int, np.ndarray]] = []

    def clean(self, i: int) -> np.ndarray:
        copy = np.array(super().clean(i))
        self.handed.append((i, copy))
        return copy

    def modified(self) -> list[int]:
        return sorted({i for i, copy in self.handed if not np.array_equal(copy, ImageSet.clean(self, i))})


def _predict(detector: Detector, images: ImageSet, ctx: FitContext, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    pred = detector.predict(images, replace(ctx, batch_size=batch_size))
    if not isinstance(pred, Prediction):
        raise BenchError(f"predict returned {type(pred).__name__}, not a Prediction")
    if pred.score.shape != (len(images),):
        raise BenchError(f"predict returned scores of shape {pred.score.shape} for {len(images)} images; return "
                         "one score per image, in image order")
    return pred.score


def _largest(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b))) if len(a) else 0.0


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


def check_direction(detector: Detector, test: ImageSet, scores: np.ndarray) -> CheckResult:
    if not detector.info.trains and not detector.separates_planted:
        return CheckResult("direction", NA, "trains nothing and does not declare separates_planted: telling smooth "
                                            "from noisy images is not what it was built for")
    if not np.isfinite(scores).all():
        return CheckResult("direction", FAIL, "scores are not finite (see 'finite')")
    auc = _auc(test.labels, scores)
    if auc >= MIN_AUC:
        return CheckResult("direction", PASS, f"AUC {auc:.2f} on the planted set (generated = smooth)")
    hint = ("higher must mean more likely generated: return P(generated) = 1 - P(real), or minus a distance"
            if auc <= 1 - MIN_AUC else "the planted set is trivially separable; check that fit learns from "
                                       "the labels (label 1 = generated) and that predict uses what fit learnt")
    return CheckResult("direction", FAIL, f"AUC {auc:.2f} < {MIN_AUC} on the planted set (generated = smooth, real "
                                          f"= noisy, generator {GENERATOR!r}): {hint}")


def check_finite(detector: Detector, scores: np.ndarray) -> CheckResult:
    bad = int((~np.isfinite(scores)).sum())
    if bad:
        return CheckResult("finite", FAIL, f"{bad} of {len(scores)} scores are NaN or inf; guard divisions and logs "
                                           "(e.g. np.log(x + 1e-8)) and clip probabilities")
    if detector.info.outputs_probability and ((scores < 0) | (scores > 1)).any():
        return CheckResult("finite", FAIL, f"scores span {scores.min():.3g}..{scores.max():.3g} but info declares "
                                           "outputs_probability: return P(generated) in [0, 1] or declare "
                                           "outputs_probability=False")
    return CheckResult("finite", PASS, f"scores in {scores.min():.3g}..{scores.max():.3g}")


def check_determinism(detector: Detector, test: ImageSet, ctx: FitContext, scores: np.ndarray) -> CheckResult:
    again = _predict(detector, test, ctx)
    if np.array_equal(again, scores, equal_nan=True):
        return CheckResult("determinism", PASS, "two predict calls give the same scores")
    return CheckResult("determinism", FAIL, f"two predict calls on the same images differ by up to "
                                            f"{_largest(again, scores):.3g}; derive every random draw from ctx.seed "
                                            "(bench.nn.training.seeded_torch) or remove randomness from scoring "
                                            "(model.eval(): no dropout)")


def check_batch_size(detector: Detector, test: ImageSet, ctx: FitContext, scores: np.ndarray) -> CheckResult:
    tol = detector.score_tolerance
    for batch_size in BATCH_SIZES:
        other = _predict(detector, test, ctx, batch_size)
        if not _largest(other, scores) <= tol:
            return CheckResult("batch_size", FAIL, f"batch size {batch_size} gives scores up to "
                                                   f"{_largest(other, scores):.3g} away from batch size "
                                                   f"{DEFAULT_BATCH_SIZE} (tolerance {tol:g}); score each image "
                                                   "independently of its batch (model.eval(): no batch statistics), "
                                                   "or declare a larger score_tolerance")
    return CheckResult("batch_size", PASS, f"batch sizes {', '.join(map(str, BATCH_SIZES))} and {DEFAULT_BATCH_SIZE} "
                                           f"agree within {tol:g}")


def check_order(detector: Detector, test: ImageSet, ctx: FitContext, scores: np.ndarray) -> CheckResult:
    order = np.random.default_rng(1).permutation(len(test))
    shuffled = _predict(detector, test.subset(order), ctx)
    if _largest(shuffled, scores[order]) <= detector.score_tolerance:
        return CheckResult("order", PASS, "a shuffled set gives each image its score")
    return CheckResult("order", FAIL, f"shuffling the images moves their scores by up to "
                                      f"{_largest(shuffled, scores[order]):.3g}; score each image independently of "
                                      "the others (no normalisation over the set) and return scores in image order")


def check_stream(detector: Detector, test: ImageSet, ctx: FitContext, scores: np.ndarray) -> CheckResult:
    if detector.preparation() is None:
        return CheckResult("stream", NA, "not streamed (preparation() is None): scored through predict")
    streamed = detector.finish(rows_in_process(detector, test, replace(ctx, batch_size=DEFAULT_BATCH_SIZE))).score
    if streamed.shape == scores.shape and _largest(streamed, scores) <= detector.score_tolerance:
        return CheckResult("stream", PASS, "preparation + forward_batch + finish give predict's scores")
    return CheckResult("stream", FAIL, "streamed scoring (preparation, forward_batch, finish) does not give "
                                       "predict's scores; predict must equal finish(rows_in_process(...)) "
                                       "(bench.core.detector)")


def check_inputs_kept(detector: Detector, test: ImageSet, ctx: FitContext) -> CheckResult:
    watched = _Watched(test)
    _predict(detector, watched, ctx)
    changed = watched.modified()
    if changed:
        return CheckResult("inputs_kept", FAIL, f"predict modified {len(changed)} input image(s) in place (first: "
                                                f"{watched.ids[changed[0]]}); copy before editing (image.copy()) — "
                                                "in a run the images are read-only and this is an error")
    return CheckResult("inputs_kept", PASS, "input images unchanged")


def check_odd_image(detector: Detector, name: str, folder: Path, ctx: FitContext) -> CheckResult:
    check = f"image {name}"
    images = _Watched(odd_image_set(folder, name))
    try:
        scores = _predict(detector, images, ctx)
    except BenchError as exc:
        return CheckResult(check, REFUSED, str(exc))
    except Exception as exc:
        return CheckResult(check, FAIL, f"{type(exc).__name__}: {exc}; handle this image, or refuse it with "
                                        "BenchError('why') (a one-line reason in the run's record)")
    shapes = {copy.shape + (str(copy.dtype),) for _, copy in images.handed}
    if any(len(s) != 4 or s[2] != 3 or s[3] != "uint8" for s in shapes):
        return CheckResult(check, FAIL, f"the harness handed images of shape/dtype {sorted(shapes)}, not RGB uint8 "
                                        "(bench.data.images.decode_image converts every mode)")
    if not np.isfinite(scores).all():
        return CheckResult(check, FAIL, f"score {scores[0]} is not finite; handle this size, or refuse it with "
                                        "BenchError('why')")
    w, h, _ = ODD_IMAGES[name]
    return CheckResult(check, PASS, f"scored ({h}x{w}x3 uint8 after decoding)")


def check_cache_round_trip(detector: Detector, test: ImageSet, ctx: FitContext, scores: np.ndarray) -> CheckResult:
    """The fitted detector as the fit cache stores it (pickle) and the scores as the cell cache does (npz)."""
    try:
        copy = pickle.loads(pickle.dumps(detector, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception as exc:
        return CheckResult("cache_round_trip", FAIL, f"the fitted detector does not pickle ({type(exc).__name__}: "
                                                     f"{exc}); keep fitted state in plain attributes (arrays, "
                                                     "modules, sklearn models), no open files or lambdas")
    again = _predict(copy, test, ctx)
    buf = io.BytesIO()
    np.savez(buf, score=again)
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as data:
        stored = data["score"]
    if np.array_equal(stored, scores, equal_nan=True):
        return CheckResult("cache_round_trip", PASS, "a pickled copy of the fitted detector gives the same scores, "
                                                     "bit for bit")
    return CheckResult("cache_round_trip", FAIL, f"a pickled copy of the fitted detector scores up to "
                                                 f"{_largest(stored, scores):.3g} differently; pickle everything "
                                                 "predict uses (implement __getstate__ if some state is rebuilt)")


def check_differentiable(detector: Detector, test: ImageSet, scores: np.ndarray, n: int = 3) -> CheckResult:
    if not detector.differentiable:
        return CheckResult("differentiable", NA, "not declared (differentiable = False): white-box attacks skip it, "
                                                 "transfer attacks still apply")
    import torch

    tol = max(detector.score_tolerance, DIFFERENTIABLE_TOLERANCE)
    for i in range(min(n, len(test))):
        x = torch.from_numpy(np.array(test[i])).permute(2, 0, 1).float().div(255).requires_grad_(True)
        value = detector.differentiable_score(x, caption=test.captions[i])
        if value.ndim != 0:
            return CheckResult("differentiable", FAIL, f"differentiable_score returned shape {tuple(value.shape)}; "
                                                       "return a 0-d tensor (one image's score)")
        (grad,) = torch.autograd.grad(value, x, allow_unused=True)
        if grad is None or not torch.isfinite(grad).all() or grad.abs().sum() == 0:
            return CheckResult("differentiable", FAIL, "no gradient reaches the pixels: compute the score from "
                                                       "image01 with torch operations only (no .numpy(), no "
                                                       "detach, no PIL)")
        direct, logit = value.item(), torch.sigmoid(value).item()
        if min(abs(direct - scores[i]), abs(logit - scores[i])) > tol:
            return CheckResult("differentiable", FAIL, f"differentiable_score gives {direct:.6g} (sigmoid "
                                                       f"{logit:.6g}) where predict gives {scores[i]:.6g} on "
                                                       f"{test.ids[i]}: apply predict's preprocessing with torch "
                                                       "inside it, so an attack's gradient sees what predict sees")
    return CheckResult("differentiable", PASS, f"equals predict's score (or its logit) within {tol:g}, gradient "
                                               "reaches the pixels")


def measure_speed(detector: Detector, test: ImageSet, ctx: FitContext) -> CheckResult:
    started = time.perf_counter()
    _predict(detector, test, ctx)
    rate = len(test) / max(time.perf_counter() - started, 1e-9)
    return CheckResult("speed", INFO, f"{rate:.1f} images/s at batch {DEFAULT_BATCH_SIZE} on {ctx.device} "
                                      f"({len(test)} images of {test.items[0].width}x{test.items[0].height})")


def _guarded(check: str, fn: Callable[[], CheckResult]) -> CheckResult:
    try:
        return fn()
    except Exception as exc:
        return CheckResult(check, FAIL, f"{type(exc).__name__}: {exc}")


def _registered(name: str, profile: str) -> Detector:
    """A registered detector built as a run builds it, its pretrained weights resolved (a BenchError saying how
    to get them when they are missing)."""
    from bench.core.registries import DETECTORS, create_detector
    from bench.weights.gate import check_detector_weights

    decision = check_detector_weights(name, DETECTORS.entry(name).meta)
    if decision.skip_reason:
        raise BenchError(f"{name}: {decision.skip_reason}")
    detector = create_detector(name, profile)
    detector.weights_provenance = decision.provenance
    return detector


def check_detector(detector: Detector | str, *, profile: str = "fast", device: str = "cpu", seed: int = 0,
                   odd_images: tuple[str, ...] | None = None, raise_on_failure: bool = True,
                   log: Callable[[str], Any] | None = None) -> CheckReport:
    """Check a detector (an instance, or a registered name built with ``profile``) against the contract.

    Returns the :class:`CheckReport`; with ``raise_on_failure`` (the default, for pytest) a failed check
    raises :class:`DetectorCheckError` listing every failed check with its fix. ``odd_images``: names of
    ``bench.testing.planted.ODD_IMAGES`` to try (default: all). ``log``: called with each check's row as it
    finishes (the CLI prints them).
    """
    if isinstance(detector, str):
        detector = _registered(detector, profile)
    results: list[CheckResult] = []

    def add(result: CheckResult) -> None:
        results.append(result)
        if log:
            log(f"{result.check:<22} {result.status:<8} {result.message}")

    ctx = FitContext(device=device, seed=seed, workers=0, progress=False)
    with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp:
        folder = Path(tmp)
        sets = planted_sets(folder, seed)
        test = sets["test"]
        if detector.info.trains:
            try:
                detector.fit(sets["train"], sets["val"], ctx)
                add(CheckResult("fit", PASS, f"fitted on {len(sets['train'])} planted images"))
            except Exception as exc:
                add(CheckResult("fit", FAIL, f"{type(exc).__name__}: {exc}"))
        scores = None
        if not any(r.status == FAIL for r in results):
            add(_guarded("inputs_kept", lambda: check_inputs_kept(detector, test, ctx)))  # before a read-only crash
            try:
                scores = _predict(detector, test, ctx)
                add(CheckResult("predict", PASS, f"{len(scores)} scores for {len(test)} images"))
            except Exception as exc:
                add(CheckResult("predict", FAIL, f"{type(exc).__name__}: {exc}"))
        if scores is not None:
            checks: list[tuple[str, Callable[[], CheckResult]]] = [
                ("finite", lambda: check_finite(detector, scores)),
                ("direction", lambda: check_direction(detector, test, scores)),
                ("determinism", lambda: check_determinism(detector, test, ctx, scores)),
                ("batch_size", lambda: check_batch_size(detector, test, ctx, scores)),
                ("order", lambda: check_order(detector, test, ctx, scores)),
                ("stream", lambda: check_stream(detector, test, ctx, scores)),
                *[(f"image {name}", lambda name=name: check_odd_image(detector, name, folder, ctx))
                  for name in (ODD_IMAGES if odd_images is None else odd_images)],
                ("cache_round_trip", lambda: check_cache_round_trip(detector, test, ctx, scores)),
                ("differentiable", lambda: check_differentiable(detector, test, scores)),
                ("speed", lambda: measure_speed(detector, test, ctx)),
            ]
            for name, check in checks:
                add(_guarded(name, check))
    report = CheckReport(detector.name, results)
    if raise_on_failure and report.failed:
        raise DetectorCheckError(f"{detector.name} fails the detector contract:\n" + "\n".join(
            f"- {r.check}: {r.message}" for r in report.failed))
    return report
