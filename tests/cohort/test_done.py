"""Completion markers: a subject is complete only with its marker, the same key and every file intact."""

from __future__ import annotations

from limbseg.cohort.done import (
    MARKER,
    forget,
    input_fingerprint,
    is_complete,
    read_marker,
    remove_leftovers,
    write_marker,
)

KEY = {"scan": "/data/a.nii.gz", "input": {"files": 1, "bytes": 10}, "model": "abc", "tta": False,
       "postprocess": True, "formats": ["ply"]}


def _subject(tmp_path):
    folder = tmp_path / "a"
    (folder / "meshes").mkdir(parents=True)
    for name in ("labels.nii.gz", "labels.json", "statistics.csv", "meshes/tibia_left.ply"):
        (folder / name).write_text(name)
    write_marker(folder, KEY, {"seconds": 1.0})
    return folder


def test_complete_needs_marker_key_and_files(tmp_path):
    folder = _subject(tmp_path)
    assert is_complete(folder, KEY) and read_marker(folder)["seconds"] == 1.0
    assert not is_complete(folder, {**KEY, "model": "retrained"})
    assert not is_complete(folder, {**KEY, "input": {"files": 1, "bytes": 11}})
    (folder / "meshes" / "tibia_left.ply").write_text("truncated")
    assert not is_complete(folder, KEY)


def test_missing_file_or_marker_is_not_complete(tmp_path):
    folder = _subject(tmp_path)
    (folder / "labels.nii.gz").unlink()
    assert not is_complete(folder, KEY)
    folder = _subject(tmp_path / "b")
    forget(folder)
    assert not (folder / MARKER).exists() and not is_complete(folder, KEY)
    (folder / MARKER).write_text("{not json")
    assert not is_complete(folder, KEY) and read_marker(folder) is None


def test_marker_without_required_outputs_is_not_complete(tmp_path):
    folder = tmp_path / "a"
    folder.mkdir()
    (folder / "statistics.csv").write_text("x")
    write_marker(folder, KEY, {})
    assert not is_complete(folder, KEY)


def test_input_fingerprint_file_folder_missing(tmp_path):
    (tmp_path / "scan.nii").write_bytes(b"12345")
    (tmp_path / "dicom" / "sub").mkdir(parents=True)
    (tmp_path / "dicom" / "1.dcm").write_bytes(b"ab")
    (tmp_path / "dicom" / "sub" / "2.dcm").write_bytes(b"abc")
    assert input_fingerprint(tmp_path / "scan.nii") == {"files": 1, "bytes": 5}
    assert input_fingerprint(tmp_path / "dicom") == {"files": 2, "bytes": 5}
    assert input_fingerprint(tmp_path / "missing") == {}


def test_remove_leftovers_only_of_that_subject(tmp_path):
    for name in (".a.x1.partial", ".a.old", ".ab.x2.partial", "a"):
        (tmp_path / name).mkdir()
    remove_leftovers(tmp_path, "a")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ab.x2.partial", "a"]
