"""Shared network code for detectors and baselines: frozen CLIP backbones, the shared CLIP
feature cache and the frozen-head base, the training loop (checkpoints, seeding, devices), losses
(CVaR + AUC) and SAM.

May import: bench.core, bench.data, bench.weights and perturbations.
"""
