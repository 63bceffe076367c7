"""``limbseg prepare`` end to end: summary, exit codes, re-run, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh

from limbseg.cli import main
from limbseg.io.mesh import write_mesh
from limbseg.io.nifti import write_nifti
from limbseg.volume import Volume


@pytest.fixture()
def manifest(tmp_path: Path) -> Path:
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    affine[:3, 3] = [-11.5, -11.5, -7.0]
    scan = Volume(np.random.default_rng(3).random((24, 24, 8)).astype(np.float32), affine)
    write_nifti(scan, tmp_path / "a.nii.gz")
    m = np.zeros(scan.shape, np.uint8)
    m[2:8, 2:8, 1:5] = 1
    write_nifti(scan.with_array(m), tmp_path / "tibia_a.nii.gz")
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=5.0)
    write_mesh(sphere, tmp_path / "femur_b.obj")
    path = tmp_path / "manifest.csv"
    path.write_text("id,scan,tibia,femur\nA,a.nii.gz,tibia_a.nii.gz,\nB,a.nii.gz,,femur_b.obj\n")
    return path


def test_prepare_imports_then_skips(manifest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = manifest.parent / "ds"
    assert main(["prepare", str(manifest), "-o", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "imported 2, skipped 0" in text and "holds 2 cases" in text
    assert (out / "imagesTr" / "A_0000.nii.gz").is_file() and (out / "labelsTr" / "B.nii.gz").is_file()
    assert json.loads((out / "dataset.json").read_text())["numTraining"] == 2
    assert main(["prepare", str(manifest), "-o", str(out), "--no-progress"]) == 0
    assert "imported 0, skipped 2" in capsys.readouterr().out


def test_prepare_with_refused_case_exits_1(manifest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with manifest.open("a") as f:
        f.write("C,missing.nii.gz,tibia_a.nii.gz,\n")
    out = manifest.parent / "ds"
    assert main(["prepare", str(manifest), "-o", str(out), "--no-progress"]) == 1
    text = capsys.readouterr().out
    assert "refused: C (missing file)" in text
    report = json.loads((out / "prepare_report.json").read_text())
    assert report["refused"][0]["id"] == "C" and report["imported"] == ["A", "B"]


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        (None, [], "no such manifest"),
        ("id,scan,tibia\nA,missing.nii.gz,x.nii.gz\n", [], "no case could be imported"),
        ("id,scan,kneecap\nA,a.nii.gz,x.nii.gz\n", [], "unknown manifest column"),
        ("id,scan,tibia\nA,a.nii.gz,tibia_a.nii.gz\n", ["--priority", "tibia,patella"], "priority"),
        ("id,scan,tibia\nA,a.nii.gz,tibia_a.nii.gz\n", ["--labels", "nope.json"], "no such labels file"),
    ],
)
def test_bad_inputs_exit_2_one_line_nothing_written(
    manifest: Path, capsys: pytest.CaptureFixture[str], content: str | None, extra: list[str], message: str
) -> None:
    target = manifest.parent / "m2.csv"
    if content is not None:
        target.write_text(content)
    out = manifest.parent / "ds"
    rc = main(["prepare", str(target), "-o", str(out), "--no-progress", *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and message in err
    assert not out.exists()
