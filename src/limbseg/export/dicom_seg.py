"""``segmentation.dcm``: a DICOM Segmentation (highdicom) referencing the source MR series.

The source datasets come from ``Volume.meta["dicom_files"]`` (paths or pydicom datasets, one per
slice, in ``k`` order, as the DICOM reader stores them). Frame ``k`` of the label map is the pixel
matrix ``labels[:, :, k].T`` (rows = ``j``, columns = ``i``), matching source image ``k``.
Segments carry SNOMED CT codes (category 91723000 "Anatomical structure").

Real headers carry odd values (PatientSex '0000', dates like '2021131', over-long IDs) that highdicom
refuses or pydicom flags. They never cost the SEG: the patient and study attributes highdicom takes from
the first source image are checked on a copy, invalid ones blanked (type 2) or left out, and one warning
line names them without their values (patient data never goes into logs).
"""

from __future__ import annotations

import copy
import functools
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from limbseg import __version__
from limbseg.errors import LimbsegError
from limbseg.io.atomic import atomic_path
from limbseg.labels import nonzero_box
from limbseg.volume import LabelMap

log = logging.getLogger(__name__)

#: SNOMED CT codes of the default structures (code value, meaning).
SNOMED = {
    "tibia": ("12611008", "Tibia"),
    "femur": ("71341001", "Femur"),
    "fibula": ("87342007", "Fibula"),
    "pelvis": ("12921003", "Pelvis"),
}
_CATEGORY = ("91723000", "Anatomical structure")


#: Patient and study attributes highdicom's ``Segmentation`` reads from the first source image as
#: attributes (an AttributeError when absent) and passes to ``SOPClass``: PatientSex must be M, F or O,
#: the dates parse as DA and the time as TM; pydicom checks the rest when highdicom assigns them.
_READ = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID",
         "StudyDate", "StudyTime")
#: Type 2 in the SEG: blanked (present, empty) when invalid; other copied attributes are left out.
_BLANKED = (*_READ, "ReferringPhysicianName")
#: Copied but never checked here: the SEG must reference the source study by it.
_KEPT = ("StudyInstanceUID",)
_SEX = ("", "M", "F", "O")
_STRING_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI",
               "UR", "UT"}
_NO_CONTROL_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "PN", "SH", "TM", "UI"}
_CONTROL = re.compile(r"[\x00-\x1a\x1c-\x1f\x7f]")  # control characters other than ESC (ISO 2022)


@functools.lru_cache(maxsize=8)
def _copied_keywords(sop_class_uid: str) -> tuple[str, ...]:
    """Root attributes highdicom copies verbatim from the source's Patient, Study and Specimen modules."""
    try:
        from highdicom import _standard_utils as standard

        modules = standard.get_iod_module_map()[standard.get_sop_class_iod_map()[sop_class_uid]]
        attributes = standard.get_module_attribute_map()
    except (ImportError, AttributeError, KeyError):  # a private helper moved, or an unknown SOP class
        return ()
    return tuple(
        str(a["keyword"]) for m in modules if m["ie"] in ("Patient", "Study") or m["key"] == "specimen"
        for a in attributes[m["key"]] if not a["path"]
    )


def _problem(elem: Any) -> str | None:
    """Why a data element's value may not go into the SEG as it is; ``None`` when it may."""
    from pydicom import config
    from pydicom.datadict import dictionary_VM
    from pydicom.multival import MultiValue
    from pydicom.valuerep import DA, TM, validate_value

    if elem.VR not in _STRING_VRS or elem.value is None or elem.value == "":
        return None
    values = list(elem.value) if isinstance(elem.value, MultiValue) else [elem.value]
    if len(values) > 1 and dictionary_VM(elem.tag) == "1":
        return "several values"
    for value in map(str, values):
        if elem.VR in _NO_CONTROL_VRS and _CONTROL.search(value):
            return "control characters"
        try:
            validate_value(elem.VR, value, config.RAISE)
            {"DA": DA, "TM": TM}.get(elem.VR, str)(value)  # what highdicom parses: also the calendar
        except (ValueError, TypeError, OverflowError):
            return f"not a valid {elem.VR}"
    if elem.keyword == "PatientSex" and elem.value not in _SEX:
        return "not M, F or O"
    return None


def _blank(ds: Any, keyword: str) -> None:
    del ds[keyword]
    if keyword in _BLANKED:
        setattr(ds, keyword, "")


def _sanitise(ds: Any, invalid: list[str], missing: list[str]) -> None:
    """Make ``ds`` (a copy) pass highdicom: fill, blank or drop what it reads; note each fix."""
    for keyword in _READ:
        if keyword not in ds:
            setattr(ds, keyword, "")
            missing.append(keyword)
    keywords = dict.fromkeys((*_BLANKED, *_copied_keywords(str(ds.get("SOPClassUID", "")))))
    for keyword in keywords:
        if keyword in _KEPT or keyword not in ds or keyword in missing:
            continue
        try:
            problem = _problem(ds[keyword])  # ds[...] decodes a raw element: it can fail
        except Exception:  # noqa: BLE001 - pydicom raises many kinds for an undecodable value
            problem = "unreadable"
        if problem:
            _blank(ds, keyword)
            invalid.append(f"{keyword} ({problem})")
    name = str(ds.PatientName)
    if name and "^" not in name:  # the same name per PS3.5 6.2.1.2; highdicom warns, quoting it, otherwise
        ds.PatientName = name + "^"


def _charset(ds: Any) -> Any:
    """The source's SpecificCharacterSet if highdicom takes it, else UTF-8 (pydicom has decoded the text)."""
    from highdicom.valuerep import _check_specific_character_set

    value = ds.get("SpecificCharacterSet")
    if value is None:
        return None
    try:
        _check_specific_character_set(value)  # refuses 'ISO_IR 6' and the standard '\\ISO 2022 IR 87'
    except ValueError:
        return "ISO_IR 192"
    return value


def _content_label(ds: Any, invalid: list[str]) -> str:
    """highdicom's default ``<Modality>_SEG``, or ``SEG`` when Modality is no code string."""
    label = f"{ds.get('Modality', '')}_SEG"
    if re.fullmatch(r"[A-Z][A-Z0-9_ ]{0,15}", label):  # highdicom's CS check; it ends in _SEG
        return label
    invalid.append("Modality (not a code string: content label SEG)")
    return "SEG"


def _culprits(message: str, ds: Any) -> list[str]:
    """Copied attributes a highdicom ValueError names, by keyword or quoted value."""
    out = []
    for keyword in dict.fromkeys((*_BLANKED, *_copied_keywords(str(ds.get("SOPClassUID", ""))))):
        if keyword in _KEPT or keyword not in ds:
            continue
        value = str(ds[keyword].value or "")
        if keyword in message or (value and (f"'{value}'" in message or f'"{value}"' in message)):
            out.append(keyword)
    return out


def _header_copy(ds: Any) -> Any:
    """A plain Dataset copy of ``ds`` to change freely; undecoded elements stay so (no deepcopy: a
    FileDataset read from a zip member holds a closed stream that pydicom warns it cannot copy)."""
    import pydicom
    from pydicom.dataelem import RawDataElement

    out = pydicom.Dataset()
    if hasattr(ds, "file_meta"):
        out.file_meta = copy.deepcopy(ds.file_meta)
    for tag in ds.keys():
        elem = ds.get_item(tag)
        out[tag] = elem if isinstance(elem, RawDataElement) else copy.deepcopy(elem)  # raw: immutable
    return out


def _datasets(files: Sequence[Any]) -> list[Any]:
    """pydicom datasets of the sources, in a new list: the caller's own objects where it passed datasets."""
    import pydicom

    return [f if isinstance(f, pydicom.Dataset) else pydicom.dcmread(str(f), stop_before_pixels=True)
            for f in files]


def segment_descriptions(labels: LabelMap) -> list[Any]:
    """highdicom SegmentDescriptions, numbered 1..n in scheme order."""
    import highdicom as hd
    from pydicom.sr.coding import Code

    category = Code(_CATEGORY[0], "SCT", _CATEGORY[1])
    out = []
    for n, s in enumerate(labels.scheme.structures, start=1):
        value, meaning = SNOMED.get(s.name, ("91723000", s.name.capitalize()))
        out.append(hd.seg.SegmentDescription(
            segment_number=n,
            segment_label=s.name,
            segmented_property_category=category,
            segmented_property_type=Code(value, "SCT", meaning),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=hd.AlgorithmIdentificationSequence(
                name="limbseg", version=__version__, family=Code("123110", "DCM", "Artificial Intelligence"),
            ),
            tracking_uid=hd.UID(),
            tracking_id=f"limbseg {s.name}",
        ))
    return out


def _frames(labels: LabelMap) -> np.ndarray:
    """Segment numbers 1..n, uint8, shape (k, rows = j, columns = i)."""
    lut = np.zeros(256, dtype=np.uint8)
    for n, s in enumerate(labels.scheme.structures, start=1):
        lut[s.value] = n
    frames = np.zeros(labels.shape[::-1], dtype=np.uint8)
    box = nonzero_box(labels.array)
    if box is not None:  # transpose only the labelled box (a whole-volume transposed copy is slow)
        frames[box[::-1]] = lut[labels.array[box]].transpose(2, 1, 0)
    return frames


def _segmentation(sources: list[Any], labels: LabelMap, frames: np.ndarray, **options: Any) -> Any:
    import highdicom as hd

    return hd.seg.Segmentation(
        source_images=sources,
        pixel_array=frames,
        segment_descriptions=segment_descriptions(labels),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        series_instance_uid=hd.UID(),
        series_number=900,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="limbseg",
        manufacturer_model_name="limbseg",
        software_versions=__version__,
        device_serial_number="0",
        series_description="limbseg bones",
        **options,
    )


def write_dicom_seg(labels: LabelMap, source_files: Sequence[Any], path: str | Path) -> Path:
    """Write a BINARY DICOM SEG of ``labels`` referencing ``source_files`` (one per k slice); return ``path``.

    highdicom copies the patient and study attributes of the first source image and refuses some values
    outside the standard (PatientSex other than M/F/O, unparsable dates, missing type 2 attributes). They
    are checked first on a copy: an invalid value is blanked (type 2) or left out, a missing one written
    empty, and one warning names them (never their values: patient data). Should highdicom still refuse a
    value it names, that one is blanked and the SEG built once more. ``source_files`` is not changed.
    """
    path = Path(path)
    if len(source_files) != labels.shape[2]:
        raise LimbsegError(
            f"DICOM SEG needs one source image per slice: {len(source_files)} files for {labels.shape[2]} slices"
        )
    sources = _datasets(source_files)
    sources[0] = first = _header_copy(sources[0])  # highdicom reads patient and study from this one only
    invalid: list[str] = []
    missing: list[str] = []
    _sanitise(first, invalid, missing)
    frames = _frames(labels)
    options = {"specific_character_set": _charset(first), "content_label": _content_label(first, invalid)}
    try:
        seg = _segmentation(sources, labels, frames, **options)
    except ValueError as exc:  # a check this module does not know (a newer highdicom): blank, try once more
        culprits = _culprits(str(exc), first)
        if not culprits:
            raise
        for keyword in culprits:
            _blank(first, keyword)
            invalid.append(f"{keyword} (refused by highdicom)")
        seg = _segmentation(sources, labels, frames, **options)
    parts = [f"left out invalid source values: {', '.join(invalid)}"] if invalid else []
    parts += [f"written empty, missing in the source: {', '.join(missing)}"] if missing else []
    if parts:
        log.warning("DICOM SEG: %s", "; ".join(parts))
    with atomic_path(path) as tmp:
        seg.save_as(str(tmp))
    return path
