"""``limbseg labels merge`` / ``limbseg labels from-mesh`` end to end on tiny NIfTI files."""

from __future__ import annotations

import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import trimesh

from limbseg.cli import main
from limbseg.io.mesh import write_mesh
from limbseg.io.nifti import write_nifti
from limbseg.volume import Volume


@pytest.fixture()
def study(tmp_path: Path) -> Path:
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    affine[:3, 3] = [-15.5, -15.5, -9.0]
    scan = Volume(np.random.default_rng(2).random((32, 32, 10)).astype(np.float32), affine)
    write_nifti(scan, tmp_path / "scan.nii.gz")
    for name, lo, hi in (("tibia", 4, 12), ("femur", 10, 20)):
        m = np.zeros(scan.shape, np.uint8)
        m[lo:hi, 4:12, 2:8] = 1
        write_nifti(scan.with_array(m), tmp_path / f"{name}.nii.gz")
    write_nifti(Volume(np.ones((8, 8, 4), np.uint8), np.eye(4)), tmp_path / "small.nii.gz")
    for side, x in (("left", 8.0), ("right", -8.0)):
        s = trimesh.creation.icosphere(subdivisions=3, radius=4.0)
        s.apply_translation([x, 3.0, 0.0])
        write_mesh(s, tmp_path / f"femur_{side}.ply")  # RAS centre (x, 3, 0); on disk LPS (-x, -3, 0)
    far = trimesh.creation.icosphere(subdivisions=2, radius=4.0)
    far.apply_translation([0.0, 0.0, 400.0])
    write_mesh(far, tmp_path / "far.stl")
    return tmp_path


def _labels(path: Path) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(str(path))
    return np.asarray(img.dataobj), img.affine


def test_merge_reports_overlap_and_keeps_affine(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = study / "labels.nii.gz"
    rc = main(["labels", "merge", "--scan", str(study / "scan.nii.gz"), "--mask", f"tibia={study / 'tibia.nii.gz'}",
               "--mask", f"femur={study / 'femur.nii.gz'}", "-o", str(out)])
    assert rc == 0
    captured = capsys.readouterr()
    assert "overlapping voxels: 96" in captured.out and "tibia" in captured.out
    labels, affine = _labels(out)
    assert np.array_equal(affine, nib.load(str(study / "scan.nii.gz")).affine)
    assert labels.dtype == np.uint8 and (labels[10:12, 4:12, 2:8] == 0).all()
    rc = main(["labels", "merge", "--scan", str(study / "scan.nii.gz"), "--mask", f"tibia={study / 'tibia.nii.gz'}",
               "--mask", f"femur={study / 'femur.nii.gz'}", "--priority", "tibia,femur", "-o", str(out)])
    assert rc == 0 and (_labels(out)[0][10:12, 4:12, 2:8] == 1).all()


def test_from_mesh_unites_meshes_and_switches_space(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = study / "m.nii.gz"
    args = ["labels", "from-mesh", "--reference", str(study / "scan.nii.gz"),
            "--mesh", f"femur={study / 'femur_left.ply'}", "--mesh", f"femur={study / 'femur_right.ply'}", "-o", str(out)]
    assert main(args) == 0
    lps, affine = _labels(out)
    centre = (affine[:3, :3] @ np.argwhere(lps == 2).mean(axis=0)) + affine[:3, 3]
    assert np.allclose(centre, [0.0, 3.0, 0.0], atol=0.5)  # two spheres at RAS x = +-8, y = 3
    assert (lps[:16] == 2).sum() == (lps[16:] == 2).sum() > 0
    assert main([*args, "--space", "RAS"]) == 0
    ras, _ = _labels(out)
    assert np.array_equal(ras, lps[::-1, ::-1, :])
    assert "femur" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["merge", "--scan", "{d}/nope.nii.gz", "--mask", "tibia={d}/tibia.nii.gz"], "no such"),
        (["merge", "--scan", "{d}/scan.nii.gz", "--mask", "tibia"], "NAME=PATH"),
        (["merge", "--scan", "{d}/scan.nii.gz", "--mask", "patella={d}/tibia.nii.gz"], "unknown structure"),
        (["merge", "--scan", "{d}/scan.nii.gz", "--mask", "tibia={d}/small.nii.gz"], "does not cover"),
        (["merge", "--scan", "{d}/scan.nii.gz", "--mask", "tibia={d}/tibia.nii.gz", "--priority", "patella"],
         "unknown structure in --priority"),
        (["from-mesh", "--reference", "{d}/scan.nii.gz", "--mesh", "femur={d}/missing.ply"], "no such mesh"),
        (["from-mesh", "--reference", "{d}/scan.nii.gz", "--mesh", "femur={d}/far.stl"], "outside the scan"),
        (["from-mesh", "--reference", "{d}/scan.nii.gz", "--mesh", "femur={d}/femur_left.ply", "--labels",
          "{d}/none.json"], "no such labels file"),
    ],
)
def test_bad_inputs_exit_2_one_line_no_output(
    study: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    out = study / "out.nii.gz"
    rc = main(["labels", *[a.format(d=study) for a in argv], "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and re.search(message, err)
    assert not out.exists() and not list(study.glob(".*partial*"))


def test_bad_output_extension_and_missing_subcommand(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["labels", "merge", "--scan", str(study / "scan.nii.gz"), "--mask", f"tibia={study / 'tibia.nii.gz'}",
               "-o", str(study / "out.png")])
    assert rc == 2 and not (study / "out.png").exists()
    assert main(["labels"]) == 2
    assert "subcommand" in capsys.readouterr().err
