"""Volume geometry helpers and NIfTI/NRRD/MetaImage round trips keep the affine exactly."""

import numpy as np
import pytest

from limbseg.io import read_image, write_image
from limbseg.volume import LabelMap, Volume


def _oblique_volume() -> Volume:
    rng = np.random.default_rng(3)
    theta = np.deg2rad(17)
    rot = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([0.8, 1.1, 3.0])
    affine[:3, 3] = (-12.5, 40.25, -300.0)
    return Volume(rng.integers(0, 1000, (7, 5, 4)).astype(np.int16), affine)


def test_spacing_and_index_mapping():
    vol = _oblique_volume()
    np.testing.assert_allclose(vol.spacing, (0.8, 1.1, 3.0))
    assert vol.voxel_volume_mm3 == pytest.approx(0.8 * 1.1 * 3.0)
    ijk = np.array([[1, 2, 3], [0, 0, 0]])
    np.testing.assert_allclose(vol.ras_to_index(vol.index_to_ras(ijk)), ijk, atol=1e-9)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_round_trip_exact(tmp_path, suffix):
    vol = _oblique_volume()
    path = write_image(vol, tmp_path / f"img{suffix}")
    back = read_image(path)
    np.testing.assert_array_equal(back.array, vol.array)
    np.testing.assert_allclose(back.affine, vol.affine, atol=1e-5)
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_labelmap_requires_integers():
    vol = _oblique_volume()
    lm = LabelMap.from_volume(vol.with_array((vol.array % 5).astype(np.float32)))
    assert lm.array.dtype == np.uint8
    with pytest.raises(ValueError):
        LabelMap.from_volume(vol.with_array(np.full(vol.shape, 0.5, np.float32)))
