"""``bench list datasets``: every registered dataset with its card (generators, size, licence, paper,
official split; with -v also how to get it), read from registry metadata only."""

from __future__ import annotations

from bench.core.registries import DATASETS, load_plugins

COLUMN_WIDTHS = [None, 36, 20, 22, 24, 30]  # wrap the long cells so the table fits a terminal


def dataset_rows(pattern: str = "*", verbose: bool = False) -> tuple[list[list[str]], list[str]]:
    load_plugins()
    headers = ["dataset", "generators", "size", "licence", "paper", "official split"]
    rows = []
    for name in DATASETS.names(pattern):
        meta = DATASETS.entry(name).meta
        if not meta.get("adapter"):
            rows.append([name, meta.get("description", ""), "", "", "", ""])
            continue
        rows.append([name, meta.get("generators", ""), meta.get("size", ""), meta.get("licence", ""),
                     meta.get("paper", ""), meta.get("split", "")])
    return rows, headers


def dataset_details(pattern: str = "*") -> str:
    """How to get and use each published dataset (the -v part of ``bench list datasets``)."""
    load_plugins()
    lines = []
    for name in DATASETS.names(pattern):
        meta = DATASETS.entry(name).meta
        if meta.get("adapter"):
            hosted = meta.get("hf")
            how = f"`bench data fetch {name}` (Hugging Face: {hosted})" if hosted else meta.get("get", "")
            lines += [f"\n{name}: {meta.get('description', '')}", f"  get: {how}", f"  use: --dataset {name}=PATH"]
    return "\n".join(lines)
