"""The ``bench`` command line, one module per command group: :mod:`~bench.cli.main` (the parser,
``run``, ``list``, ``data inspect`` and the entry point), :mod:`~bench.cli.report` (``report``,
``compare``, ``baseline save``) and :mod:`~bench.cli.weights` (``weights ...``). Handlers import
heavy modules when they run, so ``bench --help`` stays fast.

May import: every package (it is the top layer).
"""
