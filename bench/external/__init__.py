"""Detectors with no code in the harness: a program (``cmd:``), a served model (``http:``) and scores computed
elsewhere for an exported grid (``scores:``, ``bench export-grid`` / ``bench import-scores``).

They are declared per run (``--external NAME=SPEC``, the config's ``external``), registered into the detector
registry before the run expands ``--detectors``, and then fitted, scored, cached and reported like any detector.
README, "Detectors with no code in the harness"; reference: docs/external-detectors.md.

May import: bench.core, bench.data, perturbations and bench.run (a sibling of bench.report: neither imports
the other; only bench.cli imports this package).
"""
