"""Volume and LabelMap: the one geometry type of limbseg.

A :class:`Volume` is a voxel array indexed ``(i, j, k)`` plus a 4x4 affine mapping voxel
indices to RAS patient coordinates in millimetres (the nibabel / MONAI convention)::

    [x_ras, y_ras, z_ras, 1]^T = affine @ [i, j, k, 1]^T

For a DICOM series, ``i`` runs along the rows' direction (columns of the pixel matrix),
``j`` along the columns' direction, and ``k`` along the slice normal, in sorted order.
Conversions to and from LPS (DICOM / ITK) happen only in :mod:`limbseg.io`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from limbseg.labels import DEFAULT_SCHEME, LabelScheme

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass
class Volume:
    """A 3D image with its geometry.

    Attributes:
        array: voxel values, shape ``(I, J, K)``, any numeric dtype.
        affine: 4x4 float64 matrix, voxel index -> RAS mm.
        meta: provenance (``series_uid``, ``description``, ``modality``, ``source`` ...);
            never patient names.
    """

    array: np.ndarray
    affine: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.affine.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got {self.affine.shape}")
        if self.array.ndim != 3:
            raise ValueError(f"volume must be 3D, got shape {self.array.shape}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.array.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size along i, j, k in mm."""
        s = np.linalg.norm(self.affine[:3, :3], axis=0)
        return (float(s[0]), float(s[1]), float(s[2]))

    @property
    def voxel_volume_mm3(self) -> float:
        return float(abs(np.linalg.det(self.affine[:3, :3])))

    @property
    def direction(self) -> np.ndarray:
        """3x3 matrix whose columns are the unit RAS directions of i, j, k."""
        return self.affine[:3, :3] / np.asarray(self.spacing)

    @property
    def origin(self) -> np.ndarray:
        """RAS position (mm) of voxel (0, 0, 0)."""
        return self.affine[:3, 3].copy()

    def with_array(self, array: np.ndarray, **meta: Any) -> Volume:
        """A volume on the same grid with other voxels."""
        if array.shape != self.array.shape:
            raise ValueError(f"shape {array.shape} differs from the grid {self.array.shape}")
        return replace(self, array=array, affine=self.affine.copy(), meta={**self.meta, **meta})

    def crop(self, lo: tuple[int, int, int] | np.ndarray, hi: tuple[int, int, int] | np.ndarray) -> Volume:
        """The sub-volume ``array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]`` with its own exact affine.

        Bounds are clipped to the grid; the voxels are a view, not a copy.
        """
        lo_a = np.clip(np.asarray(lo, dtype=int), 0, self.shape)
        hi_a = np.clip(np.asarray(hi, dtype=int), lo_a, self.shape)
        sl = tuple(slice(int(a), int(b)) for a, b in zip(lo_a, hi_a, strict=True))
        affine = self.affine.copy()
        affine[:3, 3] = self.index_to_ras(lo_a.astype(float))[0]
        return replace(self, array=self.array[sl], affine=affine, meta=dict(self.meta))

    def index_to_ras(self, ijk: np.ndarray) -> np.ndarray:
        """Voxel indices (N, 3) -> RAS mm (N, 3)."""
        ijk = np.asarray(ijk, dtype=np.float64).reshape(-1, 3)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def ras_to_index(self, ras: np.ndarray) -> np.ndarray:
        """RAS mm (N, 3) -> continuous voxel indices (N, 3)."""
        inv = np.linalg.inv(self.affine)
        ras = np.asarray(ras, dtype=np.float64).reshape(-1, 3)
        return ras @ inv[:3, :3].T + inv[:3, 3]

    def same_grid(self, other: Volume, tol_mm: float = 1e-3) -> bool:
        """True when both volumes have the same shape and an affine equal within ``tol_mm``."""
        return self.shape == other.shape and bool(np.allclose(self.affine, other.affine, atol=tol_mm))


@dataclass
class LabelMap(Volume):
    """An integer label volume (uint8) with the label scheme that names its values."""

    scheme: LabelScheme = DEFAULT_SCHEME

    def __post_init__(self) -> None:
        super().__post_init__()
        if not np.issubdtype(self.array.dtype, np.integer):
            raise ValueError(f"label map must be integer, got {self.array.dtype}")

    @classmethod
    def from_volume(cls, volume: Volume, scheme: LabelScheme = DEFAULT_SCHEME) -> LabelMap:
        arr = np.asarray(volume.array)
        if not np.issubdtype(arr.dtype, np.integer):
            rounded = np.rint(arr)
            if not np.array_equal(rounded, arr):
                raise ValueError("label image holds non-integer values")
            arr = rounded
        return cls(arr.astype(np.uint8), volume.affine.copy(), dict(volume.meta), scheme=scheme)

    def mask(self, name: str) -> np.ndarray:
        """Boolean mask of one structure, shape (I, J, K)."""
        return self.array == self.scheme.value_of(name)
