"""Importing a study from a manifest into an nnU-Net v2 raw dataset."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import trimesh

from limbseg.data.prepare import (
    count_complete_cases,
    prepare_dataset,
    read_manifest,
    write_dataset_case,
    write_dataset_json,
)
from limbseg.errors import LimbsegError
from limbseg.io.mesh import write_mesh
from limbseg.io.nifti import write_nifti
from limbseg.labels import DEFAULT_SCHEME
from limbseg.volume import LabelMap, Volume


def make_study(root: Path) -> Path:
    """Two cases: case01 with mask images (one on a 2x coarser grid), case02 with LPS meshes."""
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    affine[:3, 3] = [-15.5, -15.5, -9.0]
    rng = np.random.default_rng(1)
    scan = Volume(rng.normal(100, 10, (32, 32, 10)).astype(np.float32), affine)
    (root / "scans").mkdir()
    write_nifti(scan, root / "scans" / "s1.nii.gz")
    write_nifti(scan, root / "scans" / "s2.nii.gz")
    tibia = np.zeros(scan.shape, np.uint8)
    tibia[4:12, 4:12, 2:8] = 1
    write_nifti(scan.with_array(tibia), root / "tibia1.nii.gz")
    coarse_affine = affine @ np.diag([2.0, 2.0, 1.0, 1.0])
    coarse_affine[:3, 3] = scan.index_to_ras([[0.5, 0.5, 0.0]])[0]
    femur = np.zeros((16, 16, 10), np.uint8)
    femur[8:12, 8:12, 2:8] = 1
    write_nifti(Volume(femur, coarse_affine), root / "femur1.nii.gz")
    for side, x in (("left", 8.0), ("right", -8.0)):
        sphere = trimesh.creation.icosphere(subdivisions=3, radius=4.0)
        sphere.apply_translation([x, 0.0, 0.0])
        write_mesh(sphere, root / f"femur_{side}.ply")  # LPS on disk
    manifest = root / "manifest.csv"
    manifest.write_text(
        "id,scan,tibia,femur\n"
        "case01,scans/s1.nii.gz,tibia1.nii.gz,femur1.nii.gz\n"
        "case02,scans/s2.nii.gz,,femur_left.ply;femur_right.ply\n"
    )
    return manifest


def test_prepare_two_cases_then_rerun_skips(tmp_path: Path) -> None:
    manifest = make_study(tmp_path)
    out = tmp_path / "ds"
    result = prepare_dataset(manifest, out, DEFAULT_SCHEME, progress=False)
    assert result.imported == ["case01", "case02"] and not result.refused
    data = json.loads((out / "dataset.json").read_text())
    assert data["labels"] == {"background": 0, "tibia": 1, "femur": 2, "fibula": 3, "pelvis": 4}
    assert data["channel_names"] == {"0": "MRI"} and data["numTraining"] == 2 and data["file_ending"] == ".nii.gz"
    assert data["limbseg"]["source"] == "limbseg prepare"
    src = nib.load(str(tmp_path / "scans" / "s1.nii.gz"))
    img = nib.load(str(out / "imagesTr" / "case01_0000.nii.gz"))
    lab = nib.load(str(out / "labelsTr" / "case01.nii.gz"))
    assert np.array_equal(img.affine, src.affine) and np.array_equal(lab.affine, src.affine)
    assert np.array_equal(np.asarray(img.dataobj), np.asarray(src.dataobj))
    labels = np.asarray(lab.dataobj)
    assert lab.get_data_dtype() == np.uint8
    assert (labels == 1).sum() == 8 * 8 * 6 and (labels == 2).sum() == 8 * 8 * 6
    assert any("resampled" in w for w in result.cases["case01"]["warnings"])
    # case02: two LPS meshes of the femur, at RAS x = -8 and +8 (mirrored from the file's x)
    lab2 = np.asarray(nib.load(str(out / "labelsTr" / "case02.nii.gz")).dataobj)
    assert result.cases["case02"]["voxels"]["femur"] == (lab2 == 2).sum() > 0
    assert (lab2[:16] == 2).sum() == (lab2[16:] == 2).sum()
    report = json.loads((out / "prepare_report.json").read_text())
    assert report["imported"] == ["case01", "case02"]

    calls = []
    again = prepare_dataset(manifest, out, DEFAULT_SCHEME, progress=False, on_case=lambda *a: calls.append(a))
    assert again.skipped == ["case01", "case02"] and not again.imported
    assert calls == [(1, 2, "case01"), (2, 2, "case02")]  # the GUI's per-case progress
    assert json.loads((out / "dataset.json").read_text())["numTraining"] == 2


def test_refused_cases_have_reasons(tmp_path: Path) -> None:
    manifest = make_study(tmp_path)
    small = Volume(np.ones((8, 8, 4), np.uint8), np.eye(4))
    write_nifti(small, tmp_path / "small.nii.gz")
    write_nifti(Volume(np.zeros((32, 32, 10), np.uint8), nib.load(str(tmp_path / "tibia1.nii.gz")).affine),
                tmp_path / "empty.nii.gz")
    with manifest.open("a") as f:
        f.write("case03,scans/s1.nii.gz,missing.nii.gz,\n"
                "case04,scans/s1.nii.gz,small.nii.gz,\n"
                "case05,scans/s1.nii.gz,empty.nii.gz,\n"
                "../evil,scans/s1.nii.gz,tibia1.nii.gz,\n"
                "case01,scans/s1.nii.gz,tibia1.nii.gz,\n")
    result = prepare_dataset(manifest, tmp_path / "ds", DEFAULT_SCHEME, progress=False)
    assert result.imported == ["case01", "case02"]
    reasons = {r["id"]: r["category"] for r in result.refused}
    assert reasons == {"case03": "missing file", "case04": "geometry mismatch", "case05": "empty mask",
                       "../evil": "invalid id", "case01": "duplicate id"}
    assert not (tmp_path / "evil_0000.nii.gz").exists()
    assert sorted(p.name for p in (tmp_path / "ds" / "labelsTr").iterdir()) == ["case01.nii.gz", "case02.nii.gz"]


def test_overlap_reported_as_warning_and_structure_lost_to_overlap_refused(tmp_path: Path) -> None:
    manifest = make_study(tmp_path)
    tibia = nib.load(str(tmp_path / "tibia1.nii.gz"))
    shifted = np.roll(np.asarray(tibia.dataobj), 4, axis=0)
    write_nifti(Volume(shifted, tibia.affine), tmp_path / "fibula1.nii.gz")
    manifest.write_text("id,scan,tibia,fibula\n"
                        "case01,scans/s1.nii.gz,tibia1.nii.gz,fibula1.nii.gz\n"
                        "case02,scans/s1.nii.gz,tibia1.nii.gz,tibia1.nii.gz\n")
    result = prepare_dataset(manifest, tmp_path / "ds", DEFAULT_SCHEME, progress=False)
    assert result.imported == ["case01"]
    assert result.cases["case01"]["overlap_voxels"] == 4 * 8 * 6
    assert any("more than one structure" in w for w in result.cases["case01"]["warnings"])
    assert result.refused[0]["id"] == "case02" and result.refused[0]["category"] == "empty mask"
    manifest.write_text("id,scan,tibia,fibula\ncase02,scans/s1.nii.gz,tibia1.nii.gz,tibia1.nii.gz\n")
    with pytest.raises(LimbsegError, match="no case could be imported"):
        prepare_dataset(manifest, tmp_path / "ds2", DEFAULT_SCHEME, progress=False)
    assert not (tmp_path / "ds2").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "empty"), ("name,scan,tibia\n", "'id' and 'scan'"), ("id,scan\nc1,s.nii.gz\n", "no structure column"),
     ("id,scan,tibai\nc1,s.nii.gz,t.nii.gz\n", "unknown manifest column"), ("id,scan,tibia\n", "no case")],
)
def test_bad_manifests(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(LimbsegError, match=message):
        read_manifest(tmp_path / "m.csv", DEFAULT_SCHEME)


def test_other_labels_in_existing_dataset_refused(tmp_path: Path) -> None:
    manifest = make_study(tmp_path)
    out = tmp_path / "ds"
    write_dataset_json(out, DEFAULT_SCHEME.from_names({"femur": 1}), 0)
    with pytest.raises(LimbsegError, match="other labels"):
        prepare_dataset(manifest, out, DEFAULT_SCHEME, progress=False)


def test_writers_for_other_callers(tmp_path: Path) -> None:
    image = Volume(np.zeros((4, 5, 6), np.int16), np.diag([0.5, 0.5, 3.0, 1.0]))
    labels = LabelMap(np.ones((4, 5, 6), np.uint8), image.affine.copy())
    img_path, lab_path = write_dataset_case(tmp_path, "sub-001", image, labels)
    assert img_path.name == "sub-001_0000.nii.gz" and lab_path.name == "sub-001.nii.gz"
    assert count_complete_cases(tmp_path) == 1
    path = write_dataset_json(tmp_path, DEFAULT_SCHEME, 1, {"source": "synth"})
    assert json.loads(path.read_text())["limbseg"]["source"] == "synth"
    with pytest.raises(LimbsegError, match="safe file name"):
        write_dataset_case(tmp_path, "a/b", image, labels)
    with pytest.raises(LimbsegError, match="grid"):
        write_dataset_case(tmp_path, "c", image, LabelMap(np.ones((4, 5, 7), np.uint8), image.affine.copy()))
