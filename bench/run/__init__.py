"""Running a benchmark: the run config and named suites, the runner (detectors x perturbation grid,
cached fits and cells, resume), metrics with bootstrap intervals, the result store and its schema,
and the run's provenance (git, versions, device).

May import: bench.core, bench.data, bench.weights, perturbations and bench.nn (never report or cli:
the CLI writes the leaderboards after a run).
"""
