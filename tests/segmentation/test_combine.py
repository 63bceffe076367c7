"""The locator's prior on the fine probabilities, and the region it gives."""

from __future__ import annotations

import numpy as np

from limbseg.segmentation.combine import apply_prior, prior_on_grid
from limbseg.segmentation.locate import Location
from limbseg.volume import Volume

NAMES = ("tibia", "femur", "fibula", "pelvis")


def _location(shape=(10, 10, 20), bone=2, box=(slice(3, 7), slice(3, 7), slice(5, 15))):
    grid = Volume(np.zeros(shape, np.float32), np.diag([-6.0, -6.0, 6.0, 1.0]), {})
    probs = np.zeros((5, *shape), np.float32)
    probs[0] = 1
    probs[0][box] = 0
    probs[bone][box] = 1
    return Location(probs, grid, NAMES)


def _fine(location, probs_c):
    """Fine probabilities (K, C, I, J) on a 2 mm canonical grid inside the coarse one, all voxels = probs_c."""
    grid = Volume(np.zeros((24, 24, 48), np.float32), np.diag([-2.0, -2.0, 2.0, 1.0]) @ np.eye(4), {})
    grid.affine[:3, 3] = [-20.0, -20.0, 40.0]
    p = np.broadcast_to(np.asarray(probs_c, np.float32)[None, :, None, None], (48, 5, 24, 24)).copy()
    return p, grid


def test_prior_settles_a_confusion_the_locator_resolves():
    """Where the fine network says tibia 0.6 / femur 0.3 but the locator sees femur, femur wins; a bone the
    locator rules out everywhere (pelvis) goes to background; probabilities still sum to one."""
    loc = _location(bone=2)
    fine, grid = _fine(loc, [0.05, 0.6, 0.3, 0.0, 0.05])
    prior = prior_on_grid(loc, grid)
    out = apply_prior(fine.copy(), prior, 1.0)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)
    inside = out[20, :, 12, 12]  # k=20 -> z=80 mm; i=j=12 -> x=y=-44 mm: inside the femur box
    assert np.argmax(inside) == 2, inside
    fine2, _ = _fine(loc, [0.3, 0.0, 0.0, 0.0, 0.7])
    out2 = apply_prior(fine2, prior, 1.0)
    assert (np.argmax(out2, axis=1) == 0).all()  # no pelvis anywhere: background


def test_weight_zero_changes_nothing():
    loc = _location()
    fine, grid = _fine(loc, [0.05, 0.6, 0.3, 0.0, 0.05])
    before = fine.copy()
    np.testing.assert_array_equal(apply_prior(fine, prior_on_grid(loc, grid), 0.0), before)


def test_dilation_keeps_the_outline_to_the_fine_network():
    """One coarse voxel (6 mm) beyond the locator's bone the prior is still full: the fine network's
    outline is not cut by the coarse one."""
    loc = _location(bone=2)
    grid = loc.grid
    p1 = prior_on_grid(loc, grid, dilate=1)[1]
    p0 = prior_on_grid(loc, grid, dilate=0)[1]
    assert p1[7, 5, 10] == 1.0 and p0[7, 5, 10] == 0.0
    assert p1[9, 5, 10] == 0.0


def test_region_from_location_for_a_single_knee():
    """A locator that sees one knee (femur above, tibia below, no pelvis) gives a box around them plus the
    margin and a midline hint through the bones."""
    from limbseg.segmentation.region import roi_from_location

    shape = (20, 20, 30)
    grid = Volume(np.zeros(shape, np.float32), np.diag([-6.0, -6.0, 6.0, 1.0]), {})
    probs = np.zeros((5, *shape), np.float32)
    probs[0] = 1
    for bone, ks in ((1, slice(2, 14)), (2, slice(16, 28))):
        probs[0, 8:12, 8:12, ks] = 0
        probs[bone, 8:12, 8:12, ks] = 1
    roi = roi_from_location(Location(probs, grid, NAMES))
    assert roi.z_mm[0] == 2 * 6 - 3 - 15 and roi.z_mm[1] == 27 * 6 + 3 + 15
    assert roi.x_mm == (-11 * 6 - 3 - 15, -8 * 6 + 3 + 15)
    assert -11 * 6 <= roi.midline_x_mm <= -8 * 6


def test_per_bone_weights():
    """A weight of 0 for one bone leaves it to the fine network; the others still follow the locator."""
    import pytest

    loc = _location(bone=2)
    fine, grid = _fine(loc, [0.3, 0.0, 0.0, 0.0, 0.7])  # the fine network says pelvis everywhere
    prior = prior_on_grid(loc, grid)
    out = apply_prior(fine.copy(), prior, [1.0, 1.0, 1.0, 0.0])  # pelvis weight 0
    assert (np.argmax(out, axis=1) == 4).all()
    with pytest.raises(ValueError, match="prior weights"):
        apply_prior(fine.copy(), prior, [1.0, 1.0])


def test_union_with_the_heuristic_roi():
    from limbseg.segmentation.region import union_roi
    from limbseg.segmentation.roi import ROI

    a = ROI((0.0, 100.0), (-50.0, 50.0), (-20.0, 20.0), 1.0, None, ["locator"])
    b = ROI((-10.0, 80.0), (-60.0, 40.0), (-30.0, 10.0), 2.0, 55.0, ["heuristic"])
    u = union_roi(a, b)
    assert (u.z_mm, u.x_mm, u.y_mm) == ((-10.0, 100.0), (-60.0, 50.0), (-30.0, 20.0))
    assert u.midline_x_mm == 2.0 and u.crotch_z_mm == 55.0


def test_region_is_as_wide_as_the_body():
    """In-plane the locator's box grows to the body it crosses (a fibula outside the tibia's box is not lost);
    along z it stays the locator's; a box outside the body's slices is left as it is."""
    from limbseg.segmentation.region import BODY_MARGIN_MM, body_width
    from limbseg.segmentation.roi import ROI

    body = np.zeros((30, 30, 20), bool)
    body[5:25, 8:20, :] = True  # a body 80 x 48 mm on the 4 mm grid, every slice
    body[0:28, 8:20, 15:] = True  # wider in the top slices (outside the ROI's z range)
    mask = Volume(body, np.diag([4.0, 4.0, 4.0, 1.0]), {})
    roi = ROI((10.0, 50.0), (40.0, 60.0), (40.0, 100.0), 50.0, None, ["locator"])
    wide = body_width(roi, mask)
    assert wide.z_mm == roi.z_mm
    assert wide.x_mm == (5 * 4 - 2 - BODY_MARGIN_MM, 24 * 4 + 2 + BODY_MARGIN_MM)
    assert wide.y_mm == (8 * 4 - 2 - BODY_MARGIN_MM, 100.0)  # never smaller than the locator's box
    outside = ROI((200.0, 260.0), (40.0, 60.0), (40.0, 60.0), 50.0)
    assert body_width(outside, mask) == outside
