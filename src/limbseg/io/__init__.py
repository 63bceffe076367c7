"""Reading and writing scans, masks and label maps with exact geometry.

``read_image`` accepts a DICOM folder, a ``.zip`` of one, NIfTI, NRRD and MetaImage;
``write_image`` writes NIfTI, NRRD or MetaImage chosen by extension. Every reader returns a
:class:`~limbseg.volume.Volume` with a RAS affine; every writer keeps that affine exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from limbseg.errors import LimbsegError
from limbseg.io.guard import reading
from limbseg.volume import Volume

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
_KIND_NAMES = {"dicom": "DICOM series", "zip": "DICOM zip archive", "dicom-file": "DICOM file",
               "nifti": "NIfTI file", "nrrd": "NRRD file", "metaimage": "MetaImage file"}


def image_kind(path: str | Path) -> str:
    """'dicom', 'zip', 'nifti', 'nrrd' or 'metaimage' from a path (folders are DICOM)."""
    p = Path(path)
    name = p.name.lower()
    if p.is_dir():
        return "dicom"
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".nii", ".nii.gz")):
        return "nifti"
    if name.endswith((".nrrd", ".nhdr")):
        return "nrrd"
    if name.endswith((".mha", ".mhd")):
        return "metaimage"
    if name.endswith(".dcm") or p.suffix == "":
        return "dicom-file"
    raise LimbsegError("unsupported image format (use a DICOM folder or .zip, .nii, .nii.gz, .nrrd, .mha)", path)


def read_image(
    path: str | Path,
    *,
    series_uid: str | None = None,
    allow_resample: bool = False,
    clean_nonfinite: bool = False,
) -> Volume:
    """Read a scan or label image as a Volume.

    Args:
        path: DICOM folder, ``.zip`` of DICOM files, NIfTI, NRRD or MetaImage file.
        series_uid: DICOM only: the series to read (default: the largest MR image series).
        allow_resample: DICOM only: resample a series with uneven slice spacing instead of refusing it.
        clean_nonfinite: replace NaN/Inf voxels by 0 instead of refusing the image.

    Raises:
        LimbsegError: for anything wrong with the input, naming the file (never another exception:
            parser failures are converted by :func:`limbseg.io.guard.reading`).
    """
    path = Path(path)
    if not path.exists():
        raise LimbsegError("no such file or folder", path)
    kind = image_kind(path)
    with reading(path, _KIND_NAMES[kind]):
        volume = _read_kind(path, kind, series_uid, allow_resample)
        return check_finite(volume, path, clean=clean_nonfinite)


def _read_kind(path: Path, kind: str, series_uid: str | None, allow_resample: bool) -> Volume:
    if kind in ("dicom", "zip", "dicom-file"):
        from limbseg.io.dicom import read_dicom

        return read_dicom(path, series_uid=series_uid, allow_resample=allow_resample)
    if kind == "nifti":
        from limbseg.io.nifti import read_nifti

        return read_nifti(path)
    if kind == "nrrd":
        from limbseg.io.nrrd import read_nrrd

        return read_nrrd(path)
    from limbseg.io.sitk import read_metaimage

    return read_metaimage(path)


def check_finite(volume: Volume, path: str | Path, *, clean: bool = False) -> Volume:
    """Refuse (or, with ``clean``, zero) NaN and Inf voxels."""
    if not np.issubdtype(volume.array.dtype, np.floating):
        return volume
    bad = ~np.isfinite(volume.array)
    n_bad = int(bad.sum())
    if n_bad == 0:
        return volume
    if not clean:
        raise LimbsegError(f"{n_bad} voxels are NaN or Inf (use --clean-nonfinite to set them to 0)", path)
    array = volume.array.copy()
    array[bad] = 0
    return volume.with_array(array, nonfinite_cleaned=n_bad)


def write_image(volume: Volume, path: str | Path) -> Path:
    """Write a volume atomically; the format follows the extension (.nii.gz, .nii, .nrrd, .mha)."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        from limbseg.io.nifti import write_nifti

        write_nifti(volume, path)
    elif name.endswith(".nrrd"):
        from limbseg.io.nrrd import write_nrrd

        write_nrrd(volume, path)
    elif name.endswith((".mha", ".mhd")):
        from limbseg.io.sitk import write_metaimage

        write_metaimage(volume, path)
    else:
        raise LimbsegError("unsupported output format (use .nii.gz, .nii, .nrrd or .mha)", path)
    return path


__all__ = ["IMAGE_SUFFIXES", "check_finite", "image_kind", "read_image", "write_image"]
