"""The severity-table presets, named once for the perturbations, the run config and the command line.

A preset picks, for every perturbation that defines one, the table of physical parameters its levels
mean (README, "Severity tables"); a perturbation without a table for the preset runs its ``default`` one.
"""

from __future__ import annotations

#: name -> what its tables reproduce (the order is the order of ``--help``)
PRESETS: dict[str, str] = {
    "default": "the sweeps of the detector papers",
    "imagenet-c": "ImageNet-C's severities 1-5 where ImageNet-C defines the perturbation",
    "aeroblade": "the AEROBLADE paper's robustness section, its 9x9 blur kernel included",
    "univfd": "UnivFD's validate.py: JPEG q100..30, scipy blur sigma 1..4",
}
