"""Hand-made label maps and DICOM series for the export tests (seeded, tiny)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from limbseg.volume import LabelMap, Volume

SHAPE = (40, 30, 24)
SPACING = (2.0, 2.0, 3.0)
SP = 4.0  # body phantom: mm in-plane
DZ = 5.0  # body phantom: mm between slices


def axial_lps_affine(spacing=SPACING, origin=(60.0, 40.0, -100.0)) -> np.ndarray:
    """A DICOM-like axial grid: i -> patient left (RAS -x), j -> posterior (RAS -y), k -> superior."""
    a = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    a[:3, 3] = origin
    return a


def make_phantom(affine: np.ndarray | None = None) -> tuple[Volume, LabelMap]:
    """Two legs: a tibia cylinder on each side, a femur on the right only, a fibula on the left.

    Small i = patient right (RAS +x) with the default affine. The image is 100 + 50 * label + noise.
    """
    affine = axial_lps_affine() if affine is None else affine
    i, j, k = np.meshgrid(*(np.arange(s) for s in SHAPE), indexing="ij")
    lab = np.zeros(SHAPE, dtype=np.uint8)
    right_leg = (i - 10) ** 2 + (j - 15) ** 2 <= 9
    left_leg = (i - 30) ** 2 + (j - 15) ** 2 <= 9
    lab[right_leg & (k >= 2) & (k < 12)] = 1  # tibia right: 10 slices
    lab[left_leg & (k >= 2) & (k < 14)] = 1  # tibia left: 12 slices
    lab[right_leg & (k >= 13) & (k < 22)] = 2  # femur right
    lab[((i - 35) ** 2 + (j - 15) ** 2 <= 1) & (k >= 3) & (k < 10)] = 3  # fibula left
    rng = np.random.default_rng(0)
    img = (100 + 50 * lab + rng.normal(0, 1, SHAPE)).astype(np.float32)
    return Volume(img, affine, {}), LabelMap(lab, affine.copy(), {})


def write_dicom_series(volume: Volume, directory: Path) -> list[Path]:
    """Write the volume as an MR series, one file per k slice (pixel matrix = array[:, :, k].T)."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    directory.mkdir(parents=True, exist_ok=True)
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ volume.affine
    sp = volume.spacing
    row_dir, col_dir = lps[:3, 0] / sp[0], lps[:3, 1] / sp[1]
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    paths = []
    for k in range(volume.shape[2]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality, ds.PatientID, ds.PatientName, ds.PatientSex = "MR", "anon", "anon^", "O"
        ds.PatientBirthDate, ds.StudyDate, ds.StudyTime, ds.StudyID = "", "20240101", "120000", "1"
        ds.AccessionNumber, ds.ReferringPhysicianName, ds.SeriesNumber, ds.InstanceNumber = "", "", 1, k + 1
        ds.Manufacturer = "test"
        ds.ImageOrientationPatient = [*row_dir.tolist(), *col_dir.tolist()]
        ds.ImagePositionPatient = (lps[:3, :3] @ [0, 0, k] + lps[:3, 3]).tolist()
        ds.PixelSpacing = [sp[1], sp[0]]
        ds.SliceThickness = sp[2]
        ds.Rows, ds.Columns = volume.shape[1], volume.shape[0]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = np.ascontiguousarray(volume.array[:, :, k].T.astype(np.uint16)).tobytes()
        path = directory / f"{k:04d}.dcm"
        ds.save_as(str(path), enforce_file_format=True)
        paths.append(path)
    return paths


def body_phantom(z_lo: float, z_hi: float, *, seed: int = 0) -> Volume:
    """A lying body in RAS mm: legs (x = +-70) from z = 0 to 600, trunk to 1000, arms, neck, head.

    Stored DICOM-like: i -> patient left (RAS -x), j -> posterior, k -> superior.
    """
    nx, ny = 110, 70
    nz = int((z_hi - z_lo) / DZ)
    affine = np.diag([-SP, -SP, DZ, 1.0])
    affine[:3, 3] = (SP * (nx - 1) / 2, SP * (ny - 1) / 2, z_lo)
    i, j, k = np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz), indexing="ij", sparse=True)
    x, y, z = affine[0, 0] * i + affine[0, 3], affine[1, 1] * j + affine[1, 3], DZ * k + z_lo
    legs = ((np.abs(x) - 70) ** 2 + y**2 <= 55**2) & (z >= 0) & (z < 600)
    trunk = ((x / 150) ** 2 + (y / 100) ** 2 <= 1) & (z >= 600) & (z < 1000)
    arms = ((np.abs(x) - 195) ** 2 + y**2 <= 35**2) & (z >= 550) & (z < 1000)
    head = (x**2 + y**2 <= 80**2) & (z >= 1000) & (z < 1250)
    body = legs | trunk | arms | head
    rng = np.random.default_rng(seed)
    img = np.where(body, 100.0, 5.0) + rng.normal(0, 5, body.shape)
    return Volume(img.astype(np.float32), affine, {"source": "phantom"})
