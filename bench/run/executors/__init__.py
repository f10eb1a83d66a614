"""Where the runner's work runs: in this process (``local``, the default) or on a Ray cluster (``ray``).

An executor has three methods, all generators that yield results as they finish:

* ``fit(jobs, cfg, ctx)`` -> ``(FitJob, fit entry | Failure)``
* ``score(jobs, test, cfg, ctx)`` -> ``(CellJob, Detector, Prediction | Failure)``
* ``attack(jobs, test, cfg, ctx)`` -> ``(AttackJob, Detector, Prediction | Failure)`` (adversarial cells)

An executor also has ``seconds``: model seconds per detector name spent scoring in it so far (empty where
it does not measure them), which the runner turns into timing records for ``bench plan``.

The runner (the driver) decides what is missing from the cache, hands the executor only that, and
writes every result to the cache as it arrives and the store at the end; executors compute and never
write. Every executor gives the same numbers for the same config. Ray is imported only when asked for.
"""

from __future__ import annotations

from bench.core.errors import BenchError

EXECUTORS = ("local", "ray")


def make_executor(name: str = "local", address: str | None = None):
    if name == "local":
        if address:
            raise BenchError("--ray-address needs --executor ray")
        from bench.run.executors.local import LocalExecutor

        return LocalExecutor()
    if name == "ray":
        from bench.run.executors.ray_cluster import RayExecutor

        return RayExecutor(address)
    raise BenchError(f"unknown executor {name!r} (known: {', '.join(EXECUTORS)})")
