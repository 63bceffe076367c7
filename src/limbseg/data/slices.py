"""Volume <-> axial slices for the 2D network, with exact geometry.

Training and inference both go through these functions, so a model sees scans exactly as it
was trained on them. The canonical grid is axis-aligned and axial:

* ``i`` runs to the patient's Left (RAS -x), ``j`` to Posterior (RAS -y), ``k`` to Superior (RAS +z)
  — the orientation of a standard axial DICOM series, so for such input only the in-plane
  spacing changes;
* in-plane spacing ``spacing_mm`` (the model's, e.g. 1.875 mm);
* slice positions: the native ones when the input is axial (slice normal within 1 degree of the
  z axis), otherwise ``slice_spacing_mm``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import ndimage

from limbseg.volume import Volume

CANONICAL_DIRECTIONS = np.diag([-1.0, -1.0, 1.0])  # columns: RAS directions of i, j, k
AXIAL_TOLERANCE_DEG = 1.0
ChannelMode = Literal["repeat", "2.5d"]


def is_axial(volume: Volume) -> bool:
    """True when the slice normal (k axis) is within 1 degree of the superior axis."""
    k_dir = volume.direction[:, 2]
    return bool(abs(k_dir[2]) >= np.cos(np.deg2rad(AXIAL_TOLERANCE_DEG)))


def canonical_grid(volume: Volume, spacing_mm: float, slice_spacing_mm: float = 3.0) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and RAS affine of the canonical axial grid that covers ``volume``.

    Returns:
        (shape, affine): shape (I, J, K) and the 4x4 RAS affine of the canonical grid.
    """
    corners = np.array([[a, b, c] for a in (0, volume.shape[0] - 1) for b in (0, volume.shape[1] - 1)
                        for c in (0, volume.shape[2] - 1)], dtype=float)
    ras = volume.index_to_ras(corners)
    lo, hi = ras.min(axis=0), ras.max(axis=0)
    if is_axial(volume):
        dz = abs(float(volume.affine[2, 2]))  # the k column's superior component = slice spacing
    else:
        dz = float(slice_spacing_mm)
    spacing = np.array([spacing_mm, spacing_mm, dz])
    # i runs from right (max x) to left, j from anterior (max y) to posterior, k from inferior up.
    origin = np.array([hi[0], hi[1], lo[2]])
    extent = hi - lo
    shape = tuple(int(np.floor(extent[n] / spacing[n] + 1e-3)) + 1 for n in range(3))
    affine = np.eye(4)
    affine[:3, :3] = CANONICAL_DIRECTIONS * spacing
    affine[:3, 3] = origin
    return shape, affine  # type: ignore[return-value]


def resample_array(
    array: np.ndarray,
    src_affine: np.ndarray,
    dst_affine: np.ndarray,
    dst_shape: tuple[int, ...],
    *,
    order: int = 1,
    cval: float = 0.0,
) -> np.ndarray:
    """Resample a 3D array from one grid onto another (both RAS affines), voxel centres exact.

    ``order`` 0 = nearest neighbour (labels, dtype kept), 1 = trilinear (images, probabilities; integer
    input comes back as float32).
    """
    m = np.linalg.inv(src_affine) @ dst_affine
    matrix, offset = m[:3, :3], m[:3, 3]
    if np.allclose(matrix, np.diag(np.diag(matrix)), atol=1e-9):
        matrix = np.diag(matrix)
        if order == 1:
            return _linear_separable(np.asarray(array), matrix, offset, tuple(dst_shape), cval)
    if order == 1 and not np.issubdtype(np.asarray(array).dtype, np.floating):
        array = np.asarray(array, dtype=np.float32)
    return ndimage.affine_transform(
        array, matrix, offset=offset, output_shape=tuple(dst_shape), order=order, mode="constant",
        cval=cval, prefilter=False,
    )


def _linear_separable(array: np.ndarray, scale: np.ndarray, offset: np.ndarray, shape: tuple[int, ...],
                      cval: float) -> np.ndarray:
    """Trilinear resampling for an axis-aligned mapping (source coordinate = scale * index + offset).

    Same values as ``ndimage.affine_transform(order=1, mode="constant", prefilter=False)`` (a point whose
    coordinate on any axis falls outside ``[0, n - 1]`` gets ``cval``), computed one axis at a time in
    the array's float precision (float32 for integer input): several times faster, because each pass is
    a gather and a blend, and an integer scan is converted only after the first (shrinking) pass.
    """
    ftype = array.dtype if np.issubdtype(array.dtype, np.floating) else np.dtype(np.float32)
    out = array
    bad_per_axis = []
    for ax in np.argsort([n_out / n_in for n_out, n_in in zip(shape, array.shape, strict=True)]):  # shrink first
        n_in = out.shape[ax]
        x = scale[ax] * np.arange(shape[ax], dtype=np.float64) + offset[ax]
        bad = (x < 0) | (x > n_in - 1)
        bad_per_axis.append((ax, np.flatnonzero(bad)))
        i0 = np.clip(np.floor(x), 0, max(n_in - 2, 0)).astype(np.intp)
        w = np.where(bad, 0.0, x - i0).astype(ftype)
        if n_in == 1:
            out = np.take(out, np.zeros(shape[ax], dtype=np.intp), axis=ax)
            continue
        if np.all(w == 0) and np.array_equal(i0, np.arange(shape[ax]) + i0[0]) and i0[0] + shape[ax] <= n_in:
            out = np.take(out, i0, axis=ax)  # identity up to an integer shift: a plain copy
            continue
        view = [None] * out.ndim
        view[ax] = slice(None)
        w = w[tuple(view)]
        lo = np.take(out, i0, axis=ax).astype(ftype, copy=False)
        hi = np.take(out, i0 + 1, axis=ax).astype(ftype, copy=False)
        hi -= lo
        hi *= w
        lo += hi
        out = lo
    out = np.ascontiguousarray(out, dtype=ftype)
    for ax, bad in bad_per_axis:
        if bad.size:
            index = [slice(None)] * out.ndim
            index[ax] = bad
            out[tuple(index)] = cval
    return out


def canonical_axial(volume: Volume, spacing_mm: float, *, order: int = 1, slice_spacing_mm: float = 3.0) -> Volume:
    """Resample ``volume`` onto its canonical axial grid (see module docstring).

    Images use ``order=1`` and come back as float32; labels use ``order=0`` and keep their dtype.
    """
    shape, affine = canonical_grid(volume, spacing_mm, slice_spacing_mm)
    out = resample_array(volume.array, volume.affine, affine, shape, order=order)
    return Volume(out, affine, {**volume.meta, "canonical": True})


def to_native(array: np.ndarray, canonical_affine: np.ndarray, native: Volume, *, order: int = 1,
              cval: float = 0.0) -> np.ndarray:
    """Resample an array on a canonical grid back onto the native grid of ``native`` (same shape/affine)."""
    return resample_array(array, canonical_affine, native.affine, native.shape, order=order, cval=cval)


def normalise(array: np.ndarray, lower: float = 0.5, upper: float = 99.5, *,
              window: tuple[float, float] | None = None) -> np.ndarray:
    """Intensity normalisation to [0, 1] (float32): ``(a - lo) / (hi - lo)``, clipped.

    With ``window`` (lo, hi) given (:func:`limbseg.segmentation.region.body_window` of the whole scan, the
    bundles' ``"body-percentile"`` method) those are the limits. Without it (older bundles'
    ``"percentile"`` method) they are the ``lower``/``upper`` percentiles of the voxels of ``array`` above
    1 % of its maximum; that depends on what ``array`` holds (a crop, air noise), which is why new bundles
    use the window.
    """
    a = np.asarray(array, dtype=np.float32)
    if window is not None:
        lo, hi = float(window[0]), float(window[1])
    else:
        peak = float(a.max()) if a.size else 0.0
        fg = a[a > 0.01 * peak] if peak > 0 else a.ravel()
        if fg.size < 100:
            fg = a.ravel()
        sample = fg[:: max(1, fg.size // 2_000_000)]
        lo, hi = (float(v) for v in np.percentile(sample, [lower, upper]))
    if hi <= lo:
        return np.zeros_like(a)
    out = a - np.float32(lo)
    out *= np.float32(1.0 / (hi - lo))
    return np.clip(out, 0.0, 1.0, out=out)


def neighbour_offset(preprocessing: dict, slice_spacing_mm: float) -> float:
    """Distance of the 2.5D neighbour channels in slices of a scan whose slices are ``slice_spacing_mm`` apart.

    Bundles store ``neighbour_mm`` (the distance the network was trained with, e.g. 3 mm); bundles
    without it were trained with the adjacent slices (offset 1 whatever the spacing).
    """
    mm = preprocessing.get("neighbour_mm")
    if mm is None or slice_spacing_mm <= 0:
        return 1.0
    return float(mm) / float(slice_spacing_mm)


def slice_channels(volume_ijk: np.ndarray, ks: np.ndarray | list[int], mode: ChannelMode = "2.5d",
                   offset: float = 1.0) -> np.ndarray:
    """Network inputs for axial slices ``ks`` of a normalised canonical volume.

    Args:
        volume_ijk: float array (I, J, K), float32 or float16 (the training cache).
        ks: slice indices.
        mode: ``"repeat"``: the slice three times (the study); ``"2.5d"``: the image at ``k - offset``,
            ``k``, ``k + offset`` slices, linearly interpolated between slices when ``offset`` is not a
            whole number (see :func:`neighbour_offset`), edges replicated.
        offset: neighbour distance in slices (``"2.5d"`` only).

    Returns:
        float32 array (len(ks), 3, I, J).
    """
    ks = np.asarray(ks, dtype=int)
    n_k = volume_ijk.shape[2]
    if mode == "repeat":
        idx = np.stack([ks, ks, ks], axis=1)
        return np.ascontiguousarray(np.moveaxis(volume_ijk[:, :, idx], (2, 3), (0, 1)), dtype=np.float32)
    if mode != "2.5d":
        raise ValueError(f"unknown channel mode {mode!r}")
    out = np.empty((len(ks), 3) + volume_ijk.shape[:2], dtype=np.float32)
    for c, pos in enumerate((ks - offset, ks.astype(float), ks + offset)):
        pos = np.clip(pos, 0, n_k - 1)
        k0 = np.floor(pos).astype(int)
        w = (pos - k0).astype(np.float32)
        k1 = np.minimum(k0 + 1, n_k - 1)
        lo = np.moveaxis(volume_ijk[:, :, k0], 2, 0).astype(np.float32)
        if np.any(w > 0):
            hi = np.moveaxis(volume_ijk[:, :, k1], 2, 0).astype(np.float32)
            lo += w[:, None, None] * (hi - lo)
        out[:, c] = lo
    return out


def stack_channels(volume_ijk: np.ndarray, mode: ChannelMode = "2.5d", offset: float = 1.0) -> np.ndarray:
    """All slices: float32 (K, 3, I, J)."""
    return slice_channels(volume_ijk, np.arange(volume_ijk.shape[2]), mode, offset)
