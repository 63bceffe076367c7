"""Predictor details: the per-batch body box and what lies outside it."""

from __future__ import annotations

import numpy as np
import torch

from limbseg.inference import BODY_MARGIN_PX, Predictor, body_box
from limbseg.models.factory import architecture, build_model


def test_body_box_covers_body_with_margin_on_the_32_grid():
    x = np.zeros((4, 3, 200, 150), np.float32)
    x[2, 1, 90:110, 40:61] = 0.5  # the body, in one slice of the batch
    x[0, 1, 5, 5] = 0.9  # an isolated bright pixel (noise) does not count
    rows, cols = body_box(x)
    assert rows.start % 32 == 0 and cols.start % 32 == 0
    assert rows.start <= 90 - BODY_MARGIN_PX and rows.stop >= 110 + BODY_MARGIN_PX
    assert cols.start <= 40 - BODY_MARGIN_PX and cols.stop >= 61 + BODY_MARGIN_PX
    assert (rows.stop - rows.start) < 200 and (cols.stop - cols.start) < 150
    full = np.full((1, 3, 70, 50), 0.5, np.float32)  # a body filling the image: the whole image
    assert body_box(full) == (slice(0, 70), slice(0, 50))
    assert body_box(np.zeros((1, 3, 64, 64), np.float32)) == (slice(0, 32), slice(0, 32))


def test_outside_the_body_box_is_background():
    torch.manual_seed(0)
    model = build_model(architecture("unet", "resnet34", decoder_channels=(16, 16, 16, 16, 16)))
    predictor = Predictor(model, {"spacing_mm": 2.0, "channels": "2.5d"}, device="cpu")
    x = np.zeros((3, 3, 96, 128), np.float32)
    x[:, :, 10:30, 10:40] = np.random.default_rng(0).random((3, 3, 20, 30))
    probs = predictor.predict_slices(x)
    assert probs.shape == (3, 5, 96, 128)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    rows, cols = body_box(x)
    assert rows.stop <= 64 and cols.stop <= 64
    assert np.all(probs[:, 0, rows.stop:, :] == 1.0) and np.all(probs[:, 0, :, cols.stop:] == 1.0)
