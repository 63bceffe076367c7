"""SimpleITK bridge (LPS <-> RAS) and MetaImage reading/writing.

SimpleITK arrays are (k, j, i); limbseg arrays are (i, j, k).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from limbseg.errors import LimbsegError
from limbseg.io.atomic import atomic_path
from limbseg.io.limits import check_image_size
from limbseg.volume import LPS_TO_RAS, Volume


def sitk_to_volume(image: sitk.Image, meta: dict | None = None) -> Volume:
    """Convert a 3D SimpleITK image (LPS) to a Volume (RAS)."""
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError("expected a scalar 3D image")
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction * np.asarray(image.GetSpacing(), dtype=float)
    lps[:3, 3] = image.GetOrigin()
    array = sitk.GetArrayFromImage(image).transpose(2, 1, 0)
    return Volume(np.ascontiguousarray(array), LPS_TO_RAS @ lps, dict(meta or {}))


def volume_to_sitk(volume: Volume) -> sitk.Image:
    """Convert a Volume (RAS) to a SimpleITK image (LPS)."""
    array = volume.array.astype(np.uint8) if volume.array.dtype == np.bool_ else volume.array
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    lps = LPS_TO_RAS @ volume.affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    image.SetSpacing(spacing.tolist())
    image.SetDirection((lps[:3, :3] / spacing).flatten().tolist())
    image.SetOrigin(lps[:3, 3].tolist())
    return image


def read_metaimage(path: str | Path) -> Volume:
    path = Path(path)
    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        check_image_size(reader.GetSize(), 8, path)
        image = reader.Execute()
    except LimbsegError:
        raise
    except Exception as exc:
        raise LimbsegError(f"not a readable image ({str(exc).strip().splitlines()[-1]})", path) from exc
    if image.GetDimension() != 3:
        raise LimbsegError(f"expected a 3D image, found {image.GetDimension()}D", path)
    return sitk_to_volume(image, {"source": path.name})


def write_metaimage(volume: Volume, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        sitk.WriteImage(volume_to_sitk(volume), str(tmp), useCompression=True)
