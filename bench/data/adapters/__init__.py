"""Adapters for the field's published datasets: each turns one dataset's own folder layout (or its
Parquet export) into manifest rows, in place, with its official split where one exists.

One module per dataset family; each exposes ``rows(root) -> list[Row]`` functions that
:mod:`bench.data.datasets` registers lazily with the dataset's card (generators, size, licence,
paper, where to get it). An incomplete or wrong folder raises a one-line :class:`BenchError` that
names what is missing (:mod:`bench.data.adapters.layout`).
"""
