"""Automatic ROI on simple body phantoms: whole body, legs only, no legs, sagittal storage."""

from __future__ import annotations

import numpy as np
import pytest
from segment_phantoms import body_phantom

from limbseg.errors import LimbsegError
from limbseg.segmentation.roi import crop_to_roi, find_roi
from limbseg.volume import Volume


def test_whole_body_scan_excludes_trunk_and_head():
    roi = find_roi(body_phantom(-50, 1300))
    assert roi.crotch_z_mm == pytest.approx(600, abs=12)
    assert roi.z_mm[0] == pytest.approx(-10, abs=12)  # feet at 0, margin 10
    assert 800 <= roi.z_mm[1] <= 900  # pelvis (600 + 0.4 * 600) + margin; head (from 1000 mm) left out
    assert roi.midline_x_mm == pytest.approx(0, abs=3)
    assert roi.x_mm[0] < -120 and roi.x_mm[1] > 120  # both legs and the pelvis in the box
    assert not roi.notes


def test_legs_only_scan_cut_at_bottom():
    vol = body_phantom(200, 900)
    roi = find_roi(vol)
    assert roi.z_mm[0] <= 200 and roi.crotch_z_mm == pytest.approx(600, abs=12)
    assert any("bottom" in n for n in roi.notes)
    crop, sl = crop_to_roi(vol, roi)
    assert crop.shape[2] == vol.shape[2] - sl[2].start - (vol.shape[2] - sl[2].stop)
    np.testing.assert_allclose(crop.index_to_ras([0, 0, 0]), vol.index_to_ras([sl[0].start, sl[1].start, sl[2].start]))


def test_no_lower_limb_is_refused_and_manual_range_overrides():
    vol = body_phantom(700, 1300)
    with pytest.raises(LimbsegError, match="no lower limb"):
        find_roi(vol)
    roi = find_roi(vol, start_mm=720, end_mm=900)
    assert roi.z_mm == (720, 900) and roi.crotch_z_mm is None


def test_sagittal_storage_gives_the_same_roi():
    vol = body_phantom(-50, 1100)
    # store it sagittally: new axes (j, k, i) -> array transposed, affine columns permuted
    sag = Volume(np.ascontiguousarray(vol.array.transpose(1, 2, 0)), vol.affine[:, [1, 2, 0, 3]], {})
    a, b = find_roi(vol), find_roi(sag)
    assert b.crotch_z_mm == pytest.approx(a.crotch_z_mm, abs=6)
    assert b.z_mm[1] == pytest.approx(a.z_mm[1], abs=6)
