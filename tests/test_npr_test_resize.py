"""NPR's declared test-time handling (``test_resize``): the paper profile squashes to 256, ``None`` scores
native resolution (the authors' GANGen / AIGCDetectBenchmark / GenImage handling), one image at a time
when whole images of different sizes are scored, and the choice is part of the detector's config."""

import numpy as np
import torch

from baselines.npr import NPR
from bench.cli.run_flags import _detector_params
from bench.core.detector import FitContext
from bench.core.detector_params import check_detector_params
from bench.nn.training import seeded_torch


class Images:
    """Indexing, length and hashes: what NPR's scoring reads of an ImageSet."""

    def __init__(self, shapes):
        rng = np.random.default_rng(0)
        self.items = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in shapes]
        self.hashes = [f"h{i}" for i in range(len(shapes))]
        self.labels = np.arange(len(shapes)) % 2

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def tiny(**kwargs) -> NPR:
    detector = NPR(width=8, blocks=(1, 1), crop=32, **kwargs)
    with seeded_torch(0):
        detector.model = detector._build_model().eval()
    return detector


def test_paper_profile_squashes_to_256_and_records_it():
    detector = NPR()
    assert tuple(detector._transform(np.zeros((300, 200, 3), np.uint8), None).shape) == (3, 256, 256)
    fast = NPR(**NPR.profiles["fast"])
    assert fast.test_resize is None and tuple(fast._transform(np.zeros((300, 200, 3), np.uint8), None).shape) == \
        (3, 128, 128)


def test_native_resolution_scores_whole_images_of_different_sizes_one_at_a_time():
    detector = tiny(test_resize=None)
    images = Images([(40, 48), (64, 36), (38, 50)])
    assert tuple(detector._transform(images[1], None).shape) == (3, 64, 36)
    ctx = FitContext(device="cpu", seed=0, progress=False, batch_size=8)
    scores = detector.predict(images, ctx).score
    prepared = [detector.preparation().fn(image) for image in images]
    assert detector.preparation().collate is list
    streamed = detector.forward_batch(detector.preparation().collate(prepared), ctx)[:, 0]
    np.testing.assert_allclose(streamed, scores, rtol=1e-6)
    logit = detector.differentiable_score(torch.from_numpy(images[1]).permute(2, 0, 1).float() / 255)
    np.testing.assert_allclose(torch.sigmoid(logit).item(), scores[1], rtol=1e-5)


def test_the_setting_is_in_the_config_and_null_is_accepted_from_the_command_line():
    assert NPR(test_resize=None).params["test_resize"] is None and NPR().params["test_resize"] == 256
    params = _detector_params(["npr.test_resize=null"])
    assert params == {"npr": {"test_resize": None}}
    check_detector_params(params)  # int | None: null switches the resize off
    check_detector_params({"npr.released": {"test_resize": None}})
