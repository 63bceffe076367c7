"""Merging masks and voxelizing meshes into label maps on a scan's grid; resampling with coverage check."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from limbseg.data.labelmaps import labels_from_meshes, load_scheme, merge_label_masks, parse_priority
from limbseg.data.resample import covers, resample_to
from limbseg.errors import LimbsegError
from limbseg.labels import DEFAULT_SCHEME
from limbseg.volume import Volume


def _scan(shape=(20, 16, 12), spacing=(1.0, 1.0, 2.0), origin=(-10.0, -8.0, -12.0)) -> Volume:
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = origin
    return Volume(np.random.default_rng(0).random(shape).astype(np.float32), affine)


def _box(scan: Volume, lo, hi) -> Volume:
    m = np.zeros(scan.shape, np.uint8)
    m[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = 1
    return scan.with_array(m)


def test_overlap_becomes_background_by_default() -> None:
    scan = _scan()
    tibia, femur = _box(scan, (2, 2, 2), (10, 10, 6)), _box(scan, (8, 2, 2), (16, 10, 6))
    labels, report = merge_label_masks(scan, {"tibia": tibia, "femur": femur})
    assert labels.array.dtype == np.uint8 and np.array_equal(labels.affine, scan.affine)
    assert report.overlap_voxels == 2 * 8 * 4
    assert (labels.array[8:10, 2:10, 2:6] == 0).all()
    assert report.voxels == {"tibia": 6 * 8 * 4, "femur": 6 * 8 * 4}
    assert any("more than one structure" in w for w in report.warnings)


def test_priority_rule_first_listed_wins() -> None:
    scan = _scan()
    tibia, femur = _box(scan, (2, 2, 2), (10, 10, 6)), _box(scan, (8, 2, 2), (16, 10, 6))
    labels, report = merge_label_masks(scan, {"tibia": tibia, "femur": femur}, priority=["femur", "tibia"])
    assert (labels.array[8:10, 2:10, 2:6] == DEFAULT_SCHEME.value_of("femur")).all()
    assert report.overlap_voxels == 64 and report.voxels["femur"] == 8 * 8 * 4
    with pytest.raises(LimbsegError, match="unknown"):
        merge_label_masks(scan, {"tibia": tibia}, priority=["tibai"])


def test_coarser_mask_covering_the_scan_is_resampled_with_warning() -> None:
    scan = _scan()
    coarse_affine = scan.affine @ np.diag([2.0, 2.0, 2.0, 1.0])
    coarse_affine[:3, 3] = scan.index_to_ras([[0.5, 0.5, 0.5]])[0]  # same outer faces
    coarse = np.zeros((10, 8, 6), np.uint8)
    coarse[2:5, 1:4, 1:3] = 1
    labels, report = merge_label_masks(scan, {"tibia": Volume(coarse, coarse_affine)})
    assert any("resampled" in w for w in report.warnings)
    expected = np.zeros(scan.shape, bool)
    expected[4:10, 2:8, 2:6] = True
    assert np.array_equal(labels.array == 1, expected)


def test_mask_not_covering_the_scan_is_refused() -> None:
    scan = _scan()
    small = Volume(np.ones((10, 16, 12), np.uint8), scan.affine)  # covers only half of i
    with pytest.raises(LimbsegError, match="does not cover"):
        merge_label_masks(scan, {"femur": small})
    shifted = scan.with_array(np.ones(scan.shape, np.uint8))
    shifted.affine = shifted.affine.copy()
    shifted.affine[0, 3] += 5.0
    assert not covers(shifted, scan)
    with pytest.raises(LimbsegError, match="does not cover"):
        resample_to(shifted, scan, order=0)


def test_non_binary_mask_thresholded_with_warning_and_unknown_name_refused() -> None:
    scan = _scan()
    mask = _box(scan, (2, 2, 2), (6, 6, 6)).array * 255
    labels, report = merge_label_masks(scan, {"pelvis": scan.with_array(mask)})
    assert report.voxels["pelvis"] == 64 and any("not only 0/1" in w for w in report.warnings)
    with pytest.raises(LimbsegError, match="unknown structure"):
        merge_label_masks(scan, {"patella": scan.with_array(mask)})


def test_resample_linear_and_nearest_keep_reference_affine() -> None:
    scan = _scan()
    ramp = scan.with_array(np.broadcast_to(np.arange(20, dtype=np.float32)[:, None, None], scan.shape).copy())
    fine_affine = scan.affine @ np.diag([0.5, 0.5, 0.5, 1.0])
    fine_affine[:3, 3] = scan.origin
    fine = Volume(np.zeros((39, 31, 23), np.uint8), fine_affine)
    lin = resample_to(ramp, fine, order=1)
    assert np.array_equal(lin.affine, fine.affine) and lin.array.dtype == np.float32
    assert np.allclose(lin.array[:, 0, 0], np.arange(39) * 0.5)
    near = resample_to(ramp.with_array(ramp.array.astype(np.int16)), fine, order=0)
    assert near.array.dtype == np.int16


def test_meshes_lps_vs_ras_give_mirrored_labels() -> None:
    scan = _scan(shape=(40, 40, 10), spacing=(1.0, 1.0, 2.0), origin=(-19.5, -19.5, -9.0))
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=5.0)
    sphere.apply_translation([10.0, 6.0, 0.0])  # file coordinates
    lab_ras, _ = labels_from_meshes(scan, {"femur": [sphere]})
    lps_as_ras = sphere.copy()
    lps_as_ras.vertices = sphere.vertices * [-1.0, -1.0, 1.0]  # what read_mesh(space="LPS") returns
    lab_lps, _ = labels_from_meshes(scan, {"femur": [lps_as_ras]})
    c_ras = scan.index_to_ras(np.argwhere(lab_ras.array == 2).mean(axis=0))[0]
    c_lps = scan.index_to_ras(np.argwhere(lab_lps.array == 2).mean(axis=0))[0]
    assert np.allclose(c_ras, [10.0, 6.0, 0.0], atol=0.5)
    assert np.allclose(c_lps, [-10.0, -6.0, 0.0], atol=0.5)
    assert np.array_equal(lab_lps.array, lab_ras.array[::-1, ::-1, :])


def test_several_meshes_per_structure_are_united_and_outside_mesh_refused() -> None:
    scan = _scan(shape=(40, 40, 10), spacing=(1.0, 1.0, 2.0), origin=(-19.5, -19.5, -9.0))
    left = trimesh.creation.icosphere(3, 4.0)
    left.apply_translation([10.0, 0.0, 0.0])
    right = left.copy()
    right.apply_translation([-20.0, 0.0, 0.0])
    one, _ = labels_from_meshes(scan, {"femur": [left]})
    both, report = labels_from_meshes(scan, {"femur": [left, right]})
    assert report.voxels["femur"] == 2 * one.mask("femur").sum()
    far = left.copy()
    far.apply_translation([0.0, 0.0, 300.0])
    with pytest.raises(LimbsegError, match="outside the scan"):
        labels_from_meshes(scan, {"femur": [far]})


def test_load_scheme_and_priority_parsing(tmp_path) -> None:
    (tmp_path / "dataset.json").write_text('{"labels": {"background": 0, "femur": 1, "patella": 2}}')
    scheme = load_scheme(tmp_path / "dataset.json")
    assert scheme.names == ["femur", "patella"] and scheme.value_of("patella") == 2
    assert load_scheme(None) is DEFAULT_SCHEME
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(LimbsegError):
        load_scheme(tmp_path / "bad.json")
    with pytest.raises(LimbsegError):
        load_scheme(tmp_path / "missing.json")
    assert parse_priority("Femur, tibia") == ["femur", "tibia"] and parse_priority("") is None
    with pytest.raises(LimbsegError):
        parse_priority("femur,femur")
