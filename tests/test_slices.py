"""Canonical axial grid: exact for standard axial input, geometry-preserving round trips otherwise."""

import numpy as np
import pytest

from limbseg.data.slices import canonical_axial, is_axial, normalise, slice_channels, to_native
from limbseg.volume import LPS_TO_RAS, Volume


def _dicom_axial(shape=(20, 16, 6), spacing=(1.0, 1.0, 3.0), origin=(-10.0, -8.0, 100.0)) -> Volume:
    lps = np.eye(4)
    lps[:3, :3] = np.diag(spacing)
    lps[:3, 3] = origin
    rng = np.random.default_rng(0)
    return Volume(rng.random(shape).astype(np.float32), LPS_TO_RAS @ lps)


def test_standard_axial_is_identity_at_native_spacing():
    vol = _dicom_axial()
    can = canonical_axial(vol, 1.0)
    assert is_axial(vol)
    assert can.shape == vol.shape
    np.testing.assert_allclose(can.affine, vol.affine, atol=1e-9)
    np.testing.assert_allclose(can.array, vol.array, atol=1e-6)


def test_reversed_slices_come_out_inferior_to_superior():
    vol = _dicom_axial()
    flipped_aff = vol.affine.copy()
    flipped_aff[:3, 3] = vol.index_to_ras([0, 0, vol.shape[2] - 1])[0]
    flipped_aff[:3, 2] *= -1
    flipped = Volume(vol.array[:, :, ::-1].copy(), flipped_aff)
    can = canonical_axial(flipped, 1.0)
    np.testing.assert_allclose(can.array, vol.array, atol=1e-6)
    assert can.affine[2, 2] > 0


def test_sagittal_labels_round_trip_to_native_grid():
    # sagittal: i -> posterior, j -> inferior, k -> left (LPS +x)
    lps = np.eye(4)
    lps[:3, :3] = np.array([[0, 0, 2.0], [1.5, 0, 0], [0, -1.5, 0]])
    lps[:3, 3] = (-20.0, -30.0, 40.0)
    shape = (40, 40, 20)
    labels = np.zeros(shape, np.uint8)
    labels[10:30, 8:32, 5:15] = 2
    vol = Volume(labels, LPS_TO_RAS @ lps)
    assert not is_axial(vol)
    can = canonical_axial(vol, 1.0, order=0, slice_spacing_mm=1.0)
    back = to_native(can.array, can.affine, vol, order=0)
    assert back.shape == shape
    assert (back == labels).mean() > 0.99
    # centroid preserved in patient coordinates
    c_native = vol.index_to_ras(np.argwhere(labels == 2).mean(axis=0))
    c_can = can.index_to_ras(np.argwhere(can.array == 2).mean(axis=0))
    np.testing.assert_allclose(c_native, c_can, atol=0.6)


def test_normalise_ignores_air_and_clips():
    rng = np.random.default_rng(1)
    a = np.zeros((50, 50, 4), np.float32)
    a[10:40, 10:40] = rng.normal(500, 50, (30, 30, 4))
    n = normalise(a)
    assert n.dtype == np.float32 and n.min() == 0.0 and n.max() == 1.0
    b = np.zeros((100, 100, 4), np.float32)
    b[10:40, 10:40] = a[10:40, 10:40]
    np.testing.assert_allclose(normalise(b)[10:40, 10:40], n[10:40, 10:40], atol=1e-6)


def test_slice_channels_modes():
    vol = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    rep = slice_channels(vol, [0, 3], "repeat")
    assert rep.shape == (2, 3, 2, 3)
    np.testing.assert_array_equal(rep[1, 0], vol[:, :, 3])
    ctx = slice_channels(vol, [0, 3], "2.5d")
    np.testing.assert_array_equal(ctx[0, 0], vol[:, :, 0])  # edge replicated
    np.testing.assert_array_equal(ctx[1, 0], vol[:, :, 2])
    np.testing.assert_array_equal(ctx[1, 2], vol[:, :, 3])


def test_neighbour_channels_are_a_fixed_distance_in_mm():
    """3 mm neighbours: one slice away on a 3 mm scan, three on a 1 mm scan, interpolated on a 2 mm one."""
    from limbseg.data.slices import neighbour_offset

    z = np.arange(12, dtype=np.float32)
    vol = np.broadcast_to(z, (2, 2, 12)).copy()  # value = slice index
    pre = {"neighbour_mm": 3.0}
    for spacing, expect in ((3.0, 1.0), (1.0, 3.0), (2.0, 1.5)):
        off = neighbour_offset(pre, spacing)
        assert off == pytest.approx(expect)
        ch = slice_channels(vol, [5], "2.5d", off)
        np.testing.assert_allclose(ch[0, :, 0, 0], [5 - expect, 5, 5 + expect])
    assert neighbour_offset({}, 1.0) == 1.0  # bundles from before neighbour_mm: adjacent slices
    np.testing.assert_allclose(slice_channels(vol, [0], "2.5d", 1.5)[0, :, 0, 0], [0, 0, 1.5])  # edge clamped


def test_normalise_by_a_given_window():
    a = np.array([0.0, 50.0, 100.0, 300.0], np.float32)
    np.testing.assert_allclose(normalise(a, window=(50.0, 150.0)), [0, 0, 0.5, 1])


def test_separable_linear_matches_scipy_affine_transform():
    """The fast axis-aligned trilinear path gives scipy's values, edges (cval) and flips included."""
    from scipy import ndimage

    from limbseg.data.slices import _linear_separable

    rng = np.random.default_rng(0)
    for _ in range(100):
        a = rng.random(tuple(rng.integers(1, 10, 3))).astype(np.float32)
        if rng.random() < 0.3:  # integer scans come back as float32
            a = (a * 1000).astype(np.int16)
        scale = rng.choice([-1, 1], 3) * rng.uniform(0.3, 2.5, 3)
        scale[rng.random(3) < 0.3] = 1.0
        offset = rng.uniform(-3, 10, 3)
        offset[rng.random(3) < 0.3] = 2.0
        shape = tuple(int(n) for n in rng.integers(1, 13, 3))
        ref = ndimage.affine_transform(a.astype(np.float32), scale, offset=offset, output_shape=shape, order=1, mode="constant",
                                       cval=0.7, prefilter=False)
        got = _linear_separable(a, scale, offset, shape, 0.7)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, ref, atol=1e-5 * max(1.0, float(np.abs(a).max())))
