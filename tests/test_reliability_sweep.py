"""Issue #26, the reliability sweep: crashes after the work is done, hangs, and strings that reach other formats.

Each case ends in correct handling, a recorded skip with a reason, or a one-line error with exit 2.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench.core.errors import BenchError
from bench.run.config import RunConfig
from bench.run.runner import Runner
from perturbations import Perturbation, get_perturbation, param_label, param_value
from perturbations.codec_limits import JPEG_MAX_SIDE, WEBP_MAX_SIDE


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


# -- images a codec cannot encode, and cells that fail ------------------------------------------------------


@pytest.mark.parametrize("name,side", [("jpeg", JPEG_MAX_SIDE + 100), ("webp", WEBP_MAX_SIDE + 1),
                                       ("social", 2 * JPEG_MAX_SIDE), ("recapture", JPEG_MAX_SIDE + 100)])
def test_image_over_the_codec_limit_is_fitted_to_it_and_resized_back(name, side):
    image = np.random.default_rng(0).integers(0, 256, (16, side, 3), dtype=np.uint8)
    out = get_perturbation(name).apply(image, 1, np.random.default_rng(0))
    assert out.shape == image.shape and out.dtype == np.uint8


@pytest.mark.parametrize("name", ["jpeg", "webp", "social", "recapture"])
def test_image_within_the_codec_limit_is_perturbed_as_before(name):
    perturbation = get_perturbation(name)
    image = np.random.default_rng(1).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    expected = perturbation.fn(image, perturbation.param(2), np.random.default_rng(3))
    assert np.array_equal(perturbation.apply(image, 2, np.random.default_rng(3)), expected)


def test_detector_that_fails_on_a_cell_keeps_the_rows_of_the_cells_it_finished(tiny_dataset, tmp_path, cache,
                                                                               monkeypatch):
    apply = Perturbation.apply

    def breaks_at_two(self, image, severity, rng, preset="default"):
        if self.name == "jpeg" and severity == 2:
            raise RuntimeError("cannot perturb this image")
        return apply(self, image, severity, rng, preset)

    monkeypatch.setattr(Perturbation, "apply", breaks_at_two)
    cfg = RunConfig(detectors=["spectral"], dataset=str(tiny_dataset), perturb="jpeg:1-2", bootstrap=0,
                    device="cpu", workers=0, limit=4)
    record = Runner(cfg, tmp_path / "out", cache, progress=False, log=lambda *_: None).run()
    assert record["detectors"]["spectral"]["status"] == "failed"
    assert "scoring jpeg:2" in record["detectors"]["spectral"]["reason"]
    res = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert set(zip(res["perturbation"], res["severity"])) == {("none", 0), ("jpeg", 1)}
