"""The benchmark harness, as layered subpackages (see README, "Layout of the code").

Layers, bottom to top; a package imports only from its own layer or below:

    core                          registries, errors, rng, hashing, atomic writes, cache, Detector interface
    data | weights | perturbations   image data / pretrained weights / perturbation registry (siblings that
                                  do not import each other; perturbations is a top-level package)
    nn                            shared network code: CLIP backbones, feature cache, training loop, losses
    run                           config, suites, runner, metrics, result store, provenance
    report                        leaderboards, figures, HTML, compare with a reference
    cli                           the ``bench`` command

detectors/ and baselines/ may use core, data, weights and nn. tests/test_layering.py enforces this.
"""
