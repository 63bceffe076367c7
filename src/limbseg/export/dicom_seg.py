"""``segmentation.dcm``: a DICOM Segmentation (highdicom) referencing the source MR series.

The source datasets come from ``Volume.meta["dicom_files"]`` (paths or pydicom datasets, one per
slice, in ``k`` order, as the DICOM reader stores them). Frame ``k`` of the label map is the pixel
matrix ``labels[:, :, k].T`` (rows = ``j``, columns = ``i``), matching source image ``k``.
Segments carry SNOMED CT codes (category 91723000 "Anatomical structure").
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from limbseg import __version__
from limbseg.errors import LimbsegError
from limbseg.io.atomic import atomic_path
from limbseg.labels import nonzero_box
from limbseg.volume import LabelMap

#: SNOMED CT codes of the default structures (code value, meaning).
SNOMED = {
    "tibia": ("12611008", "Tibia"),
    "femur": ("71341001", "Femur"),
    "fibula": ("87342007", "Fibula"),
    "pelvis": ("12921003", "Pelvis"),
}
_CATEGORY = ("91723000", "Anatomical structure")


#: Type 2 attributes highdicom copies from the source; absent ones are added empty (on a copy).
_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyID", "StudyDate", "StudyTime",
          "AccessionNumber", "ReferringPhysicianName")


def _datasets(files: Sequence[Any]) -> list[Any]:
    import copy

    import pydicom

    out = []
    for f in files:
        ds = copy.copy(f) if isinstance(f, pydicom.Dataset) else pydicom.dcmread(str(f), stop_before_pixels=True)
        for keyword in _TYPE2:
            if keyword not in ds:
                setattr(ds, keyword, "")
        out.append(ds)
    return out


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


def write_dicom_seg(labels: LabelMap, source_files: Sequence[Any], path: str | Path) -> Path:
    """Write a BINARY DICOM SEG of ``labels`` referencing ``source_files`` (one per k slice)."""
    import highdicom as hd

    path = Path(path)
    if len(source_files) != labels.shape[2]:
        raise LimbsegError(
            f"DICOM SEG needs one source image per slice: {len(source_files)} files for {labels.shape[2]} slices"
        )
    sources = _datasets(source_files)
    lut = np.zeros(256, dtype=np.uint8)
    for n, s in enumerate(labels.scheme.structures, start=1):
        lut[s.value] = n
    frames = np.zeros(labels.shape[::-1], dtype=np.uint8)  # (k, rows=j, cols=i)
    box = nonzero_box(labels.array)
    if box is not None:  # transpose only the labelled box (a whole-volume transposed copy is slow)
        frames[box[::-1]] = lut[labels.array[box]].transpose(2, 1, 0)
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=frames,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segment_descriptions(labels),
        series_instance_uid=hd.UID(),
        series_number=900,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="limbseg",
        manufacturer_model_name="limbseg",
        software_versions=__version__,
        device_serial_number="0",
        series_description="limbseg bones",
    )
    with atomic_path(path) as tmp:
        seg.save_as(str(tmp))
    return path
