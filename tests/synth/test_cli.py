"""``limbseg synth``: full layout, DICOM geometry, deterministic UIDs, bad options."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest

from limbseg.cli import main
from limbseg.io import read_image
from limbseg.io.mesh import read_mesh

SMALL_ARGS = ["--pixel", "4", "--slice-thickness", "8"]


def test_cli_writes_the_full_layout(tmp_path, small_subject):
    out = tmp_path / "D"
    assert main(["synth", "-n", "2", "-o", str(out), "--seed", "3", "--jobs", "2", *SMALL_ARGS]) == 0
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["numTraining"] == 2 and meta["labels"]["pelvis"] == 4
    for case in ("virtual_00003", "virtual_00004"):
        subj = out / "subjects" / case
        dicom = read_image(subj / "dicom")
        image = read_image(out / "imagesTr" / f"{case}_0000.nii.gz")
        labels = read_image(out / "labelsTr" / f"{case}.nii.gz")
        assert dicom.same_grid(image, tol_mm=1e-3) and labels.same_grid(image, tol_mm=1e-3)
        assert np.array_equal(dicom.array, image.array)
        assert set(np.unique(labels.array)) == {0, 1, 2, 3, 4}
        for bone in ("tibia", "femur", "fibula", "pelvis"):
            assert read_image(subj / "masks" / f"{bone}.nii.gz").same_grid(image)
            for side in ("left", "right"):
                assert (subj / "meshes" / f"{bone}_{side}.ply").is_file()
        ds = pydicom.dcmread(next((subj / "dicom").iterdir()))
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4" and ds.PatientName == f"VIRTUAL^{case}"
        assert ds.SeriesDescription == "AutoBind WATER"
    # subject 3 does not depend on -n or --jobs: identical to the in-process subject
    first = read_image(out / "imagesTr" / "virtual_00003_0000.nii.gz")
    assert np.array_equal(first.array, small_subject.image.array)
    # meshes are LPS on disk and read back to the RAS meshes
    mesh = read_mesh(out / "subjects" / "virtual_00003" / "meshes" / "femur_left.ply", space="LPS")
    assert np.allclose(mesh.vertices, small_subject.meshes["femur_left"].vertices, atol=1e-3)
    assert mesh.centroid[0] < 0  # patient left is -x in RAS


def test_same_seed_same_dicom_uids(tmp_path, small_subject):
    from limbseg.synth.cohort import write_subject

    write_subject(small_subject, tmp_path / "a")
    write_subject(small_subject, tmp_path / "b")
    files_a = sorted((tmp_path / "a" / "subjects" / "virtual_00003" / "dicom").iterdir())
    files_b = sorted((tmp_path / "b" / "subjects" / "virtual_00003" / "dicom").iterdir())
    assert [f.read_bytes() for f in files_a] == [f.read_bytes() for f in files_b]
    uids = {pydicom.dcmread(f).SOPInstanceUID for f in files_a}
    assert len(uids) == len(files_a)


@pytest.mark.parametrize("bad", [["-n", "0"], ["--pixel", "0"], ["--contrast", "ct"], ["--slice-thickness", "40"],
                                 ["--orientation", "oblique"], ["--jobs", "0"], ["--ages", "9", "7"],
                                 ["--ages", "17", "20"], ["--ages", "nan", "8"], ["--ages", "5"]])
def test_bad_options_exit_2(tmp_path, bad):
    args = ["synth", "-o", str(tmp_path / "x"), *SMALL_ARGS, *bad]
    try:
        code = main(args)
    except SystemExit as exc:  # argparse errors
        code = exc.code
    assert code == 2
    assert not (tmp_path / "x" / "dataset.json").exists()


def test_cli_distractors_are_recorded_and_background(tmp_path):
    out = tmp_path / "D"
    assert main(["synth", "-n", "1", "-o", str(out), "--seed", "4", "--distractors", *SMALL_ARGS]) == 0
    meta = json.loads((out / "dataset.json").read_text())["limbseg"]
    assert "patella" in meta["distractors"]
    info = meta["subjects"][0]
    assert info["arms"] is True  # seed 4 has arms
    assert {"patella_left", "patella_right", "talus_left", "sacrum", "lumbar", "arm_left", "arm_right"} <= set(
        info["distractors"])
    assert info["distractors"]["patella_left"]["kind"] == "patella"
    labels = read_image(out / "labelsTr" / "virtual_00004.nii.gz").array
    assert set(np.unique(labels)) == {0, 1, 2, 3, 4}
    meshes = {p.stem for p in (out / "subjects" / "virtual_00004" / "meshes").iterdir()}
    assert meshes == {f"{b}_{s}" for b in ("tibia", "femur", "fibula", "pelvis") for s in ("left", "right")}


def test_age_range_keeps_only_children_of_those_ages(tmp_path):
    from limbseg.synth.cohort import cohort_seeds, subject_age, subject_model

    assert cohort_seeds(3, 10) == [10, 11, 12]
    young = cohort_seeds(5, 100, ages=(5.0, 7.0))
    assert len(young) == 5 and young == sorted(young) and young[0] >= 100
    assert all(5.0 <= subject_age(s) < 7.0 for s in young)
    skipped = [s for s in range(100, young[-1]) if s not in young]
    assert skipped and all(not 5.0 <= subject_age(s) < 7.0 for s in skipped)
    # the age is the one the simulation gives that subject
    assert subject_age(young[0]) == pytest.approx(subject_model(young[0], pixel=4, slice_thickness=8).sk.age)
    out = tmp_path / "D"
    assert main(["synth", "-n", "1", "-o", str(out), "--seed", "100", "--ages", "5", "7", *SMALL_ARGS]) == 0
    meta = json.loads((out / "dataset.json").read_text())["limbseg"]
    assert meta["ages"] == [5.0, 7.0] and meta["subjects"][0]["seed"] == young[0]
    assert 5.0 <= meta["subjects"][0]["age"] < 7.0
    assert (out / "labelsTr" / f"virtual_{young[0]:05d}.nii.gz").is_file()
