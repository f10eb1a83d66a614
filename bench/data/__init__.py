"""Image data: manifests (CSV or folder layout), decoding and probing images, datasets with their
content hash, image sets, train/val/test splits, the built-in synthetic demo dataset, and
``bench data inspect``.

May import: bench.core only (not its siblings bench.weights or perturbations: a perturbed image set
is handed the perturbation object by the runner).
"""
