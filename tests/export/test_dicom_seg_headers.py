"""DICOM SEG from real-world headers: odd source values are left out or blanked, never cost the SEG.

Each series is 32 x 32 x 4, written by segment_phantoms.write_dicom_series (a complete, valid header),
then edited the way real scanners and anonymisers leave headers. Patient name and ID are "secrets" that
must never reach the log.
"""

from __future__ import annotations

import copy
import io
import logging
import warnings
import zipfile

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag
from segment_phantoms import axial_lps_affine, write_dicom_series

from limbseg.export import dicom_seg
from limbseg.export.dicom_seg import write_dicom_seg
from limbseg.volume import LabelMap, Volume

SHAPE = (32, 32, 4)
AFFINE = axial_lps_affine(spacing=(1.0, 1.0, 3.0))
LOGGER = "limbseg.export.dicom_seg"
PATIENT_NAME, PATIENT_ID = "Secret^Child", "PID-SECRET-0042"
CLEAN = {"PatientName": PATIENT_NAME, "PatientID": PATIENT_ID, "PatientSex": "F",
         "PatientBirthDate": "20150302", "StudyDate": "20240101", "StudyTime": "120000",
         "StudyID": "S1", "AccessionNumber": "ACC1", "ReferringPhysicianName": "Doe^Jane",
         "PatientAge": "009Y", "StudyDescription": "legs"}


def _labels() -> LabelMap:
    lab = np.zeros(SHAPE, dtype=np.uint8)
    lab[4:10, 5:12, 0:3] = 1  # tibia
    lab[20:26, 8:14, 1:4] = 2  # femur
    lab[12:14, 20:22, 2] = 3  # fibula
    return LabelMap(lab, AFFINE.copy())


def _raw(keyword: str, vr: str, value: bytes) -> RawDataElement:
    """An element as read from a file, bypassing pydicom's checks on assignment."""
    return RawDataElement(Tag(keyword), vr, len(value), value, 0, False, True)


def _sources(tmp_path, **header) -> list[pydicom.Dataset]:
    """The series' datasets with ``header`` applied to every slice: ``None`` deletes, bytes are raw values."""
    image = Volume(np.full(SHAPE, 100.0, np.float32), AFFINE.copy(), {})
    files = write_dicom_series(image, tmp_path / "dicom")
    out = []
    for f in files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        for keyword, value in {**CLEAN, **header}.items():
            if value is None:
                ds.pop(keyword, None)
            elif isinstance(value, bytes):
                ds[keyword] = _raw(keyword, pydicom.datadict.dictionary_VR(keyword), value)
            else:
                with warnings.catch_warnings():  # pydicom warns about the invalid values we mean to set
                    warnings.simplefilter("ignore")
                    setattr(ds, keyword, value)
        out.append(ds)
    return out


def _snapshot(sources) -> list[dict[str, str]]:
    with warnings.catch_warnings():  # decoding the invalid values on purpose
        warnings.simplefilter("ignore")
        return [{e.keyword or str(e.tag): str(e.value) for e in ds} for ds in sources]


def _write(tmp_path, sources, caplog, secrets=(), quiet=False) -> tuple[pydicom.Dataset, list[str]]:
    """Write the SEG and check it: the pixels, the caller's sources unchanged, no ``secrets`` in any log
    record or Python warning (none at all from others when ``quiet``); return (the SEG, this module's
    warning lines)."""
    labels = _labels()
    with warnings.catch_warnings():  # a zip member's closed stream is not copied: pydicom says so
        warnings.simplefilter("ignore")
        before = copy.deepcopy(sources)  # raw elements stay raw in ``sources``: the writer decodes them
    caplog.clear()
    with caplog.at_level(logging.DEBUG), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = write_dicom_seg(labels, sources, tmp_path / "segmentation.dcm")
    assert path == tmp_path / "segmentation.dcm" and path.is_file()
    assert _snapshot(sources) == _snapshot(before)  # the caller's datasets: nothing added, blanked or removed
    said = [r.getMessage() for r in caplog.records] + [str(w.message) for w in caught]
    for secret in (PATIENT_NAME, PATIENT_ID, *secrets):  # patient data reaches neither log nor stderr
        assert not any(secret in text for text in said), secret
    if quiet:
        assert caught == [] and all(r.name == LOGGER for r in caplog.records if r.levelno >= logging.WARNING)
    seg = hd.seg.segread(str(path))
    frames = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[ds.SOPInstanceUID for ds in sources], segment_numbers=[1, 2, 3, 4],
        combine_segments=True,
    )
    np.testing.assert_array_equal(frames, labels.array.transpose(2, 1, 0))
    lines = [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]
    assert all("\n" not in line for line in lines)
    return pydicom.dcmread(path), lines


def _blank(seg: pydicom.Dataset, keyword: str) -> bool:
    return keyword in seg and seg[keyword].value in ("", None)


def test_clean_header_is_copied_without_warning(tmp_path, caplog):
    seg, lines = _write(tmp_path, _sources(tmp_path), caplog)
    assert lines == []
    assert seg.PatientID == PATIENT_ID and str(seg.PatientName) == PATIENT_NAME
    assert (seg.PatientSex, seg.StudyDate, seg.StudyTime, seg.StudyID) == ("F", "20240101", "120000", "S1")
    assert seg.PatientAge == "009Y" and seg.StudyDescription == "legs" and seg.ContentLabel == "MR_SEG"


def test_clean_header_from_paths(tmp_path, caplog):
    sources = _sources(tmp_path)
    for n, ds in enumerate(sources):
        ds.save_as(tmp_path / f"{n}.dcm", enforce_file_format=True)
    paths = [tmp_path / f"{n}.dcm" for n in range(len(sources))]
    labels = _labels()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        seg = pydicom.dcmread(write_dicom_seg(labels, paths, tmp_path / "seg.dcm"))
    assert [r for r in caplog.records if r.name == LOGGER] == []
    assert seg.PatientSex == "F"
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == sources[0].SeriesInstanceUID


def test_sources_read_from_a_zip_archive(tmp_path, caplog):
    """The pipeline's zip path: datasets read from closed zip members are copied without pydicom warnings."""
    from limbseg.io.dicom import read_source_datasets

    archive = tmp_path / "series.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for n, ds in enumerate(_sources(tmp_path, PatientSex="0000")):
            buffer = io.BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            zf.writestr(f"series/{n}.dcm", buffer.getvalue())
    meta = {"dicom_files": [f"series/{n}.dcm" for n in range(SHAPE[2])], "dicom_archive": str(archive)}
    seg, lines = _write(tmp_path, read_source_datasets(meta), caplog, quiet=True)
    assert _blank(seg, "PatientSex") and seg.PatientID == PATIENT_ID
    assert lines == ["DICOM SEG: left out invalid source values: PatientSex (not M, F or O)"]


def test_patient_sex_outside_the_standard_is_blanked(tmp_path, caplog):
    sources = _sources(tmp_path, PatientSex="0000")
    seg, lines = _write(tmp_path, sources, caplog)
    assert _blank(seg, "PatientSex")
    assert seg.PatientID == PATIENT_ID and seg.StudyDate == "20240101" and seg.PatientBirthDate == "20150302"
    assert lines == ["DICOM SEG: left out invalid source values: PatientSex (not M, F or O)"]
    assert sources[0].PatientSex == "0000"


def test_malformed_dates_and_time_are_blanked(tmp_path, caplog):
    sources = _sources(tmp_path, StudyDate=b"2021131 ", PatientBirthDate=b"20211340", StudyTime=b"256100")
    seg, lines = _write(tmp_path, sources, caplog, secrets=("2021131", "20211340", "256100"))
    assert _blank(seg, "StudyDate") and _blank(seg, "PatientBirthDate") and _blank(seg, "StudyTime")
    assert seg.PatientSex == "F" and seg.StudyID == "S1" and seg.PatientID == PATIENT_ID
    assert len(lines) == 1
    for part in ("StudyDate (not a valid DA)", "PatientBirthDate (not a valid DA)",
                 "StudyTime (not a valid TM)"):
        assert part in lines[0]


def test_missing_patient_name_and_study_id_are_written_empty(tmp_path, caplog):
    sources = _sources(tmp_path, PatientName=None, StudyID=None)
    seg, lines = _write(tmp_path, sources, caplog)
    assert _blank(seg, "PatientName") and _blank(seg, "StudyID")
    assert seg.PatientID == PATIENT_ID and seg.AccessionNumber == "ACC1"
    assert lines == ["DICOM SEG: written empty, missing in the source: PatientName, StudyID"]
    assert all("PatientName" not in ds and "StudyID" not in ds for ds in sources)


def test_over_long_and_forbidden_text_is_left_out(tmp_path, caplog):
    long_name = "Averylongfamilyname" * 4 + "^Child"  # a PN component over 64 characters
    sources = _sources(tmp_path, AccessionNumber=b"ACC-0123456789-XYZ", StudyID=b"S\x071 ",
                       PatientName=long_name.encode(), StudyDescription=b"x" * 70, PatientAge=b"9 years ")
    seg, lines = _write(tmp_path, sources, caplog, secrets=(long_name, "ACC-0123456789-XYZ", "9 years"))
    assert _blank(seg, "AccessionNumber") and _blank(seg, "StudyID") and _blank(seg, "PatientName")
    assert "StudyDescription" not in seg and "PatientAge" not in seg  # type 3: left out, not blanked
    assert seg.PatientID == PATIENT_ID and seg.StudyDate == "20240101" and seg.PatientSex == "F"
    assert len(lines) == 1 and long_name not in lines[0]
    for part in ("AccessionNumber (not a valid SH)", "StudyID (control characters)",
                 "PatientName (not a valid PN)", "StudyDescription (not a valid LO)",
                 "PatientAge (not a valid AS)"):
        assert part in lines[0]


def test_character_set_and_modality_highdicom_refuses(tmp_path, caplog):
    """'ISO_IR 6' (the default repertoire spelt out) is refused by highdicom: the SEG is written as UTF-8."""
    sources = _sources(tmp_path, SpecificCharacterSet="ISO_IR 6", Modality="mr", PatientName="Nocaret")
    seg, lines = _write(tmp_path, sources, caplog, secrets=("Nocaret",))  # highdicom would quote it
    assert seg.SpecificCharacterSet == "ISO_IR 192" and seg.ContentLabel == "SEG"
    assert str(seg.PatientName) == "Nocaret^" and seg.PatientSex == "F"  # the same PN, without the warning
    assert lines == [
        "DICOM SEG: left out invalid source values: Modality (not a code string: content label SEG)"]
    assert sources[0].Modality == "mr"


def test_last_resort_blanks_what_highdicom_refuses_and_retries(tmp_path, caplog, monkeypatch):
    """With the up-front checks off, highdicom's own ValueError names PatientSex: it is blanked, once."""
    monkeypatch.setattr(dicom_seg, "_problem", lambda elem: None)
    seg, lines = _write(tmp_path, _sources(tmp_path, PatientSex="0000"), caplog)
    assert _blank(seg, "PatientSex") and seg.PatientID == PATIENT_ID and seg.StudyDate == "20240101"
    assert lines == ["DICOM SEG: left out invalid source values: PatientSex (refused by highdicom)"]


def test_last_resort_retries_only_once(tmp_path, monkeypatch):
    monkeypatch.setattr(dicom_seg, "_problem", lambda elem: None)
    sources = _sources(tmp_path, PatientSex="0000", StudyDate=b"2021131 ")  # two refusals: one retry only
    with pytest.raises(ValueError):
        write_dicom_seg(_labels(), sources, tmp_path / "segmentation.dcm")
    assert not (tmp_path / "segmentation.dcm").exists()
