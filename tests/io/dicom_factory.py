"""Build small DICOM series with pydicom for tests (reused by other test packages).

Geometry is given the limbseg way: an array indexed ``(i, j, k)`` (i = column of the pixel
matrix, j = row, k = slice) and a 4x4 RAS affine; the factory writes LPS DICOM attributes.
The affine should be right-handed along k (k along row x column cosines), as scanners write.
Patient name and ID are set to :data:`PATIENT_NAME` / :data:`PATIENT_ID` so tests can check
that they never leak into metadata or logs.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
PATIENT_NAME = "Secret^Child"
PATIENT_ID = "PID-SECRET-0042"
_SOP_CLASS = {"MR": "1.2.840.10008.5.1.4.1.1.4", "CT": "1.2.840.10008.5.1.4.1.1.2"}


def affine_from(spacing: Sequence[float], origin: Sequence[float] = (0, 0, 0),
                rotation: np.ndarray | None = None) -> np.ndarray:
    """A RAS affine with columns ``rotation[:, a] * spacing[a]`` and the given RAS origin (mm)."""
    affine = np.eye(4)
    rot = np.eye(3) if rotation is None else np.asarray(rotation, dtype=float)
    affine[:3, :3] = rot * np.asarray(spacing, dtype=float)
    affine[:3, 3] = origin
    return affine


def rotation(axis: str, degrees: float) -> np.ndarray:
    """3x3 rotation about x, y or z (right-handed)."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    m = {"x": [[1, 0, 0], [0, c, -s], [0, s, c]], "y": [[c, 0, s], [0, 1, 0], [-s, 0, c]],
         "z": [[c, -s, 0], [s, c, 0], [0, 0, 1]]}[axis]
    return np.asarray(m, dtype=float)


def _base_dataset(modality: str, series_uid: str, study_uid: str, description: str,
                  image_type: Sequence[str]) -> Dataset:
    ds = Dataset()
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = study_uid[:60] + ".1"
    ds.Modality = modality
    ds.SeriesDescription = description
    ds.SeriesNumber = 1
    ds.ImageType = list(image_type)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    return ds


def write_series(
    folder: str | Path,
    array_ijk: np.ndarray,
    affine_ras: np.ndarray,
    *,
    rescale: tuple[float, float] = (1.0, 0.0),
    shuffle_names: bool = True,
    reverse_instance_numbers: bool = False,
    transfer_syntax: str | None = None,
    series_uid: str | None = None,
    study_uid: str | None = None,
    description: str = "test series",
    modality: str = "MR",
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "M"),
    skip_slices: Sequence[int] = (),
    positions_mm: Sequence[float] | None = None,
    seed: int = 0,
) -> list[Path]:
    """Write one DICOM file per slice; return the paths in k order (skipped slices omitted).

    Args:
        array_ijk: stored (pre-rescale) integer values, shape (I, J, K), uint16 or int16;
            the real value of a voxel is ``stored * slope + intercept``.
        affine_ras: 4x4 voxel -> RAS mm.
        rescale: (RescaleSlope, RescaleIntercept) written to every slice.
        shuffle_names: random file names (no extension) instead of ``slice_000.dcm``.
        reverse_instance_numbers: InstanceNumber runs against position.
        transfer_syntax: a compressed transfer syntax UID to encode with pydicom.
        skip_slices: k indices not written (to simulate a missing slice).
        positions_mm: override the offset of each slice along k (mm from the origin) for
            uneven spacing; default ``k * |affine[:, 2]|``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    array_ijk = np.asarray(array_ijk)
    if array_ijk.dtype not in (np.uint16, np.int16):
        raise ValueError("array_ijk must be uint16 or int16")
    lps = LPS_TO_RAS @ np.asarray(affine_ras, dtype=float)
    sp = np.linalg.norm(lps[:3, :3], axis=0)
    row_cos, col_cos, k_dir = (lps[:3, a] / sp[a] for a in range(3))
    n_i, n_j, n_k = array_ijk.shape
    offsets = [k * sp[2] for k in range(n_k)] if positions_mm is None else list(positions_mm)
    series_uid = series_uid or generate_uid()
    study_uid = study_uid or generate_uid()
    rng = random.Random(seed)
    paths: list[Path] = []
    for k in range(n_k):
        if k in skip_slices:
            continue
        ds = _base_dataset(modality, series_uid, study_uid, description, image_type)
        ds.PixelRepresentation = 1 if array_ijk.dtype == np.int16 else 0
        ds.Rows, ds.Columns = n_j, n_i
        ds.PixelSpacing = [f"{sp[1]:.6g}", f"{sp[0]:.6g}"]  # [row spacing (along j), column spacing (along i)]
        ds.SliceThickness = f"{sp[2]:.6g}"
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*row_cos, *col_cos)]
        ds.ImagePositionPatient = [f"{v:.6f}" for v in lps[:3, 3] + offsets[k] * k_dir]
        ds.InstanceNumber = n_k - k if reverse_instance_numbers else k + 1
        ds.RescaleSlope, ds.RescaleIntercept = f"{rescale[0]:.6g}", f"{rescale[1]:.6g}"
        ds.SOPClassUID = _SOP_CLASS.get(modality, _SOP_CLASS["MR"])
        ds.SOPInstanceUID = generate_uid()
        ds.PixelData = np.ascontiguousarray(array_ijk[:, :, k].T).tobytes()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        if transfer_syntax is not None:
            ds.compress(transfer_syntax, np.ascontiguousarray(array_ijk[:, :, k].T))
        name = f"{rng.getrandbits(64):016x}" if shuffle_names else f"slice_{k:03d}.dcm"
        path = folder / name
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_localizer(folder: str | Path, *, series_uid: str | None = None, size: int = 8) -> list[Path]:
    """A 3-plane localizer series (one slice per plane, ImageType LOCALIZER), 8x8 pixels."""
    uid = series_uid or generate_uid()
    paths = []
    planes = [np.eye(3), rotation("x", 90), rotation("y", -90) @ rotation("z", 90)]
    for n, rot in enumerate(planes):
        arr = np.full((size, size, 1), 100 + n, dtype=np.uint16)
        paths += write_series(folder, arr, affine_from((2, 2, 5), (0, 0, 0), rot), series_uid=uid,
                              description="localizer", image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
                              seed=100 + n)
    return paths


def read_back(path: str | Path) -> Dataset:
    """Full pydicom dataset of one written file (for assertions)."""
    return pydicom.dcmread(path)
