"""The cohort tables and summary from hand-made subject folders (no segmentation)."""

from __future__ import annotations

import csv

from limbseg.cohort.api import write_tables
from limbseg.cohort.done import write_marker
from limbseg.cohort.subjects import Subject
from limbseg.cohort.tables import MEASUREMENT_COLUMNS, write_if_changed
from limbseg.export.statistics import COLUMNS
from limbseg.measure.output import CSV_COLUMNS

STATS_HEADER = ",".join(COLUMNS + ["length_diff_mm", "volume_diff_cm3"])


def _stat(structure, side, voxels, volume, length):
    cells = {c: "" for c in COLUMNS}
    cells.update(structure=structure, side=side, voxels=str(voxels), volume_cm3=volume, length_mm=length,
                 touches_edge="False")
    return ",".join(cells[c] for c in COLUMNS) + ",,"


def _subject(root, name, femur_left, femur_right, anteversion=("12.50", "15.00")):
    folder = root / name
    folder.mkdir(parents=True)
    lines = [STATS_HEADER, _stat("femur", "left", 100, femur_left, "380.0000"),
             _stat("femur", "right", 110, femur_right, "384.5000"), _stat("pelvis", "unknown", 0, "0.0000", ""),
             "femur,right-left," + "," * (len(COLUMNS) - 2) + "4.5000,"
             + f"{float(femur_right) - float(femur_left):.4f}", "pelvis,right-left," + "," * len(COLUMNS)]
    (folder / "statistics.csv").write_text("\n".join(lines) + "\n")
    measures = [",".join(CSV_COLUMNS),
                f"{name},left,femoral_anteversion,{anteversion[0]},deg,ok,,",
                f"{name},right,femoral_anteversion,{anteversion[1]},deg,ok,,",
                f"{name},right-left,femoral_anteversion,2.50,deg,ok,,",
                f"{name},left,tibia_length,,mm,incomplete,tibia not found,"]
    (folder / "measurements.csv").write_text("\n".join(measures) + "\n")
    for required in ("labels.nii.gz", "labels.json"):
        (folder / required).write_text("x")
    write_marker(folder, {"scan": name}, {})
    return folder


def _read(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_statistics_rows_measurements_on_their_bone(tmp_path):
    subjects = [Subject("a", tmp_path / "a.nii", {"age": "8", "side": "L?"}),
                Subject("b", tmp_path / "b.nii", {"age": "11"}), Subject("c", tmp_path / "c.nii", {"age": "9"})]
    _subject(tmp_path, "a", "200.0000", "210.0000")
    _subject(tmp_path, "b", "300.0000", "290.0000")
    files = write_tables(subjects, tmp_path, {"c": "c.nii: no such file or folder"})
    rows = _read(tmp_path / "cohort_statistics.csv")
    assert list(rows[0])[:4] == ["subject", "age", "manifest_side", "structure"]
    assert list(rows[0])[-len(MEASUREMENT_COLUMNS):] == MEASUREMENT_COLUMNS
    assert [(r["subject"], r["structure"], r["side"]) for r in rows[:5]] == [
        ("a", "femur", "left"), ("a", "femur", "right"), ("a", "pelvis", "unknown"), ("a", "femur", "right-left"),
        ("a", "pelvis", "right-left")]
    assert len(rows) == 10 and rows[0]["manifest_side"] == "L?" and rows[5]["manifest_side"] == ""
    femur = {(r["subject"], r["side"]): r for r in rows if r["structure"] == "femur"}
    assert femur[("a", "left")]["femoral_anteversion_deg"] == "12.50"
    assert femur[("a", "right-left")]["femoral_anteversion_deg"] == "2.50"
    assert femur[("a", "right-left")]["volume_cm3"] == "10.0000" and femur[("a", "right-left")]["length_mm"] == "4.5000"
    assert femur[("b", "right-left")]["volume_cm3"] == "-10.0000"
    assert all(r["tibia_length_mm"] == "" for r in rows)
    assert all(r["femoral_anteversion_deg"] == "" for r in rows if r["structure"] == "pelvis")
    assert _read(tmp_path / "failures.csv") == [{"subject": "c", "scan": str(tmp_path / "c.nii"),
                                                 "error": "c.nii: no such file or folder"}]
    summary = (tmp_path / "cohort_summary.md").read_text()
    assert "3 subjects: 2 complete, 1 failed" in summary
    assert "| femur | left | 2 | 250.0 ± 70.7 (200.0 to 300.0) |" in summary
    assert "| femur | 2 | 0.00 ± 14.14 (-10.00 to 10.00) |" in summary
    assert "| femoral_anteversion_deg | right-left | 2 | 2.5 ± 0.0 (2.5 to 2.5) |" in summary
    assert {f.name for f in files} >= {"left_right.png", "volume_vs_age.png", "length_vs_age.png"}
    assert all(f.stat().st_size > 1000 for f in files if f.suffix == ".png")


def test_without_age_spread_plot_and_no_failures(tmp_path):
    _subject(tmp_path, "a", "200.0000", "210.0000")
    files = write_tables([Subject("a", tmp_path / "a.nii")], tmp_path, {})
    assert _read(tmp_path / "failures.csv") == []
    summary = (tmp_path / "cohort_summary.md").read_text()
    assert "no age column" in summary and "(cohort_plots/bones.png)" in summary and "failures.csv" not in summary
    assert (tmp_path / "cohort_plots" / "bones.png").is_file() and len(files) == 5


def test_tables_rewritten_only_when_changed(tmp_path):
    _subject(tmp_path, "a", "200.0000", "210.0000")
    subjects = [Subject("a", tmp_path / "a.nii", {"age": "8"})]
    files = write_tables(subjects, tmp_path, {})
    before = {f: f.stat().st_mtime_ns for f in files}
    write_tables(subjects, tmp_path, {})
    assert {f: f.stat().st_mtime_ns for f in files} == before
    write_tables([Subject("a", tmp_path / "a.nii", {"age": "9"})], tmp_path, {})
    assert (tmp_path / "cohort_statistics.csv").stat().st_mtime_ns != before[tmp_path / "cohort_statistics.csv"]
    assert write_if_changed(tmp_path / "t.txt", "x") and not write_if_changed(tmp_path / "t.txt", "x")
