"""Built-in datasets, registered lazily in :data:`bench.core.registries.DATASETS`.

A dataset entry's target is a callable returning the dataset folder (images plus
``manifest.csv``); importing this module imports nothing heavy.
"""

from __future__ import annotations

from bench.core.registries import DATASETS

DATASETS.add(
    "demo",
    "bench.data.demo_data:demo_dataset_path",
    description=(
        "Synthetic demo (~480 128x128 PNGs, built offline on first use and cached): procedural 'camera' "
        "scenes as real, and three fake classes each with one artefact (upsampler checkerboard, "
        "smooth without sensor noise, band-limited with an 8px grid). Not a measure of real-world performance."
    ),
    synthetic=True,
)
