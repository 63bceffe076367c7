"""One small virtual subject: shapes, geometry, anatomy placement, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from limbseg.labels import DEFAULT_SCHEME
from limbseg.synth.cohort import synthesize_subject
from limbseg.synth.ssm import BONES

SMALL = {"pixel": 4.0, "slice_thickness": 8.0}


def _centroid_ras(subject, mask):
    idx = np.argwhere(mask)
    return subject.image.index_to_ras(idx).mean(0)


def test_image_and_labels_share_the_grid(small_subject):
    s = small_subject
    assert s.image.array.dtype == np.uint16
    assert s.labels.same_grid(s.image)
    assert s.image.spacing == pytest.approx((4.0, 4.0, 8.0))
    assert set(np.unique(s.labels.array)) <= {0, 1, 2, 3, 4}


def test_every_bone_present_and_mask_volume_matches_mesh(small_subject):
    s = small_subject
    for bone in BONES:
        assert (s.labels.array == DEFAULT_SCHEME.value_of(bone)).sum() > 0
        mesh_mm3 = sum(s.meshes[f"{bone}_{side}"].volume for side in ("left", "right"))
        mask_mm3 = s.masks[bone].sum() * s.image.voxel_volume_mm3
        assert mask_mm3 == pytest.approx(mesh_mm3, rel=0.03), bone


def test_bones_are_where_anatomy_puts_them(small_subject):
    s = small_subject
    lab = s.labels.array
    c = {b: _centroid_ras(s, lab == DEFAULT_SCHEME.value_of(b)) for b in BONES}
    assert c["pelvis"][2] > c["femur"][2] > c["tibia"][2]
    for side, sign in (("left", -1.0), ("right", 1.0)):  # RAS: patient left is -x
        cen = {b: s.meshes[f"{b}_{side}"].centroid for b in ("femur", "tibia", "fibula", "pelvis")}
        assert all(sign * v[0] > 0 for v in cen.values()), side
        assert sign * cen["fibula"][0] > sign * cen["tibia"][0], "fibula must be lateral to the tibia"
        assert cen["femur"][2] > cen["tibia"][2]
    # the image is brightest inside the body, air is dark
    img = s.image.array
    assert img[lab > 0].mean() > 0 and np.median(img) < np.median(img[lab == 2])


def test_same_seed_same_subject(small_subject):
    again = synthesize_subject(3, **SMALL)
    assert np.array_equal(again.image.array, small_subject.image.array)
    assert np.array_equal(again.labels.array, small_subject.labels.array)
    assert np.array_equal(again.image.affine, small_subject.image.affine)


@pytest.mark.parametrize("bad", [{"pixel": 0.0}, {"slice_thickness": 50.0}, {"orientation": "oblique"},
                                 {"contrast": "ct"}])
def test_bad_options_are_user_errors(bad):
    from limbseg.errors import LimbsegError

    with pytest.raises(LimbsegError):
        synthesize_subject(1, **{**SMALL, **bad})
