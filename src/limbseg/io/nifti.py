"""NIfTI reading and writing with nibabel (affine in RAS, as limbseg uses internally)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from limbseg.errors import LimbsegError
from limbseg.io.atomic import atomic_path
from limbseg.io.limits import check_image_size
from limbseg.volume import Volume


def read_nifti(path: str | Path) -> Volume:
    """Read a 3D NIfTI image (a 4D image with one volume is accepted)."""
    path = Path(path)
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise LimbsegError(f"not a readable NIfTI file ({exc.__class__.__name__}: {exc})", path) from exc
    shape = tuple(int(s) for s in img.shape)
    check_image_size(shape, np.dtype(img.get_data_dtype()).itemsize, path)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise LimbsegError(f"expected a 3D image, found shape {shape}", path)
    try:
        data = np.asanyarray(img.dataobj).reshape(shape)
    except Exception as exc:
        raise LimbsegError(f"truncated or corrupt NIfTI data ({exc})", path) from exc
    affine = img.affine if img.affine is not None else np.eye(4)
    return Volume(np.asarray(data), np.asarray(affine, dtype=np.float64), {"source": path.name})


def write_nifti(volume: Volume, path: str | Path) -> None:
    """Write a volume with its exact affine (sform and qform) atomically."""
    array = volume.array
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    img = nib.Nifti1Image(array, volume.affine)
    img.set_sform(volume.affine, code=1)
    img.set_qform(volume.affine, code=1)
    img.header.set_xyzt_units("mm")
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
