"""Write a synthetic Volume as one MR Image Storage series (pydicom), deterministically.

One file per k slice; the pixel matrix of slice k is ``array[:, :, k].T`` (rows along j,
columns along i). Geometry (ImagePositionPatient, ImageOrientationPatient, PixelSpacing,
SliceThickness, SpacingBetweenSlices) is the Volume's affine converted to LPS. UIDs come
from :func:`pydicom.uid.generate_uid` with entropy from the subject's seed, so the same seed
writes identical files. Patient data are pseudonymous (``VIRTUAL^<case>``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from limbseg.io.atomic import atomic_dir
from limbseg.volume import LPS_TO_RAS, Volume

_DATE = "20240101"


def _ds(x: float) -> str:
    return f"{x:.6f}".rstrip("0").rstrip(".") if abs(x) > 1e-9 else "0"


def _series_header(case: str, seed: int, description: str, info: dict) -> Dataset:
    uid = lambda *k: generate_uid(entropy_srcs=["limbseg-synth", str(seed), case, *k])  # noqa: E731
    ds = Dataset()
    ds.SOPClassUID = MRImageStorage
    ds.Modality = "MR"
    ds.Manufacturer = "limbseg virtual cohort"
    ds.PatientName = f"VIRTUAL^{case}"
    ds.PatientID = case
    ds.PatientBirthDate = ""
    ds.PatientSex = info.get("sex", "O")
    ds.PatientAge = f"{int(info.get('age', 10)):03d}Y"
    ds.PatientIdentityRemoved = "YES"
    ds.StudyInstanceUID = uid("study")
    ds.SeriesInstanceUID = uid("series")
    ds.FrameOfReferenceUID = uid("frame")
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = _DATE
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.StudyDescription = "Lower limbs (virtual)"
    ds.SeriesDescription = description
    ds.BodyPartExamined = "LEG"
    ds.ImageType = ["DERIVED", "PRIMARY", "DIXON", "WATER" if "WATER" in description else "OTHER"]
    ds.ScanningSequence = "GR"
    ds.SequenceVariant = "SP"
    ds.MRAcquisitionType = "3D"
    ds.MagneticFieldStrength = 3
    ds.PatientPosition = "FFS"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope = "0", "1"
    return ds


def write_mr_series(volume: Volume, folder: str | Path, *, case: str, seed: int, description: str,
                    info: dict | None = None) -> Path:
    """Write ``volume`` (uint16 (I, J, K), RAS affine) as a DICOM series in ``folder`` (atomic)."""
    array = np.asarray(volume.array)
    if array.dtype != np.uint16:
        raise ValueError("the series must be uint16")
    lps = LPS_TO_RAS @ volume.affine
    sp = np.linalg.norm(lps[:3, :3], axis=0)
    row, col = lps[:3, 0] / sp[0], lps[:3, 1] / sp[1]
    header = _series_header(case, seed, description, info or {})
    header.Rows, header.Columns = int(array.shape[1]), int(array.shape[0])
    header.PixelSpacing = [_ds(sp[1]), _ds(sp[0])]
    header.SliceThickness = _ds(sp[2])
    header.SpacingBetweenSlices = _ds(sp[2])
    header.ImageOrientationPatient = [_ds(v) for v in (*row, *col)]
    with atomic_dir(folder) as tmp:
        for k in range(array.shape[2]):
            ds = Dataset()
            ds.update(header)
            ds.SOPInstanceUID = generate_uid(entropy_srcs=["limbseg-synth", str(seed), case, "sop", str(k)])
            ds.InstanceNumber = k + 1
            pos = lps[:3, :3] @ np.array([0.0, 0.0, k]) + lps[:3, 3]
            ds.ImagePositionPatient = [_ds(v) for v in pos]
            ds.SliceLocation = _ds(float(pos @ np.cross(row, col)))
            plane = np.ascontiguousarray(array[:, :, k].T)
            ds.SmallestImagePixelValue, ds.LargestImagePixelValue = int(plane.min()), int(plane.max())
            ds.PixelData = plane.tobytes()
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = MRImageStorage
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.file_meta = meta
            ds.save_as(tmp / f"IM{k + 1:05d}.dcm", enforce_file_format=True)
    return Path(folder)
