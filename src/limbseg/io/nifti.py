"""NIfTI reading and writing with nibabel (affine in RAS, as limbseg uses internally)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from limbseg.errors import LimbsegError
from limbseg.io.atomic import atomic_path
from limbseg.io.guard import reading
from limbseg.io.limits import check_image_size
from limbseg.volume import Volume


def read_nifti(path: str | Path) -> Volume:
    """Read a 3D NIfTI image (a 4D image with one volume is accepted)."""
    path = Path(path)
    with reading(path, "NIfTI file"):  # nibabel raises many types for corrupt files
        return _read(path)


def _read(path: Path) -> Volume:
    img: Any = nib.load(str(path))  # a Nifti1Image or Nifti2Image (nibabel types it as FileBasedImage)
    shape = tuple(int(s) for s in img.shape)
    check_image_size(shape, np.dtype(img.get_data_dtype()).itemsize, path)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise LimbsegError(f"expected a 3D image, found shape {shape}", path)
    check_data_size(path, int(img.dataobj.offset), int(np.prod(shape)) * np.dtype(img.get_data_dtype()).itemsize)
    data = np.asanyarray(img.dataobj).reshape(shape)
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


def check_data_size(path: Path, offset: int, nbytes: int) -> None:
    """Refuse, before nibabel allocates ``nbytes``, a file too short to hold the data its header declares.

    An uncompressed file must be at least ``offset + nbytes`` long; a gzip stream expands at most
    :data:`~limbseg.io.limits.MAX_GZIP_RATIO` times (deflate's limit is about 1032).
    """
    from limbseg.io.limits import MAX_GZIP_RATIO

    size = path.stat().st_size
    compressed = path.name.lower().endswith(".gz")
    room = size * MAX_GZIP_RATIO if compressed else size - offset
    if offset < 0 or nbytes > room:
        raise LimbsegError(f"truncated NIfTI file: the header declares {nbytes} bytes of voxels at offset {offset}, "
                           f"the file holds {size} bytes{' (compressed)' if compressed else ''}", path)
