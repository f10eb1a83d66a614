"""The methods of the source papers, registered lazily into bench.registries.DETECTORS.

Metadata given here is what ``bench list detectors`` shows without importing model code.
"""

from bench.registries import DETECTORS

DETECTORS.add("spectral", "detectors.spectral:SpectralDetector", family="frequency",
              summary="azimuthal log power spectrum + logistic regression", weights=(), trains=True, gpu="no",
              tasks=("binary", "attribution"))
DETECTORS.add("test_cnn", "detectors.tiny_cnn:TinyCNN", family="test",
              summary="tiny CNN trained from scratch (tests and smoke runs only)", weights=(), trains=True,
              gpu="optional", tasks=("binary", "attribution"), test=True)
