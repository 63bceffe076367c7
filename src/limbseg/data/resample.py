"""Resampling a volume onto another volume's grid (nearest neighbour for labels, linear for images).

Both grids are related through their RAS affines, so any orientation, spacing or origin works.
A coverage check refuses a source that does not cover the reference grid: every reference
voxel centre must lie inside the source's voxels (within half a voxel of a source centre).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from limbseg.errors import LimbsegError
from limbseg.volume import Volume

#: Slack (in source voxels) allowed beyond the outer voxel faces in the coverage check.
COVERAGE_TOLERANCE_VOXELS = 1e-3


def _corners(shape: tuple[int, int, int]) -> np.ndarray:
    """The 8 corner voxel centres (8, 3) of a grid, as indices."""
    hi = np.asarray(shape, dtype=np.float64) - 1
    return np.array([[a, b, c] for a in (0, hi[0]) for b in (0, hi[1]) for c in (0, hi[2])])


def reference_to_source(volume: Volume, reference: Volume) -> np.ndarray:
    """4x4 matrix mapping reference voxel indices to continuous source voxel indices."""
    return np.linalg.inv(volume.affine) @ reference.affine


def covers(volume: Volume, reference: Volume, tol_voxels: float = COVERAGE_TOLERANCE_VOXELS) -> bool:
    """True when every voxel centre of ``reference`` lies inside ``volume``'s voxels."""
    m = reference_to_source(volume, reference)
    idx = _corners(reference.shape) @ m[:3, :3].T + m[:3, 3]
    lower = -0.5 - tol_voxels
    upper = np.asarray(volume.shape, dtype=np.float64) - 0.5 + tol_voxels
    return bool(np.all(idx >= lower) and np.all(idx <= upper))


def resample_to(
    volume: Volume,
    reference: Volume,
    order: int = 0,
    *,
    check_coverage: bool = True,
    path: str | Path | None = None,
) -> Volume:
    """Resample ``volume`` onto ``reference``'s grid.

    Args:
        volume: the source, array indexed (i, j, k), any numeric dtype.
        reference: the target grid (shape and affine; its voxels are not used).
        order: 0 = nearest neighbour (labels and masks; dtype kept), 1 = trilinear (images; float32).
        check_coverage: refuse a source that does not cover the reference grid. Without the check,
            reference voxels outside the source become 0.
        path: the source's file, named in error messages.

    Returns:
        A Volume with ``reference``'s shape and exact affine and ``volume``'s metadata.

    Raises:
        LimbsegError: the source does not cover the reference grid (with ``check_coverage``).
    """
    from scipy import ndimage

    if order not in (0, 1):
        raise ValueError(f"order must be 0 (nearest) or 1 (linear), got {order}")
    if volume.same_grid(reference, tol_mm=1e-6):
        return Volume(volume.array.copy(), reference.affine.copy(), dict(volume.meta))
    if check_coverage and not covers(volume, reference):
        raise LimbsegError(
            f"does not cover the scan: the scan's grid ({reference.shape}, {_describe(reference)}) reaches "
            f"outside this image's grid ({volume.shape}, {_describe(volume)})",
            path,
        )
    m = reference_to_source(volume, reference)
    source = volume.array
    if source.dtype == np.bool_:
        source = source.astype(np.uint8)
    out_dtype = source.dtype if order == 0 else np.float32
    if order == 1:
        source = source.astype(np.float32, copy=False)
    array = ndimage.affine_transform(
        source, m[:3, :3], offset=m[:3, 3], output_shape=reference.shape, order=order,
        mode="nearest" if check_coverage else "constant", cval=0, output=out_dtype, prefilter=False,
    )
    if volume.array.dtype == np.bool_:
        array = array.astype(bool)
    return Volume(array, reference.affine.copy(), {**volume.meta, "resampled": True})


def _describe(volume: Volume) -> str:
    sp = "x".join(f"{s:g}" for s in np.round(volume.spacing, 3))
    org = ", ".join(f"{o:.1f}" for o in volume.origin)
    return f"{sp} mm, origin RAS ({org})"
