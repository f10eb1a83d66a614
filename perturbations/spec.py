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
from perturbations import IMAGENET_C, IMAGENET_C_CORRUPTIONS, Perturbation, format_param
from perturbations.families import FAMILIES, get_perturbation, split_family, split_top_level

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


def _split_levels(token: str) -> tuple[str, str, bool]:
    """``"blur:1-3"`` -> ``("blur", "1-3", True)``; ``"albu:MotionBlur:2"`` -> ``("albu:MotionBlur", "2", True)``;
    ``"albu:MotionBlur"`` -> ``("albu:MotionBlur", "", False)``; ``"share:2"`` -> ``("share", "2", True)``.
    A family's argument keeps its case."""
    name, colon, levels = token.rpartition(":")
    # levels follow a family member, a plain name, or a name that is both (``share:2``: the registered ``share``
    # chain at level 2, not a platform profile called "2")
    if colon and (_LEVELS.fullmatch(levels.strip()) or not levels.strip()) and (
            ":" in name or split_family(f"{name}:x") is None or name.strip().lower() in PERTURBATIONS):
        return name.strip(), levels.strip(), True
    if split_family(token) is not None:
        return token, "", False
    pattern, colon, levels = token.partition(":")  # a plain name: what follows the colon is levels, good or bad
    return pattern.strip(), levels.strip(), bool(colon)


def _names(pattern: str) -> list[str]:
    """The perturbation names an item stands for: a family member, ``imagenet-c``, ``all`` or a wildcard."""
    if split_family(pattern) is not None:
        return [get_perturbation(pattern).name]
    pattern = pattern.lower()
    if pattern == IMAGENET_C:
        return list(IMAGENET_C_CORRUPTIONS)
    if pattern == "all":
        return [n for n in PERTURBATIONS.names() if not _excluded_from_all(n)]
    return PERTURBATIONS.resolve([pattern])


def _excluded_from_all(name: str) -> bool:
    """``all`` means the pure image perturbations registered up front: not the attacks (they need the detector
    and cost gradients), not the members of families built on demand."""
    meta = PERTURBATIONS.entry(name).meta
    return bool(meta.get("adversarial") or meta.get("family"))


def parse_perturb_spec(text: str, preset: str = "default") -> list[tuple[str, list[int]]]:
    """``"jpeg,blur:1-3"`` -> ``[("jpeg", [1, ..., 8]), ("blur", [1, 2, 3])]``, in the order given.

    A perturbation named twice gets the union of its levels. Unknown names raise
    the registry's error with close matches; bad or out-of-range levels raise
    :class:`BenchError`. Family members (``albu:MotionBlur``, ``vae_roundtrip:taef2:1-2``) are built and
    registered here; ``imagenet-c`` stands for the 15 ImageNet-C corruptions.
    """
    if text.strip().lower() in ("", "none"):
        return []
    selection: dict[str, set[int]] = {}
    open_item: list[str] = []  # the names of the last "name:levels" item, which a bare level extends
    for token in split_top_level(text):
        if _LEVELS.fullmatch(token):
            if not open_item:
                raise BenchError(f"--perturb: level {token!r} must follow a 'name:levels' item, as in 'blur:1,3'")
            names, levels_text = open_item, token
        else:
            pattern, levels_text, colon = _split_levels(token)
            if not pattern or (colon and not levels_text):
                raise BenchError(f"--perturb: cannot read item {token!r} in {text!r}; expected 'name' or 'name:levels'")
            names = _names(pattern)
            open_item = names if colon else []
        for name in names:
            selection.setdefault(name, set()).update(_levels(PERTURBATIONS.get(name), levels_text, preset))
    return [(name, sorted(levels)) for name, levels in selection.items()]


def _parameter_heading(perturbation: Perturbation) -> str:
    return f"{perturbation.param_name} ({perturbation.unit})" if perturbation.unit else perturbation.param_name


def _family_lines() -> list[str]:
    """The ``FAMILY:ARGUMENT`` perturbations, built when named: what they take, their levels and units."""
    from perturbations.adversarial import EPSILONS
    from perturbations.albu import TABLES
    from perturbations.share import PROFILES
    from perturbations.vae_roundtrip import ROUND_TRIPS

    albu_rows = [[f"albu:{name}", f"{t.param_name} ({t.unit})" if t.unit else t.param_name,
                  *(format_param(v) for v in t.values)] for name, t in sorted(TABLES.items())]
    share_rows = [[f"share:{p.name}", p.long_side, p.quality, format_param(p.sharpen), p.source]
                  for p in PROFILES.values()]
    levels = ", ".join(str(k) for k in ROUND_TRIPS)
    return [
        "Families, built when named in --perturb (FAMILY:ARGUMENT):",
        *(f"  {FAMILIES.get(prefix).summary}" for prefix in FAMILIES.names()),
        f"  vae_roundtrip:AE levels: {levels} round trips; autoencoders: {', '.join(FAMILIES.get('vae_roundtrip').choices())}",
        f"  transfer:SURROGATE levels: eps {', '.join(format_param(e) for e in EPSILONS)} (/255), PGD on the surrogate",
        "  albu:NAME without a shipped table runs once with albumentations' defaults (one level).",
        "",
        "albu:NAME shipped severity tables (albumentations keyword arguments per level: perturbations/albu.py):",
        tabulate(albu_rows, headers=["name", "parameter", "1", "2", "3", "4", "5"], disable_numparse=True),
        "",
        "share profiles (one upload per hop; qualities are commonly reported estimates, not platform documentation):",
        tabulate(share_rows, headers=["name", "long side px", "JPEG q (4:2:0)", "sharpen", "source"],
                 disable_numparse=True),
        "",
        f"'{IMAGENET_C}' in --perturb stands for ImageNet-C's corruptions ({', '.join(IMAGENET_C_CORRUPTIONS)}); "
        "frost is left out (perturbations/imagenet_c.py says why). Attacks (pgd, fgsm, transfer:*) are not in 'all'.",
    ]


def describe_perturbations(preset: str = "default") -> str:
    """Every perturbation registered up front with its parameter, the table used under ``preset``, and each
    level's value; then the families built on demand (albu:NAME, vae_roundtrip:AE, transfer:SURROGATE, ...)."""
    perturbations = [PERTURBATIONS.get(name) for name in PERTURBATIONS.names()
                     if "family" not in PERTURBATIONS.entry(name).meta]
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
        "",
        *_family_lines(),
    ]
    return "\n".join(lines)
