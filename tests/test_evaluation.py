"""evaluate_pair and the `limbseg evaluate` command on files and folders."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from limbseg.cli import main
from limbseg.errors import LimbsegError
from limbseg.evaluation import case_id, evaluate_pair
from limbseg.io import write_image
from limbseg.volume import LabelMap, Volume

AFFINE = np.diag([-1.5, -1.5, 3.0, 1.0])


def _pair(shift: int = 1):
    ref = np.zeros((16, 16, 8), np.uint8)
    ref[4:10, 4:10, 1:5] = 1
    ref[4:10, 4:10, 5:7] = 2
    pred = np.roll(ref, shift, axis=0)
    return LabelMap(pred, AFFINE), LabelMap(ref, AFFINE)


def test_evaluate_pair_rows():
    pred, ref = _pair()
    rows = evaluate_pair(pred, ref, case="c1")
    by = {r["structure"]: r for r in rows}
    assert list(by) == ["tibia", "femur", "fibula", "pelvis"]
    assert by["tibia"]["dice"] == pytest.approx(2 * 5 * 6 * 4 / (2 * 144))
    assert by["tibia"]["volume_error_cm3"] == 0.0
    assert by["tibia"]["ref_cm3"] == pytest.approx(144 * 1.5 * 1.5 * 3 / 1000)
    assert by["tibia"]["hd95_mm"] == pytest.approx(1.5)
    assert by["fibula"]["dice"] == 1.0 and by["fibula"]["hd95_mm"] == 0.0


def test_grid_mismatch_is_user_error():
    pred, ref = _pair()
    shifted = AFFINE.copy()
    shifted[0, 3] += 5.0
    moved = LabelMap(pred.array, shifted)
    with pytest.raises(LimbsegError, match="grids differ"):
        evaluate_pair(moved, ref)


def test_case_id():
    from pathlib import Path

    assert case_id(Path("a/case001_0000.nii.gz")) == "case001"
    assert case_id(Path("case001.nrrd")) == "case001"


def test_cli_on_folders(tmp_path, capsys):
    (tmp_path / "pred").mkdir()
    (tmp_path / "ref").mkdir()
    for n in range(3):
        pred, ref = _pair(shift=n)
        write_image(Volume(pred.array, AFFINE), tmp_path / "pred" / f"s{n}.nii.gz")
        write_image(Volume(ref.array, AFFINE), tmp_path / "ref" / f"s{n}.nii.gz")
    write_image(Volume(ref.array, AFFINE), tmp_path / "ref" / "extra.nii.gz")  # unmatched: ignored
    rc = main(["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"),
               "-o", str(tmp_path / "rep")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "| tibia |" in out
    rows = list(csv.DictReader(open(tmp_path / "rep" / "metrics.csv")))
    assert {r["case"] for r in rows} == {"s0", "s1", "s2"} and len(rows) == 12
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    tib = [float(r["dice"]) for r in rows if r["structure"] == "tibia"]
    assert summary["structures"]["tibia"]["dice"]["mean"] == pytest.approx(np.mean(tib))
    assert (tmp_path / "rep" / "boxplot.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "rep" / "summary.md").is_file()


def test_cli_errors(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert main(["evaluate", "--pred", str(tmp_path / "a"), "--ref", str(tmp_path / "b")]) == 2
    assert main(["evaluate", "--pred", str(tmp_path / "nope"), "--ref", str(tmp_path / "b")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_segment_output_folders_are_matched_by_folder_name(tmp_path):
    from limbseg.evaluation import match_cases

    pred, ref = _pair()
    (tmp_path / "out" / "case7_0000").mkdir(parents=True)
    write_image(Volume(pred.array, AFFINE), tmp_path / "out" / "case7_0000" / "labels.nii.gz")
    (tmp_path / "ref").mkdir()
    write_image(Volume(ref.array, AFFINE), tmp_path / "ref" / "case7.nii.gz")
    [(cid, p, r)] = match_cases(tmp_path / "out", tmp_path / "ref")
    assert cid == "case7" and p.name == "labels.nii.gz" and r.name == "case7.nii.gz"
