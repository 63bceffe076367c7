"""One definition of what the network sees: the same region, window and channels in training and segment."""

from __future__ import annotations

import numpy as np
import pytest

from limbseg.segmentation.region import WINDOW_METHOD, body_window, find_region
from limbseg.volume import Volume

PRE = {"spacing_mm": 4.0, "channels": "2.5d", "neighbour_mm": 8.0,
       "normalisation": {"method": WINDOW_METHOD, "lower": 0.5, "upper": 99.5}}


@pytest.fixture(scope="module")
def subject():
    from limbseg.synth.cohort import synthesize_subject

    return synthesize_subject(3, pixel=4.0, slice_thickness=8.0)


def test_body_window_ignores_air_noise_and_is_the_whole_scans(subject):
    image = subject.image
    window = body_window(image)
    rng = np.random.default_rng(0)
    noisy = image.with_array(image.array + rng.rayleigh(0.02 * window[1], image.shape).astype(np.float32))
    lo, hi = body_window(noisy)
    assert hi == pytest.approx(window[1], rel=0.05)  # air noise does not move the window
    region = find_region(image)
    assert region.roi is not None and region.window == window  # from the whole scan, not the crop
    crop = region.crop(image)
    assert crop.shape != image.shape and body_window(crop) != window


def test_segment_feeds_the_network_what_training_prepared(subject, tmp_path, monkeypatch):
    """The slices `segment` runs the network on equal the training case's slices (float16 cache)."""
    import torch

    from limbseg.io import write_image
    from limbseg.labels import DEFAULT_SCHEME
    from limbseg.models.bundle import save_bundle
    from limbseg.models.factory import architecture, build_model
    from limbseg.pipeline import segment
    from limbseg.segmentation.predict import Predictor
    from limbseg.training.data import Case, prepare_case

    write_image(subject.image, tmp_path / "img.nii.gz")
    write_image(Volume(subject.labels.array, subject.image.affine), tmp_path / "lab.nii.gz")
    case = prepare_case(Case("c", "c", tmp_path / "img.nii.gz", tmp_path / "lab.nii.gz"), preprocessing=PRE)

    seen = []
    real = Predictor.predict_slices

    def spy(self, inputs, progress=None):
        seen.append(np.array(inputs))
        return real(self, inputs, progress)

    monkeypatch.setattr(Predictor, "predict_slices", spy)
    arch = architecture("unet", "mobilenet_v2", 3, 5, [16, 16, 16, 16, 16])
    torch.manual_seed(0)
    bundle = save_bundle(tmp_path / "model", [build_model(arch)],
                         {"architecture": arch, "preprocessing": PRE, "labels": DEFAULT_SCHEME.to_json()})
    segment(tmp_path / "img.nii.gz", tmp_path / "out", model=bundle, device="cpu", formats=())
    [inputs] = seen
    assert case.offset == pytest.approx(1.0)  # 8 mm neighbours on 8 mm slices
    expected = case.inputs(np.arange(case.labels.shape[0]), "2.5d")
    assert inputs.shape == expected.shape
    np.testing.assert_allclose(inputs, expected, atol=1e-3)
