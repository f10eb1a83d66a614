"""Issue #26, the reliability sweep: crashes after the work is done, hangs, and strings that reach other formats.

Each case ends in correct handling, a recorded skip with a reason, or a one-line error with exit 2.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from bench.core.errors import BenchError
from bench.run.config import RunConfig
from bench.run.runner import Runner
from perturbations import get_perturbation, param_label, param_value


# -- a perturbation's label is not its number ------------------------------------------------------------


@pytest.mark.parametrize("name", ["albu:MotionBlur{blur_limit=5}", "albu:MotionBlur{blur_limit=(3,5)}",
                                  "albu:GaussNoise{std_range=(0.1,0.1)}", "albu:CLAHE"])
def test_param_value_of_a_text_setting_is_nan_and_its_label_is_the_setting(name):
    perturbation = get_perturbation(name)
    assert math.isnan(param_value(perturbation, 1))
    assert param_label(perturbation, 1) == perturbation.param(1)


def test_albu_setting_that_albumentations_would_adjust_is_a_one_line_error():
    with pytest.raises(BenchError, match="invalid settings.*adjusted") as error:
        get_perturbation("albu:MotionBlur{blur_limit=-3}")
    assert "\n" not in str(error.value)


def test_albu_transform_that_needs_more_than_an_image_is_a_one_line_error():
    with pytest.raises(BenchError, match="cannot run on an image alone") as error:
        get_perturbation("albu:MaskDropout")
    assert "\n" not in str(error.value)


def test_run_with_text_labelled_perturbations_writes_every_cell(tiny_dataset, tmp_path, cache):
    spec = "albu:GaussNoise{std_range=(0.1,0.1)},share:instagram:1,albu:CLAHE"
    cfg = RunConfig(detectors=["spectral"], dataset=str(tiny_dataset), perturb=spec, bootstrap=0, device="cpu",
                    workers=0, limit=4)
    Runner(cfg, tmp_path / "out", cache, progress=False, log=lambda *_: None).run()
    res = pd.read_parquet(tmp_path / "out" / "results.parquet")
    cells = res.drop_duplicates(["perturbation", "severity"]).set_index("perturbation")
    assert set(cells.index) == {"none", "albu:GaussNoise{std_range=(0.1, 0.1)}", "share:instagram", "albu:CLAHE"}
    assert cells.loc["share:instagram", "param"] == 1.0
    assert math.isnan(cells.loc["albu:CLAHE", "param"]) and cells.loc["albu:CLAHE", "param_label"] == "defaults"
