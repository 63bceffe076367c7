"""Grids and a fast exact mesh voxelizer (ray parity along the k axis).

A :class:`Grid` is a shape and a 4x4 RAS affine. :func:`voxelize_crop` fills the voxel centres
inside a closed triangle mesh: for every (i, j) column it finds where the column crosses
the triangles and fills between crossings (even-odd rule). It works in continuous voxel
index space, so any grid orientation is handled. Cost is O(triangles + voxels in the box).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A tiny irrational shift keeps column centres off triangle edges and vertices.
_JITTER = np.array([1.1e-6 * np.pi, 0.7e-6 * np.e, 0.0])


@dataclass(frozen=True)
class Grid:
    """Voxel grid: ``shape`` (I, J, K) and ``affine`` (4x4, voxel index -> RAS mm)."""

    shape: tuple[int, int, int]
    affine: np.ndarray

    def to_index(self, ras: np.ndarray) -> np.ndarray:
        """RAS mm (N, 3) -> continuous voxel indices (N, 3)."""
        inv = np.linalg.inv(self.affine)
        return np.asarray(ras, float) @ inv[:3, :3].T + inv[:3, 3]

    def to_ras(self, ijk: np.ndarray) -> np.ndarray:
        return np.asarray(ijk, float) @ self.affine[:3, :3].T + self.affine[:3, 3]

    @property
    def spacing(self) -> np.ndarray:
        return np.linalg.norm(self.affine[:3, :3], axis=0)

    def subdivided(self, factors: tuple[int, int, int]) -> Grid:
        """A finer grid whose blocks of ``factors`` voxels tile each voxel of this grid."""
        f = np.asarray(factors, float)
        sub = np.eye(4)
        sub[:3, :3] = np.diag(1.0 / f)
        sub[:3, 3] = -0.5 + 0.5 / f
        shape = tuple(int(s * n) for s, n in zip(self.shape, factors, strict=True))
        return Grid(shape, self.affine @ sub)  # type: ignore[arg-type]


def index_box(points_ijk: np.ndarray, shape: tuple[int, int, int], margin: int = 1) -> tuple[slice, ...] | None:
    """The voxel box (slices) holding ``points_ijk`` (N, 3), clipped to ``shape``; None if empty."""
    lo = np.maximum(np.floor(points_ijk.min(0)).astype(int) - margin, 0)
    hi = np.minimum(np.ceil(points_ijk.max(0)).astype(int) + margin + 1, shape)
    if np.any(hi <= lo):
        return None
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))


def _column_crossings(tri: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer (i, j) columns inside each triangle's (i, j) projection and the k of the crossing."""
    lo = np.ceil(tri[:, :, :2].min(1)).astype(np.int64)
    hi = np.floor(tri[:, :, :2].max(1)).astype(np.int64)
    n = np.maximum(hi - lo + 1, 0)
    count = n[:, 0] * n[:, 1]
    tid = np.repeat(np.arange(len(tri)), count)
    local = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    ci = lo[tid, 0] + local // np.maximum(n[tid, 1], 1)
    cj = lo[tid, 1] + local % np.maximum(n[tid, 1], 1)
    a, b, c = tri[tid, 0], tri[tid, 1], tri[tid, 2]
    det = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        w1 = ((ci - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (cj - a[:, 1])) / det
        w2 = ((b[:, 0] - a[:, 0]) * (cj - a[:, 1]) - (ci - a[:, 0]) * (b[:, 1] - a[:, 1])) / det
        w0 = 1.0 - w1 - w2
        ok = (det != 0) & (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
        kz = w0 * a[:, 2] + w1 * b[:, 2] + w2 * c[:, 2]
    return ci[ok], cj[ok], kz[ok]


def voxelize_crop(
    vertices_ijk: np.ndarray, faces: np.ndarray, shape: tuple[int, int, int]
) -> tuple[np.ndarray, tuple[slice, ...]] | None:
    """Voxel centres inside a closed mesh given in continuous index coordinates.

    Returns ``(mask, box)``: a bool array (I', J', K') over the mesh's bounding box ``box``
    (slices into a grid of ``shape``), or None when the mesh misses the grid.
    """
    box = index_box(vertices_ijk, shape, margin=0)
    if box is None:
        return None
    v = vertices_ijk + _JITTER
    ci, cj, kz = _column_crossings(v[faces])
    off = np.array([s.start for s in box])
    size = np.array([s.stop - s.start for s in box])
    ci, cj = ci - off[0], cj - off[1]
    keep = (ci >= 0) & (ci < size[0]) & (cj >= 0) & (cj < size[1])
    ci, cj, kz = ci[keep], cj[keep], kz[keep]
    kidx = np.clip(np.ceil(kz - off[2]).astype(np.int64), 0, size[2])
    flat = (ci * size[1] + cj) * (size[2] + 1) + kidx
    counts = np.bincount(flat, minlength=int(size[0] * size[1] * (size[2] + 1)))
    counts = counts.reshape(size[0], size[1], size[2] + 1)[:, :, : size[2]]
    mask = (np.cumsum(counts, axis=2, dtype=np.int32) & 1).astype(bool)
    return mask, box


def voxelize(vertices_ras: np.ndarray, faces: np.ndarray, grid: Grid) -> np.ndarray:
    """Bool mask (I, J, K) of the grid's voxel centres inside the closed mesh (RAS mm)."""
    out = np.zeros(grid.shape, dtype=bool)
    res = voxelize_crop(grid.to_index(vertices_ras), np.asarray(faces), grid.shape)
    if res is not None:
        out[res[1]] = res[0]
    return out
