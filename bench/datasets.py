"""Built-in datasets, registered lazily in :data:`bench.registries.DATASETS`.

A dataset entry's target is a callable returning the dataset folder (images plus
``manifest.csv``); importing this module imports nothing heavy.
"""

from __future__ import annotations

from bench.registries import DATASETS

DATASETS.add(
    "demo",
    "bench.demo_data:demo_dataset_path",
    description=(
        "Synthetic demo (~480 128x128 PNGs, built offline on first use and cached): procedural 'camera' "
        "scenes as real, and three fake classes each with one artefact (upsampler checkerboard, "
        "smooth without sensor noise, band-limited with an 8px grid). Not a measure of real-world performance."
    ),
    synthetic=True,
)
