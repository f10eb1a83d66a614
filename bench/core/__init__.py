"""Core abstractions every other package builds on: the generic registry and the three registries
(detectors, perturbations, datasets), errors, seeded rngs, hashing, atomic writes, the on-disk cache
and the Detector interface.

May import: nothing from the project outside bench.core (the registries name plugins by lazy
"module:attr" strings, which is not an import). Type-only imports under ``if TYPE_CHECKING:`` are
allowed.
"""
