"""The study's per-slice rule and the 3D largest-component-per-side rule, on hand-made labels."""

from __future__ import annotations

import numpy as np

from limbseg.postprocess import axial_axis, clean_slice, clean_slices, keep_largest_per_side, postprocess
from limbseg.volume import LabelMap


def test_clean_slice_fills_small_holes_and_drops_small_components():
    m = np.zeros((40, 40), bool)
    m[5:35, 5:25] = True  # 600 px
    m[10, 10] = False  # 1-px hole (< 1 % of 600 + 4): filled
    m[15:25, 12:20] = False  # 80-px hole: kept
    m[2, 30] = True  # 1-px island: removed
    m[30:38, 28:38] = True  # 80-px island: kept
    out = clean_slice(m)
    assert out[10, 10] and not out[20, 15] and not out[2, 30] and out[33, 33]
    assert clean_slice(np.zeros((4, 4), bool)).sum() == 0


def test_clean_slices_never_overwrites_other_structures_and_uses_axis():
    lab = np.zeros((20, 20, 3), np.uint8)
    lab[2:18, 2:18, 1] = 1
    lab[9, 9, 1] = 2  # a one-voxel structure 2 inside structure 1: not a hole to fill
    lab[5, 5, 1] = 0  # a real 1-px hole
    out = clean_slices(lab, [1, 2], axis=2)
    assert out[9, 9, 1] == 2 and out[5, 5, 1] == 1
    # the same data with slices along axis 0 gives the same result
    np.testing.assert_array_equal(clean_slices(lab.transpose(2, 0, 1), [1, 2], axis=0), out.transpose(2, 0, 1))


def test_axial_axis_of_sagittal_grid():
    sag = np.array([[0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]], float)  # i -> anterior? j -> S
    assert axial_axis(sag) == 1
    assert axial_axis(np.eye(4)) == 2


def test_keep_largest_per_side_uses_patient_x():
    lab = np.zeros((20, 10, 10), np.uint8)
    lab[1:5, 2:8, 1:9] = 1  # big piece at small i
    lab[7, 5, 5] = 1  # small piece, same side (i < 10)
    lab[12:15, 2:5, 2:5] = 1  # piece on the other side: kept (largest there)
    lab[18, 8, 8] = 1  # small piece other side: removed
    affine = np.diag([-1.0, 1, 1, 1])
    affine[0, 3] = 9.5  # x = 9.5 - i: midline x = 0 between i = 9 and 10
    out = keep_largest_per_side(lab, affine, [1], midline_x=0.0)
    assert out[7, 5, 5] == 0 and out[18, 8, 8] == 0
    assert (out[1:5, 2:8, 1:9] == 1).all() and (out[12:15, 2:5, 2:5] == 1).all()


def test_postprocess_empty_and_phantom(phantom):
    empty = LabelMap(np.zeros((6, 6, 6), np.uint8), np.eye(4))
    assert postprocess(empty).array.sum() == 0
    _, labels = phantom
    noisy = labels.array.copy()
    noisy[0, 0, 0] = 1  # a stray voxel far away
    out = postprocess(LabelMap(noisy, labels.affine))
    np.testing.assert_array_equal(out.array, labels.array)
    assert np.array_equal(out.affine, labels.affine)
