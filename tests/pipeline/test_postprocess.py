"""The study's per-slice rule, gap closing along the slice axis and the 3D largest-component-per-side rule,
on hand-made labels."""

from __future__ import annotations

import numpy as np
import pytest

from limbseg.segmentation.postprocess import (
    axial_axis,
    clean_slice,
    clean_slices,
    close_gaps,
    keep_largest_per_side,
    postprocess,
)
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


# ---- closing gaps of missing axial slices (issue #14, part 3) ----

def _rod(shape, ci, cj, radius, k0, k1, value, lab=None):
    """A cylinder along k of ``value`` (slices k0..k1-1) added to ``lab`` (new when None)."""
    lab = np.zeros(shape, np.uint8) if lab is None else lab
    i, j = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    lab[((i - ci) ** 2 + (j - cj) ** 2 <= radius**2)[:, :, None] & (np.arange(shape[2]) >= k0)
        & (np.arange(shape[2]) < k1)] = value
    return lab


AFFINE = np.diag([1.0, 1.0, 3.0, 1.0])  # 3 mm slices: a 10 mm limit closes up to 3 missing slices


def test_a_two_slice_gap_inside_a_femur_is_closed():
    full = _rod((30, 30, 30), 15, 15, 6, 3, 27, 2)
    gapped = full.copy()
    gapped[:, :, 12:14] = 0
    out = postprocess(LabelMap(gapped, AFFINE))
    np.testing.assert_array_equal(out.array, full)
    # the same on a grid whose slice axis is i, with an LPS-like affine
    moved = np.ascontiguousarray(gapped.transpose(2, 0, 1))
    affine = np.array([[0, -1.0, 0, 0], [0, 0, -1.0, 0], [3.0, 0, 0, 0], [0, 0, 0, 1]])
    assert axial_axis(affine) == 0
    np.testing.assert_array_equal(postprocess(LabelMap(moved, affine)).array, full.transpose(2, 0, 1))


def test_a_gap_longer_than_the_limit_is_left():
    lab = _rod((30, 30, 30), 15, 15, 6, 3, 27, 2)
    lab[:, :, 10:14] = 0  # 4 slices x 3 mm = 12 mm > 10 mm
    np.testing.assert_array_equal(close_gaps(lab, [2], axis=2, max_slices=3), lab)
    np.testing.assert_array_equal(postprocess(LabelMap(lab, AFFINE), largest=False).array, lab)
    # with 2 mm slices the same 4 slices are 8 mm: closed
    closed = postprocess(LabelMap(lab, np.diag([1.0, 1.0, 2.0, 1.0])), largest=False).array
    assert (closed[:, :, 10:14] == 2).sum() == 4 * (lab[:, :, 9] == 2).sum()


def test_different_bones_across_a_gap_are_not_merged_and_other_bones_are_kept():
    lab = _rod((30, 30, 30), 15, 15, 6, 2, 12, 1)  # tibia below ...
    _rod((30, 30, 30), 15, 15, 6, 14, 28, 2, lab)  # ... femur above, a 2-slice joint space between
    out = close_gaps(lab, [1, 2, 3], axis=2, max_slices=3)
    np.testing.assert_array_equal(out, lab)
    # a femur gap holding a piece of fibula: the femur is closed around it, the fibula stays
    lab = _rod((30, 30, 30), 15, 15, 6, 2, 28, 2)
    lab[:, :, 10:12] = 0
    lab[13:16, 13:16, 10:12] = 3
    out = close_gaps(lab, [1, 2, 3], axis=2, max_slices=3)
    assert (out[13:16, 13:16, 10:12] == 3).all()
    expected = (lab[:, :, 9] == 2) & (lab[:, :, 10] == 0)
    assert ((out[:, :, 10] == 2) == expected).all() and ((out[:, :, 11] == 2) == expected).all()


def test_a_femur_slice_called_tibia_does_not_cut_the_femur():
    """One slice of a femur predicted as tibia (a 2D network's typical error on a one-leg scan): the femur's
    two pieces are one bone for the largest-component rule, the stray tibia slice is removed and the femur
    slice is interpolated back; before, the smaller femur piece was thrown away."""
    lab = _rod((30, 40, 40), 15, 15, 5, 2, 12, 1)  # tibia below
    _rod((30, 40, 40), 15, 15, 6, 14, 38, 2, lab)  # femur above
    truth = lab.copy()
    lab[:, :, 20][lab[:, :, 20] == 2] = 1  # a femur slice mislabelled as tibia
    out = postprocess(LabelMap(lab, AFFINE)).array
    np.testing.assert_array_equal(out, truth)
    # pieces further apart than the limit stay separate: the smaller one is removed as before
    far = truth.copy()
    far[:, :, 20:25][far[:, :, 20:25] == 2] = 0  # 5 slices x 3 mm = 15 mm > 10 mm
    out = postprocess(LabelMap(far, AFFINE)).array
    assert (out[:, :, 14:20] == 2).sum() == 0 and (out[:, :, 25:38] == 2).sum() == (truth[:, :, 25:38] == 2).sum()


def test_bridging_joins_pieces_in_line_only():
    """Two femur pieces two slices apart but side by side in-plane (not in line along the slice axis) are
    not joined: bridging runs along the slice axis only."""
    from limbseg.segmentation.postprocess import largest_component

    mask = np.zeros((40, 20, 30), bool)
    mask[2:10, 5:12, 2:20] = True  # the big piece
    mask[25:30, 5:12, 22:26] = True  # two slices above it, but 15 voxels aside
    out = largest_component(mask, axis=2, bridge=3)
    assert out[2:10, 5:12, 2:20].all() and not out[25:30].any()
    mask[2:10, 5:12, 22:26] = True  # the same piece in line with the big one: kept
    out = largest_component(mask, axis=2, bridge=3)
    assert out[2:10, 5:12, 22:26].all() and not out[25:30].any()


def test_gap_closing_never_bridges_two_legs():
    shape = (60, 30, 30)
    lab = _rod(shape, 15, 15, 5, 3, 27, 2)  # left femur: whole
    _rod(shape, 45, 15, 5, 3, 27, 2, lab)
    lab[30:, :, 12:14] = 0  # right femur: a 2-slice gap while the left one is present in those slices
    out = close_gaps(lab, [2], axis=2, max_slices=3)
    np.testing.assert_array_equal(out, _rod(shape, 45, 15, 5, 3, 27, 2, _rod(shape, 15, 15, 5, 3, 27, 2)))
    # a femur ending in one leg and one starting in the other, 2 slices apart: nothing fills the gap
    lab = _rod(shape, 15, 15, 5, 3, 12, 2)
    _rod(shape, 45, 15, 5, 14, 27, 2, lab)
    np.testing.assert_array_equal(close_gaps(lab, [2], axis=2, max_slices=3), lab)
    # two pieces below the gap, one above that overlaps only the first: only the first is carried on,
    # though the second piece's footprint joins theirs through slices further up
    lab = _rod(shape, 15, 15, 5, 3, 12, 2)
    _rod(shape, 30, 15, 5, 3, 12, 2, lab)
    _rod(shape, 17, 15, 5, 14, 27, 2, lab)
    _rod(shape, 27, 15, 5, 20, 27, 2, lab)
    out = close_gaps(lab, [2], axis=2, max_slices=3)
    assert not out[23:, :, 12:14].any() and out[10:23, :, 12:14].any()


def test_gap_filling_interpolates_a_moving_cross_section():
    """Between the slices on either side the shape is interpolated: it holds their AND, stays in their OR."""
    lab = _rod((40, 30, 20), 15, 15, 5, 2, 8, 2)
    _rod((40, 30, 20), 19, 15, 5, 11, 18, 2, lab)  # the bone moves 4 voxels across a 3-slice gap
    out = close_gaps(lab, [2], axis=2, max_slices=3)
    a, b = lab[:, :, 7] == 2, lab[:, :, 11] == 2
    for k in (8, 9, 10):
        filled = out[:, :, k] == 2
        assert (filled >= (a & b)).all() and (filled <= (a | b)).all()
        assert filled.sum() > (a & b).sum()  # more than the intersection: the bone's moving section ...
        assert filled.sum() < 1.15 * a.sum()  # ... about one cross-section, far less than the union
    middle = np.argwhere(out[:, :, 9] == 2)
    assert middle[:, 0].mean() == pytest.approx(17.0, abs=0.5)  # half way


def test_gap_closing_is_fast_on_a_large_grid():
    import time

    lab = np.zeros((512, 512, 120), np.uint8)
    for ci in (150, 360):
        _rod(lab.shape, ci, 256, 25, 5, 55, 1, lab)
        _rod(lab.shape, ci, 256, 30, 58, 115, 2, lab)
    lab[:, :, 30:32] = 0
    t0 = time.perf_counter()
    out = close_gaps(lab, [1, 2, 3, 4], axis=2, max_slices=3)
    assert time.perf_counter() - t0 < 3.0
    assert (out[:, :, 30:32] == 1).sum() == 2 * (lab[:, :, 29] == 1).sum()
