"""The detector contract checker, for pytest and ``bench check detector``: in the spirit of scikit-learn's
``check_estimator``, :func:`check_detector` runs a detector through what the harness relies on (score
direction, determinism, batch-size and order invariance, untouched inputs, odd sizes and modes, finite
scores, the cache round trip, ``differentiable_score``) and names each failure with its fix.

    from bench.testing import check_detector

    def test_my_detector_keeps_the_contract():
        check_detector(MyDetector())        # raises DetectorCheckError listing the failed checks

May import: bench.core, bench.data, bench.weights, bench.nn (a layer beside bench.run; bench.cli uses it).
"""

from bench.testing.checks import CheckReport, CheckResult, DetectorCheckError, check_detector

__all__ = ["CheckReport", "CheckResult", "DetectorCheckError", "check_detector"]
