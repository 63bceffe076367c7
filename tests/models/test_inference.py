"""Predictor details: the per-batch body tiles, what lies outside them, and the native-grid argmax."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from limbseg.data.slices import to_native
from limbseg.models.factory import architecture, build_model
from limbseg.segmentation.predict import BODY_MARGIN_PX, Predictor, body_tiles, native_argmax
from limbseg.volume import Volume


def _tile_area(tiles) -> int:
    return sum((t.run[0].stop - t.run[0].start) * (t.run[1].stop - t.run[1].start) for t in tiles)


def test_body_tile_covers_body_with_margin_and_ignores_noise():
    rng = np.random.default_rng(0)
    x = (rng.random((4, 3, 200, 150)) < 0.03).astype(np.float32)  # speckle noise, in every slice
    x[2, 1, 90:110, 40:61] = 0.5  # the body, in one slice of the batch
    x[0, 1, 5:7, 5:7] = 0.9  # a 2x2 bright speck does not count either
    (tile,) = body_tiles(x)
    rows, cols = tile.keep
    assert rows == slice(90 - BODY_MARGIN_PX, 110 + BODY_MARGIN_PX)
    assert cols == slice(40 - BODY_MARGIN_PX, 61 + BODY_MARGIN_PX)
    run_rows, run_cols = tile.run
    assert (run_rows.stop - run_rows.start, run_cols.stop - run_cols.start) == (64, 64)  # grown to the 32 grid
    assert run_rows.start <= rows.start and run_rows.stop >= rows.stop
    assert run_cols.start <= cols.start and run_cols.stop >= cols.stop
    full = np.full((1, 3, 70, 50), 0.5, np.float32)  # a body filling the image: the whole image
    assert body_tiles(full)[0].run == (slice(0, 70), slice(0, 50))
    assert body_tiles(np.zeros((1, 3, 64, 64), np.float32))[0].run == (slice(0, 32), slice(0, 32))


def test_two_legs_get_one_tile_each_when_that_is_cheaper():
    x = np.zeros((2, 3, 256, 160), np.float32)
    x[:, 1, 20:70, 30:90] = 0.5  # right leg (rows are the left-right axis)
    x[:, 1, 180:230, 40:100] = 0.5  # left leg, a wide gap away
    tiles = body_tiles(x)
    assert len(tiles) == 2
    assert {t.run[0].stop - t.run[0].start for t in tiles} == {96} and {t.run[1].stop - t.run[1].start for t in tiles} == {96}
    assert _tile_area(tiles) < 256 * 160
    (right, left) = sorted(tiles, key=lambda t: t.keep[0].start)
    assert right.keep[0].stop <= left.keep[0].start  # kept regions never overlap
    assert right.keep[0] == slice(20 - BODY_MARGIN_PX, 70 + BODY_MARGIN_PX)
    x[:, 1, 70:180, 60:66] = 0.5  # legs joined by a band: one part, one box
    assert len(body_tiles(x)) == 1
    y = np.zeros((1, 3, 128, 96), np.float32)  # two legs close together: one box is as cheap
    y[:, 1, 10:50, 20:70] = y[:, 1, 60:110, 20:70] = 0.5
    assert len(body_tiles(y)) == 1


def test_a_small_body_part_joins_its_neighbour():
    x = np.zeros((1, 3, 500, 96), np.float32)
    x[:, 1, 20:120, 10:80] = 0.5
    x[:, 1, 126:129, 10:14] = 0.5  # a small separate part just beside the first (< 5 % of the body)
    x[:, 1, 350:440, 10:80] = 0.5
    tiles = sorted(body_tiles(x), key=lambda t: t.keep[0].start)
    assert len(tiles) == 2
    assert tiles[0].keep[0].stop >= 129  # the small part is kept with its neighbour, not dropped


def test_outside_the_body_box_is_background():
    torch.manual_seed(0)
    model = build_model(architecture("unet", "resnet34", decoder_channels=(16, 16, 16, 16, 16)))
    predictor = Predictor(model, {"spacing_mm": 2.0, "channels": "2.5d"}, device="cpu")
    x = np.zeros((3, 3, 96, 128), np.float32)
    x[:, :, 10:30, 10:40] = np.random.default_rng(0).random((3, 3, 20, 30))
    probs = predictor.predict_slices(x)
    assert probs.shape == (3, 5, 96, 128)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    ((rows, cols),) = (t.keep for t in body_tiles(x))
    assert rows.stop <= 64 and cols.stop <= 64
    assert np.all(probs[:, 0, rows.stop:, :] == 1.0) and np.all(probs[:, 0, :, cols.stop:] == 1.0)


def test_tiles_write_back_each_leg():
    torch.manual_seed(0)
    model = build_model(architecture("unet", "resnet34", decoder_channels=(16, 16, 16, 16, 16)))
    x = np.zeros((2, 3, 256, 128), np.float32)
    rng = np.random.default_rng(1)
    x[:, :, 20:70, 30:90] = 0.2 + 0.8 * rng.random((2, 3, 50, 60))
    x[:, :, 180:230, 30:90] = 0.2 + 0.8 * rng.random((2, 3, 50, 60))
    cropped = Predictor(model, {"spacing_mm": 2.0, "channels": "2.5d"}, device="cpu").predict_slices(x)
    whole = Predictor(model, {"spacing_mm": 2.0, "channels": "2.5d"}, device="cpu", crop_to_body=False).predict_slices(x)
    np.testing.assert_allclose(cropped.sum(axis=1), 1.0, atol=1e-5)
    assert len(body_tiles(x)) == 2
    assert np.all(cropped[:, 0, 110:150] == 1.0)  # the gap between the tiles is background
    for t in body_tiles(x):  # each leg got the network's output (not the default background)
        leg = cropped[:, :, t.keep[0], t.keep[1]]
        assert not np.all(leg[:, 0] == 1.0)
    assert not np.allclose(whole[:, 0, 110:150], 1.0)  # without cropping the gap is run too


def _reference_argmax(probs: np.ndarray, canonical_affine: np.ndarray, volume: Volume) -> np.ndarray:
    """Every class resampled over the whole native grid, then the argmax (ties to the lower label)."""
    stack = [to_native(np.ascontiguousarray(np.transpose(probs[:, c], (1, 2, 0))), canonical_affine, volume,
                       order=1, cval=1.0 if c == 0 else 0.0) for c in range(probs.shape[1])]
    return np.argmax(np.stack(stack), axis=0).astype(np.uint8)


@pytest.mark.parametrize("oblique", [False, True])
def test_native_argmax_equals_resampling_every_class_everywhere(oblique):
    from scipy import ndimage
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(3)
    logits = ndimage.gaussian_filter(rng.normal(size=(30, 5, 40, 36)), (2, 0, 2, 2)) * 8
    logits[:, 0] += 2.0
    logits[:, 0, :, :5] += 10  # a band of sure background
    probs = np.exp(logits)
    probs = (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
    canonical = np.diag([-1.875, -1.875, 3.0, 1.0])
    canonical[:3, 3] = [40, 30, -20]
    native = np.diag([-0.9375, -0.9375, 3.0, 1.0])
    native[:3, 3] = [40.4, 30.3, -20]
    shape = (80, 72, 30)
    if oblique:
        native[:3, :3] = Rotation.from_euler("xyz", [10, 5, 20], degrees=True).as_matrix() @ np.diag([1.2, 1.2, 2.5])
        native[:3, 3] = [-30, -35, -10]
        shape = (50, 50, 30)
    volume = Volume(np.zeros(shape, np.float32), native, {})
    expected = _reference_argmax(probs, canonical, volume)
    assert len(np.unique(expected)) >= (3 if oblique else 5)  # several classes win somewhere
    np.testing.assert_array_equal(native_argmax(probs, canonical, volume), expected)
    only_background = np.zeros_like(probs)
    only_background[:, 0] = 1.0
    assert not native_argmax(only_background, canonical, volume).any()
