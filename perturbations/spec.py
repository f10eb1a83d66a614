"""The ``--perturb`` syntax of the CLI, and the severity tables as plain text.

``--perturb`` is a comma-separated list of items ``name`` or ``name:levels``:

- ``jpeg``: every non-zero level of the preset's table;
- ``jpeg:2``, ``blur:1-3``: one level, or an inclusive range;
- ``blur:1,3``: a bare level after a ``name:levels`` item adds to that item;
- ``all`` (or a wildcard such as ``b*``) stands for every matching registered name;
- ``none`` or an empty string selects nothing.

The clean level 0 is always run and is not part of the selection.
"""

from __future__ import annotations

import re

from tabulate import tabulate

from bench.core.errors import BenchError
from bench.core.registries import PERTURBATIONS
from perturbations import Perturbation, format_param

_LEVELS = re.compile(r"(\d+)(?:-(\d+))?")


def _levels(perturbation: Perturbation, text: str, preset: str) -> range:
    """The non-zero levels named by ``text`` ("" = all of them), checked against the preset's table."""
    top = len(perturbation.table(preset))
    if not text:
        return range(1, top + 1)
    match = _LEVELS.fullmatch(text)
    if match is None:
        raise BenchError(f"--perturb {perturbation.name}: levels {text!r} should look like '2' or '1-3'")
    low = int(match.group(1))
    high = int(match.group(2) or low)
    if high < low:
        raise BenchError(f"--perturb {perturbation.name}: level range {text!r} is reversed; write '{high}-{low}'")
    if not 1 <= low <= high <= top:
        raise BenchError(
            f"--perturb {perturbation.name}: levels {text!r} out of range; preset {preset!r} has levels 1..{top} "
            f"(level 0, the clean image, is always run)"
        )
    return range(low, high + 1)


def parse_perturb_spec(text: str, preset: str = "default") -> list[tuple[str, list[int]]]:
    """``"jpeg,blur:1-3"`` -> ``[("jpeg", [1, ..., 8]), ("blur", [1, 2, 3])]``, in the order given.

    A perturbation named twice gets the union of its levels. Unknown names raise
    the registry's error with close matches; bad or out-of-range levels raise
    :class:`BenchError`.
    """
    if text.strip().lower() in ("", "none"):
        return []
    selection: dict[str, set[int]] = {}
    open_item: list[str] = []  # the names of the last "name:levels" item, which a bare level extends
    for token in (t.strip().lower() for t in text.split(",")):
        if _LEVELS.fullmatch(token):
            if not open_item:
                raise BenchError(f"--perturb: level {token!r} must follow a 'name:levels' item, as in 'blur:1,3'")
            names, levels_text = open_item, token
        else:
            pattern, colon, levels_text = (part.strip() for part in token.partition(":"))
            if not pattern or (colon and not levels_text):
                raise BenchError(f"--perturb: cannot read item {token!r} in {text!r}; expected 'name' or 'name:levels'")
            names = PERTURBATIONS.resolve(["*" if pattern == "all" else pattern])
            open_item = names if colon else []
        for name in names:
            selection.setdefault(name, set()).update(_levels(PERTURBATIONS.get(name), levels_text, preset))
    return [(name, sorted(levels)) for name, levels in selection.items()]


def _parameter_heading(perturbation: Perturbation) -> str:
    return f"{perturbation.param_name} ({perturbation.unit})" if perturbation.unit else perturbation.param_name


def describe_perturbations(preset: str = "default") -> str:
    """Every registered perturbation with its parameter, the table used under ``preset``, and each level's value."""
    perturbations = [PERTURBATIONS.get(name) for name in PERTURBATIONS.names()]
    depth = max(len(p.table(preset)) for p in perturbations)
    rows = []
    for p in perturbations:
        values = [format_param(v) for v in p.table(preset)]
        rows.append([p.name, _parameter_heading(p), p.table_preset(preset), *values, *[""] * (depth - len(values))])
    headers = ["name", "parameter", "table", *(str(level) for level in range(1, depth + 1))]
    fallback = "" if preset == "default" else f" A perturbation with no {preset!r} table uses its 'default' one."
    lines = [
        f"Perturbation severity levels, preset {preset!r}; level 0 is the clean image.{fallback}",
        "Applied at full resolution, before each detector's own resize or crop.",
        "",
        tabulate(rows, headers=headers, disable_numparse=True),
        "",
        *(f"{p.name}: {p.description}" for p in perturbations),
    ]
    return "\n".join(lines)
