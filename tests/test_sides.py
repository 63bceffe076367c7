"""Sides from anatomy (issue #14): two legs, one leg beside the pelvis, header, unknown; no bone split."""

from __future__ import annotations

import json

import numpy as np
import pytest

from limbseg.export.meshes import export_meshes
from limbseg.export.statistics import compute_statistics, write_statistics
from limbseg.segmentation.postprocess import bone_sides, postprocess
from limbseg.segmentation.sides import Sides, assign_sides, dicom_header, header_side
from limbseg.volume import LabelMap

SHAPE = (64, 32, 40)
TIBIA, FEMUR, FIBULA, PELVIS = 1, 2, 3, 4


def affine(kind: str) -> np.ndarray:
    """2 x 2 x 3 mm grids: "ras" (i -> patient right), "lps" (i -> patient left, DICOM-like), "oblique"."""
    a = np.diag([2.0, 2.0, 3.0, 1.0])
    if kind == "lps":
        a = np.diag([-2.0, -2.0, 3.0, 1.0])
    elif kind == "oblique":  # 20 degrees about the superior axis
        c, s = np.cos(np.deg2rad(20)), np.sin(np.deg2rad(20))
        a = np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]]) @ a
    a[:3, 3] = (-63.0, -31.0, -60.0) if kind != "lps" else (63.0, 31.0, -60.0)
    return a


def leg(lab: np.ndarray, ci: int, lateral: int) -> None:
    """A leg along k at column ``ci``: tibia (k 2..19) and femur (k 22..34) of radius 4, a thin fibula
    ``lateral`` (+1/-1) of it."""
    i, j, k = np.meshgrid(*(np.arange(s) for s in SHAPE), indexing="ij")
    shaft = (i - ci) ** 2 + (j - 16) ** 2 <= 16
    lab[shaft & (k >= 2) & (k < 20)] = TIBIA
    lab[shaft & (k >= 22) & (k < 35)] = FEMUR
    lab[((i - ci - 7 * lateral) ** 2 + (j - 18) ** 2 <= 2) & (k >= 4) & (k < 18)] = FIBULA


def scan(centres: tuple[int, ...], kind: str = "ras", pelvis: bool = False) -> LabelMap:
    lab = np.zeros(SHAPE, np.uint8)
    for ci in centres:
        leg(lab, ci, 1 if ci > SHAPE[0] / 2 else -1)
    if pelvis:
        lab[6:58, 8:24, 35:40] = PELVIS  # centred on the field (i = 31.5)
    return LabelMap(lab, affine(kind), {})


def rows_by(rows):
    return {(r["structure"], r["side"]): r for r in rows}


def whole(labels: LabelMap, value: int, ci: int) -> int:
    """Voxels of ``value`` in the leg at column ``ci``."""
    return int((labels.array[ci - 10:ci + 11] == value).sum())


@pytest.mark.parametrize("kind", ["ras", "lps", "oblique"])
def test_two_legs_sides_follow_patient_x(kind):
    labels = scan((15, 48), kind, pelvis=True)
    sides = assign_sides(labels)
    assert sides.rule == "two legs" and {leg.side for leg in sides.legs} == {"left", "right"}
    # the leg at higher RAS x is the patient's right: i = 48 on the RAS grid, i = 15 on the LPS grid
    right_ci, left_ci = (15, 48) if kind == "lps" else (48, 15)
    x_right = (labels.affine @ [right_ci, 16, 10, 1])[0]
    x_left = (labels.affine @ [left_ci, 16, 10, 1])[0]
    assert x_left < sides.midline_x < x_right
    rows = rows_by(compute_statistics(labels, sides=sides))
    for name, value in (("femur", FEMUR), ("tibia", TIBIA), ("fibula", FIBULA)):  # whole, never split
        assert rows[(name, "right")]["voxels"] == whole(labels, value, right_ci) > 0
        assert rows[(name, "left")]["voxels"] == whole(labels, value, left_ci) > 0
        assert rows[(name, "right")]["centroid_ras_x_mm"] > rows[(name, "left")]["centroid_ras_x_mm"]
    # the pelvis is split at the midline into its two halves
    halves = rows[("pelvis", "left")]["voxels"], rows[("pelvis", "right")]["voxels"]
    assert sum(halves) == 52 * 16 * 5 and min(halves) > 0
    if kind != "oblique":
        assert halves == (26 * 16 * 5, 26 * 16 * 5)


def test_two_legs_midline_hint_used_only_inside_the_gap():
    labels = scan((15, 48))
    assert assign_sides(labels, midline_x=-3.0).midline_x == -3.0  # between the legs: taken
    through = assign_sides(labels, midline_x=(labels.affine @ [15, 16, 0, 1])[0])  # through a leg: ignored
    assert through.rule == "two legs" and through.midline_from == "gap between the legs"
    assert through.midline_x == pytest.approx((labels.affine @ [31.5, 16, 0, 1])[0], abs=1e-6)


@pytest.mark.parametrize(("kind", "side"), [("ras", "right"), ("lps", "left")])
def test_one_leg_beside_the_pelvis_takes_its_side_from_the_pelvis(kind, side):
    labels = scan((48,), kind, pelvis=True)
    sides = assign_sides(labels, header={"Laterality": "L" if side == "right" else "R"})  # pelvis wins
    assert sides.rule == "midline from pelvis" and sides.how("femur") == side and sides.how("pelvis") == "split"
    assert sides.midline_x == pytest.approx((labels.affine @ [31.5, 16, 0, 1])[0], abs=0.5)
    rows = rows_by(compute_statistics(labels, sides=sides))
    other = "left" if side == "right" else "right"
    for name, value in (("femur", FEMUR), ("tibia", TIBIA), ("fibula", FIBULA)):
        assert rows[(name, side)]["voxels"] == whole(labels, value, 48) and rows[(name, other)]["voxels"] == 0


def test_one_leg_without_pelvis_side_from_header_else_unknown():
    labels = scan((48,))
    right = assign_sides(labels, header={"Laterality": "R"})
    assert right.rule == "header Laterality=R" and right.how("tibia") == "right" and right.midline_x is None
    left = assign_sides(labels, header={"ImageLaterality": "U", "SeriesDescription": "t1_tse_cor_KNEE_L"})
    assert left.rule == "header SeriesDescription=t1_tse_cor_KNEE_L" and left.how("fibula") == "left"
    unknown = assign_sides(labels)
    assert unknown.rule == "unknown" and unknown.how("femur") == "unknown"
    rows = compute_statistics(labels, sides=unknown)
    assert {r["side"] for r in rows} == {"unknown"}
    assert rows_by(rows)[("femur", "unknown")]["voxels"] == whole(labels, FEMUR, 48)
    assert rows_by(compute_statistics(labels, sides=right))[("femur", "right")]["voxels"] == whole(labels, FEMUR, 48)


def test_single_knee_on_the_field_centre_is_never_split(tmp_path):
    """The bug: the field centre (or a midline through the knee) cut every bone into a left and right half."""
    labels = scan((32,))
    centre = float((labels.affine @ [31.5, 15.5, 0, 1])[0])
    for rows in (compute_statistics(labels), compute_statistics(labels, midline_x=centre)):
        present = [r for r in rows if r["voxels"]]
        assert sorted((r["structure"], r["side"]) for r in present) == [
            ("femur", "unknown"), ("fibula", "unknown"), ("tibia", "unknown")]
        assert rows_by(rows)[("tibia", "unknown")]["voxels"] == int((labels.array == TIBIA).sum())
    meshes = export_meshes(labels, tmp_path, smooth_iterations=0)
    assert set(meshes) == {("tibia", "unknown"), ("femur", "unknown"), ("fibula", "unknown")}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["femur_unknown.ply", "fibula_unknown.ply",
                                                          "tibia_unknown.ply"]
    # post-processing keeps each bone whole: a stray femur blob beside the knee goes, the femur stays
    noisy = labels.array.copy()
    noisy[5:7, 14:16, 30:32] = FEMUR
    out = postprocess(LabelMap(noisy, labels.affine), midline_x=centre)
    np.testing.assert_array_equal(out.array, labels.array)


def test_mesh_names_and_statistics_json_follow_the_sides(tmp_path):
    labels = scan((48,), "lps")
    sides = assign_sides(labels, header={"BodyPartExamined": "RIGHT KNEE"})
    assert sides.rule == "header BodyPartExamined=RIGHT KNEE"
    meshes = export_meshes(labels, tmp_path / "m", sides=sides, smooth_iterations=0)
    assert set(meshes) == {("tibia", "right"), ("femur", "right"), ("fibula", "right")}
    assert (tmp_path / "m" / "femur_right.ply").is_file() and not (tmp_path / "m" / "femur_left.ply").exists()
    write_statistics(compute_statistics(labels, sides=sides), tmp_path, sides=sides)
    doc = json.loads((tmp_path / "statistics.json").read_text())
    assert doc["sides"]["rule"] == "header BodyPartExamined=RIGHT KNEE"
    assert doc["sides"]["structures"]["femur"] == "right" and doc["sides"]["legs"][0]["side"] == "right"
    assert {r["side"] for r in doc["structures"]} == {"left", "right"}


def test_every_voxel_lands_on_exactly_one_side():
    for labels in (scan((15, 48), "oblique", True), scan((48,), "lps", True), scan((32,))):
        for value, name in enumerate(("tibia", "femur", "fibula", "pelvis"), start=1):
            parts = [p.mask.sum() for p in bone_sides(labels, assign_sides(labels)) if p.name == name]
            assert sum(parts) == (labels.array == value).sum()


def test_stray_noise_does_not_make_a_second_leg():
    labels = scan((48,))
    arr = labels.array.copy()
    arr[2:4, 15:17, 10:12] = TIBIA  # a few stray tibia voxels far from the leg
    sides = assign_sides(LabelMap(arr, labels.affine), header={"Laterality": "L"})
    assert sides.rule == "header Laterality=L" and sides.how("tibia") == "left"


@pytest.mark.parametrize(("header", "expected"), [
    ({"Laterality": "R"}, "right"),
    ({"Laterality": "l"}, "left"),
    ({"Laterality": "B", "SeriesDescription": "Knee Left sag"}, "left"),
    ({"SeriesDescription": "PD_FS_KneeR"}, "right"),
    ({"SeriesDescription": "T1 RT knee"}, "right"),
    ({"BodyPartExamined": "KNEE", "SeriesDescription": "cor L "}, "left"),
    ({"SeriesDescription": "LOWER LIMB"}, None),  # letters inside words do not count
    ({"SeriesDescription": "knees L+R"}, None),  # both sides named: undecided
    ({"SeriesDescription": "UPRIGHT"}, None),
    ({}, None),
    (None, None),
])
def test_header_side(header, expected):
    found = header_side(header)
    assert (found[0] if found else None) == expected


def test_dicom_header_reads_the_first_file(tmp_path):
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, ds.file_meta.MediaStorageSOPInstanceUID
    ds.Laterality, ds.SeriesDescription, ds.BodyPartExamined = "L", "knee", "KNEE"
    path = tmp_path / "a.dcm"
    ds.save_as(path, enforce_file_format=True)
    header = dicom_header({"dicom_files": [str(path), str(tmp_path / "missing.dcm")]})
    assert header == {"Laterality": "L", "BodyPartExamined": "KNEE", "SeriesDescription": "knee"}
    assert assign_sides(scan((48,)), header=header).rule == "header Laterality=L"
    assert dicom_header({}) == {} and dicom_header({"dicom_files": [str(tmp_path / "missing.dcm")]}) == {}


def test_sides_record_and_validation():
    doc = Sides.split_at(1.5).to_json()
    assert doc["rule"] == "midline given" and doc["midline_ras_x_mm"] == 1.5 and doc["default"] == "split"
    json.dumps(assign_sides(scan((15, 48), pelvis=True)).to_json())
    with pytest.raises(ValueError):
        Sides("x", None, default="split")
    with pytest.raises(ValueError):
        Sides("x", 0.0, structures=(("femur", "middle"),))
    assert assign_sides(LabelMap(np.zeros((4, 4, 4), np.uint8), np.eye(4))).rule == "no bones"
