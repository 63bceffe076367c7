"""Statistics, meshes, seg.nrrd and DICOM SEG on hand-made label maps with known answers."""

from __future__ import annotations

import json

import nrrd
import numpy as np
import pytest
import trimesh
from segment_phantoms import make_phantom, write_dicom_series

from limbseg.export.meshes import export_meshes, mask_to_mesh
from limbseg.export.seg_nrrd import write_seg_nrrd
from limbseg.export.statistics import compute_statistics, long_axis_length_mm, write_statistics
from limbseg.io.nrrd import read_nrrd
from limbseg.volume import LabelMap


def _row(rows, name, side):
    return next(r for r in rows if r["structure"] == name and r["side"] == side)


def test_statistics_values_and_sides(phantom):
    image, labels = phantom
    rows = compute_statistics(labels, image)
    assert len(rows) == 8
    tib_r, tib_l = _row(rows, "tibia", "right"), _row(rows, "tibia", "left")
    # disk of radius 3 has 29 lattice points; 10 / 12 slices; voxel 2 x 2 x 3 mm = 12 mm3
    assert tib_r["voxels"] == 290 and tib_l["voxels"] == 348
    assert tib_r["volume_cm3"] == pytest.approx(290 * 12 / 1000)
    assert tib_r["length_mm"] == pytest.approx(30.0) and tib_l["length_mm"] == pytest.approx(36.0)
    # right tibia is at small i; i runs to the patient's left (RAS -x): RAS x = 60 - 2 * 10 = 40 (right)
    assert tib_r["centroid_ras_x_mm"] == pytest.approx(40.0)
    assert tib_r["centroid_ras_y_mm"] == pytest.approx(40.0 - 30.0)
    assert tib_r["centroid_ras_z_mm"] == pytest.approx(-100 + 3 * 6.5)
    assert tib_r["centroid_lps_x_mm"] == pytest.approx(-40.0)
    assert tib_r["mean_intensity"] == pytest.approx(150.0, abs=0.3)
    assert tib_r["touches_edge"] is False
    assert _row(rows, "femur", "left")["voxels"] == 0 and _row(rows, "femur", "left")["length_mm"] is None
    assert _row(rows, "femur", "right")["voxels"] == 29 * 9
    assert _row(rows, "fibula", "left")["voxels"] == 5 * 7


def test_statistics_files_and_differences(phantom, tmp_path):
    image, labels = phantom
    rows = compute_statistics(labels, image)
    files = write_statistics(rows, tmp_path)
    assert [f.name for f in files] == ["statistics.csv", "statistics.json"]
    doc = json.loads((tmp_path / "statistics.json").read_text())
    tib = next(d for d in doc["left_right_differences"] if d["structure"] == "tibia")
    assert tib["length_diff_mm"] == pytest.approx(-6.0)
    assert tib["volume_diff_cm3"] == pytest.approx((290 - 348) * 12 / 1000)
    femur = next(d for d in doc["left_right_differences"] if d["structure"] == "femur")
    assert femur["volume_diff_cm3"] is None
    lines = (tmp_path / "statistics.csv").read_text().splitlines()
    assert len(lines) == 1 + 8 + 4 and lines[0].startswith("structure,side,voxels,volume_cm3")


def test_edge_and_oblique_length():
    lab = np.zeros((10, 10, 10), np.uint8)
    lab[0, 4:6, 2:8] = 1
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    rows = compute_statistics(LabelMap(lab, affine))
    assert any(r["touches_edge"] for r in rows if r["structure"] == "tibia")  # one leg, side unknown
    # a diagonal run of voxels along (1, 1, 0) at 1 mm: centres span 9 * sqrt(2), footprint sqrt(2)
    ijk = np.array([[n, n, 0] for n in range(10)], float)
    assert long_axis_length_mm(ijk, np.eye(4)) == pytest.approx(10 * np.sqrt(2))


def test_empty_labels_statistics():
    rows = compute_statistics(LabelMap(np.zeros((5, 5, 5), np.uint8), np.eye(4)))
    assert all(r["voxels"] == 0 and r["volume_cm3"] == 0 and r["length_mm"] is None for r in rows)


def _check_on_boundary(mesh, mask, affine, radius):
    ijk = np.rint(trimesh.transform_points(mesh.vertices, np.linalg.inv(affine))).astype(int)
    pad = np.pad(mask, radius + 1)
    offsets = np.arange(-radius, radius + 1)
    seen_in = np.zeros(len(ijk), bool)
    seen_out = np.zeros(len(ijk), bool)
    for di in offsets:
        for dj in offsets:
            for dk in offsets:
                v = pad[ijk[:, 0] + di + radius + 1, ijk[:, 1] + dj + radius + 1, ijk[:, 2] + dk + radius + 1]
                seen_in |= v
                seen_out |= ~v
    assert seen_in.all() and seen_out.all()


@pytest.mark.parametrize("smooth", [0, 10])
def test_mesh_lies_on_labels(phantom, smooth):
    _, labels = phantom
    mask = labels.array == 1
    mask[20:, :, :] = False  # right tibia only
    mesh = mask_to_mesh(mask, labels.affine, smooth_iterations=smooth)
    assert mesh.is_watertight and mesh.volume > 0
    _check_on_boundary(mesh, mask, labels.affine, radius=1 if smooth == 0 else 2)
    centroid = labels.index_to_ras(np.argwhere(mask).mean(axis=0))[0]
    assert np.abs(mesh.center_mass - centroid).max() < 2.0  # within one voxel (2-3 mm)
    # enclosed volume close to the voxel volume (marching cubes cuts corners: within 25 %)
    assert mesh.volume == pytest.approx(mask.sum() * 12.0, rel=0.25)


def test_mesh_files_are_lps(phantom, tmp_path):
    _, labels = phantom
    meshes = export_meshes(labels, tmp_path, formats=("ply", "stl"))
    assert set(meshes) == {("tibia", "left"), ("tibia", "right"), ("femur", "right"), ("fibula", "left")}
    assert (tmp_path / "tibia_right.ply").exists() and (tmp_path / "femur_right.stl").exists()
    assert not (tmp_path / "femur_left.ply").exists()
    written = trimesh.load(tmp_path / "tibia_right.ply", process=False)
    ras = meshes[("tibia", "right")].vertices
    np.testing.assert_allclose(written.vertices.mean(axis=0), ras.mean(axis=0) * [-1, -1, 1], atol=1e-3)
    assert written.vertices[:, 0].mean() < 0  # right leg: LPS x negative here (RAS x = +40)


def test_seg_nrrd_round_trip(phantom, tmp_path):
    _, labels = phantom
    path = write_seg_nrrd(labels, tmp_path / "segmentation.seg.nrrd")
    data, header = nrrd.read(str(path))
    np.testing.assert_array_equal(data, labels.array)
    names = [header[f"Segment{n}_Name"] for n in range(4)]
    assert names == ["tibia", "femur", "fibula", "pelvis"]
    assert header["Segment1_LabelValue"] == "2" and header["space"] == "left-posterior-superior"
    assert header["Segment3_Extent"] == "0 -1 0 -1 0 -1"  # no pelvis
    np.testing.assert_allclose(read_nrrd(path).affine, labels.affine)


def test_dicom_seg_reads_back(tmp_path):
    import highdicom as hd

    from limbseg.export.dicom_seg import write_dicom_seg

    image, labels = make_phantom()
    files = write_dicom_series(image, tmp_path / "dicom")
    path = write_dicom_seg(labels, files, tmp_path / "segmentation.dcm")
    seg = hd.seg.segread(str(path))
    assert [d.SegmentLabel for d in seg.SegmentSequence] == ["tibia", "femur", "fibula", "pelvis"]
    assert seg.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeValue == "12611008"
    import pydicom

    uids = [pydicom.dcmread(str(f)).SOPInstanceUID for f in files]
    frames = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=uids, segment_numbers=[1, 2, 3, 4], combine_segments=True
    )
    np.testing.assert_array_equal(frames, labels.array.transpose(2, 1, 0))


def test_touches_edge_only_on_the_volumes_faces():
    """A crop's own faces are not the volume's: only a bone on the far faces of the grid counts."""
    lab = np.zeros((12, 12, 12), np.uint8)
    lab[4, 4, 3:8] = 1  # inside: a rod of 5 voxels
    lab[8:10, 8:10, 10:12] = 2  # reaches the last k slice
    rows = compute_statistics(LabelMap(lab, np.eye(4)), midline_x=100.0)  # everything on the left
    assert _row(rows, "tibia", "left")["touches_edge"] is False
    assert _row(rows, "femur", "left")["touches_edge"] is True
    assert _row(rows, "tibia", "left")["length_mm"] == pytest.approx(5.0)
