"""``limbseg measure``: outputs, Slicer markups in LPS, cohort table, and clean failures."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from limbseg.cli import main
from limbseg.io.nifti import write_nifti
from limbseg.volume import Volume


@pytest.fixture(scope="module")
def files(tmp_path_factory, legs_labels):
    d = tmp_path_factory.mktemp("measure")
    write_nifti(legs_labels, d / "phantom.nii.gz")
    write_nifti(Volume(np.zeros((16, 16, 8), np.uint8), np.eye(4)), d / "empty.nii.gz")
    write_nifti(Volume(np.full((16, 16, 8), 0.5, np.float32), np.eye(4)), d / "float.nii.gz")
    write_nifti(Volume(np.zeros((16, 16, 8), np.float32), np.eye(4)), d / "scan.nii.gz")
    return d


def test_outputs_markups_and_cohort_table(files, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["measure", str(files / "phantom.nii.gz"), str(files / "empty.nii.gz"), "-o", str(out)]) == 0
    names = {p.relative_to(out / "phantom").as_posix() for p in (out / "phantom").rglob("*") if p.is_file()}
    assert names == {"measurements.csv", "measurements.json", "landmarks_left.mrk.json",
                     "landmarks_right.mrk.json", "qc/measurements.png"}
    rows = list(csv.DictReader(open(out / "phantom" / "measurements.csv", encoding="utf-8")))
    assert len(rows) == 27 and {r["side"] for r in rows} == {"left", "right", "right-left"}
    femur = next(r for r in rows if r["side"] == "right" and r["measurement"] == "femur_length")
    assert femur["unit"] == "mm" and femur["status"] == "ok" and "femoral_head_centre" in femur["landmarks_ras_mm"]
    doc = json.loads((out / "phantom" / "measurements.json").read_text())
    head = doc["landmarks"]["right"]["femoral_head_centre"]
    mrk = json.loads((out / "phantom" / "landmarks_right.mrk.json").read_text())
    m = mrk["markups"][0]
    assert mrk["@schema"].endswith("markups-schema-v1.0.3.json#") and m["coordinateSystem"] == "LPS"
    point = next(p for p in m["controlPoints"] if p["label"].startswith("femoral_head_centre"))
    assert point["position"] == pytest.approx([-head[0], -head[1], head[2]], abs=1e-3)
    assert head[0] > 0  # the right leg is at +x in RAS
    printed = capsys.readouterr().out
    assert "phantom: 18 of 18 measurements complete" in printed and "empty: 0 of 18" in printed
    assert not (out / "empty" / "landmarks_left.mrk.json").exists()
    table = list(csv.DictReader(open(out / "cohort_measurements.csv", encoding="utf-8")))
    assert [r["case"] for r in table] == ["phantom", "empty"]
    assert table[0]["femur_length_right_mm"] and table[1]["femur_length_right_mm"] == ""


@pytest.mark.parametrize("args", [
    ["missing.nii.gz"],
    ["float.nii.gz"],
    ["empty.nii.gz", "--scan", "scan_missing.nii.gz"],
    ["empty.nii.gz", "empty.nii.gz", "--scan", "scan.nii.gz"],
    ["empty.nii.gz", "float.nii.gz"],
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(files, tmp_path, capsys, args):
    out = tmp_path / "out"
    argv = ["measure"] + [str(files / a) if a.endswith(".nii.gz") else a for a in args] + ["-o", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("limbseg measure: error:") and "\n" not in err
    assert not out.exists() or not any(out.iterdir())
