"""The package that ``--plugin`` files are imported into: ``bench run --plugin ~/work/my_det.py`` imports that file
as ``bench.core.plugin_files.my_det``.

A stable, importable name is what lets a pickled detector of a plugin class load again in a fresh process
(a Ray task, a spawned DataLoader worker, a cached fit read by the next run): unpickling imports this package,
whose ``__path__`` is the folders of the files in ``$AIGI_BENCH_PLUGINS`` (set by the CLI, inherited by
every child process), and so finds the file. bench.core.plugins keeps ``__path__`` current within a process.

May import: the standard library only.
"""

import os

__path__ = [os.path.dirname(p) for p in os.environ.get("AIGI_BENCH_PLUGINS", "").split(os.pathsep)
            if p.endswith(".py")] + list(__path__)  # noqa: F821  (the package's own __path__)
