"""Reading a cohort's subjects: manifest CSVs and folders of scans."""

from __future__ import annotations

import re

import pytest

from limbseg.cohort.subjects import read_subjects, scan_name
from limbseg.errors import LimbsegError


def test_manifest_columns_relative_paths_and_extras(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "m.csv").write_text("Subject_ID;Scan;Age;Sex\nc01;data/c01.nii.gz;8.5;F\n\n"
                                    "c02;/abs/c02/;12;M\n", encoding="utf-8-sig")
    subjects = read_subjects(tmp_path / "m.csv")
    assert [s.id for s in subjects] == ["c01", "c02"]
    assert subjects[0].scan == (tmp_path / "data" / "c01.nii.gz").resolve()
    assert str(subjects[1].scan) == "/abs/c02"
    assert subjects[0].extra == {"Age": "8.5", "Sex": "F"}


def test_folder_entries_are_scans(tmp_path):
    for name in ("b.nii.gz", "a.nrrd", "c.zip", "notes.txt", ".hidden.nii", "d.raw"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "dicom_case").mkdir()
    (tmp_path / "cohort_out").mkdir()  # the cohort's own output inside the folder is not a subject
    subjects = read_subjects(tmp_path, exclude=tmp_path / "cohort_out")
    assert [s.id for s in subjects] == ["a", "b", "c", "dicom_case"]
    assert all(s.extra == {} for s in subjects)
    assert scan_name(tmp_path / "x.NII.GZ") == "x"


@pytest.mark.parametrize(("text", "message"), [
    ("name,scan\na,a.nii\n", "the manifest has no id column (one of: subject, subject_id"),
    ("subject,file\na,a.nii\n", "the manifest has no scan column"),
    ("subject,scan\na,a.nii\na,b.nii\n", "two subjects have the id 'a'"),
    ("subject,scan\n../up,a.nii\n", "line 2: subject id '../up' cannot name a folder"),
    ("subject,scan\nfailures.csv,a.nii\n", "cannot name a folder"),
    ("subject,scan\na,\n", "line 2: no scan path"),
    ("subject,scan\n", "no subjects found"),
])
def test_manifest_errors_name_the_file_and_line(tmp_path, text, message):
    path = tmp_path / "m.csv"
    path.write_text(text)
    with pytest.raises(LimbsegError, match=re.escape(message)) as info:
        read_subjects(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_source(tmp_path):
    with pytest.raises(LimbsegError, match="no such manifest or folder"):
        read_subjects(tmp_path / "nope.csv")
