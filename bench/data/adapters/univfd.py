"""UnivFD's diffusion test sets (Ojha et al., CVPR 2023): ``diffusion_datasets/``.

As UnivFD's ``dataset_paths.py`` reads them, each generator folder holds ``1_fake/`` and the real
images are shared: LAION reals (``laion/0_real``) for LDM, GLIDE and DALL-E (mini), ImageNet reals
(``imagenet/0_real``) for Guided (ADM). Re-packaged copies (NPR's and others) put a ``0_real/`` in
every generator folder; it is used when present.
"""

from __future__ import annotations

from pathlib import Path

from bench.data.adapters.layout import descend, image_rows, locate, missing, nonempty
from bench.data.manifest import Row

GENERATORS = {"guided": "imagenet", "ldm_200": "laion", "ldm_200_cfg": "laion", "ldm_100": "laion",
              "glide_100_27": "laion", "glide_50_27": "laion", "glide_100_10": "laion", "dalle": "laion"}


def diffusion_rows(root: Path) -> list[Row]:
    """Test-only (no official train split)."""
    root = locate(root, "ldm_200", ("diffusion_datasets",))
    rows: list[Row] = []
    for generator, real_set in GENERATORS.items():
        fake = descend(root, generator, "1_fake")
        if fake is None:
            raise missing("univfd-diffusion", root, f"{generator}/1_fake",
                          f"diffusion_datasets/ with {', '.join(GENERATORS)} (each with 1_fake/) and laion/, "
                          "imagenet/ (each with 0_real/)")
        own = descend(root, generator, "0_real")
        real = own or descend(root, real_set, "0_real")
        if real is None:
            raise missing("univfd-diffusion", root, f"{real_set}/0_real",
                          f"the {real_set} real images that {generator} is tested against")
        rows += image_rows(root, real, 0, "real", subset=generator if own else None) + image_rows(root, fake, 1, generator)
    return nonempty("univfd-diffusion", root, rows)
