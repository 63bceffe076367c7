"""Closed surface mesh -> binary mask on a Volume's grid (exact inside test at voxel centres).

The mesh is mapped into continuous voxel-index space of the reference grid, so oblique grids
need nothing special. One ray is cast along ``i`` through every voxel-centre row ``(j, k)``;
each triangle whose projection onto the ``(j, k)`` plane contains the row's centre adds one
crossing at the interpolated ``i``. A voxel is inside when an odd number of crossings lie
before it (even-odd rule). Edges shared by two triangles are decided by one consistent
tie-break, so a ray through an edge is counted exactly once. Everything is vectorised over
triangles and computed only inside the mesh's bounding box.
"""

from __future__ import annotations

import numpy as np
import trimesh

from limbseg.errors import LimbsegError
from limbseg.volume import Volume

# A tiny, irrational offset of every ray so that rays never pass exactly through a vertex.
_RAY_OFFSET = np.array([1.0e-7 * np.sqrt(2.0), 1.0e-7 * np.sqrt(3.0)])


def voxelize_mesh(mesh_ras: trimesh.Trimesh, reference: Volume) -> np.ndarray:
    """Voxels of ``reference`` whose centres lie inside the closed mesh.

    Args:
        mesh_ras: a closed (watertight) triangle mesh, vertices in RAS mm.
        reference: the grid (its shape and affine; voxels are not used).

    Returns:
        Boolean array of shape ``reference.shape`` indexed ``(i, j, k)``.
    """
    shape = reference.shape
    out = np.zeros(shape, dtype=bool)
    faces = np.asarray(mesh_ras.faces, dtype=np.int64)
    if len(faces) == 0:
        raise LimbsegError("mesh has no triangles")
    ijk = reference.ras_to_index(np.asarray(mesh_ras.vertices, dtype=np.float64))
    lo = np.maximum(np.ceil(ijk.min(axis=0) - 1e-9).astype(np.int64), 0)
    hi = np.minimum(np.floor(ijk.max(axis=0) + 1e-9).astype(np.int64), np.asarray(shape) - 1)
    if np.any(hi < lo):
        return out
    rows_j, rows_k, cross_i = _crossings(ijk, faces, lo, hi)
    if len(cross_i) == 0:
        return out
    n_i, n_j, n_k = (hi - lo + 1).tolist()
    # A crossing at i_c toggles every voxel with i > i_c (index floor(i_c) + 1 onwards).
    start = np.clip(np.floor(cross_i).astype(np.int64) + 1 - lo[0], 0, n_i)
    flat = (start * n_j + (rows_j - lo[1])) * n_k + (rows_k - lo[2])
    toggles = np.bincount(flat, minlength=(n_i + 1) * n_j * n_k).reshape(n_i + 1, n_j, n_k)
    inside = (np.cumsum(toggles[:n_i], axis=0, dtype=np.int32) & 1).astype(bool)
    out[lo[0] : hi[0] + 1, lo[1] : hi[1] + 1, lo[2] : hi[2] + 1] = inside
    return out


def _crossings(
    ijk: np.ndarray, faces: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (j, k, i) ray crossings: integer row (j, k) inside the window, crossing position i."""
    tri = ijk[faces]  # (F, 3 vertices, 3 coords) in voxel-index space
    jk = tri[:, :, 1:] - _RAY_OFFSET
    jmin = np.maximum(np.ceil(jk[:, :, 0].min(axis=1)).astype(np.int64), lo[1])
    jmax = np.minimum(np.floor(jk[:, :, 0].max(axis=1)).astype(np.int64), hi[1])
    kmin = np.maximum(np.ceil(jk[:, :, 1].min(axis=1)).astype(np.int64), lo[2])
    kmax = np.minimum(np.floor(jk[:, :, 1].max(axis=1)).astype(np.int64), hi[2])
    nj = np.maximum(jmax - jmin + 1, 0)
    nk = np.maximum(kmax - kmin + 1, 0)
    count = nj * nk
    keep = count > 0
    if not keep.any():
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    t = np.repeat(np.flatnonzero(keep), count[keep])
    first = np.repeat(np.cumsum(count[keep]) - count[keep], count[keep])
    offset = np.arange(len(t)) - first
    pj = jmin[t] + offset // nk[t]
    pk = kmin[t] + offset % nk[t]
    inside, w = _point_in_triangle(jk, faces, t, pj, pk)
    t, pj, pk, w = t[inside], pj[inside], pk[inside], w[inside]
    ci = (w * tri[t, :, 0]).sum(axis=1)
    return pj, pk, ci


def _edge(a_idx: np.ndarray, b_idx: np.ndarray, a: np.ndarray, b: np.ndarray, p: np.ndarray) -> tuple:
    """Edge function of p for edge a->b, computed in a canonical vertex order.

    Returns ``(value, positive_side)``: the signed value for a->b and whether p counts as on its
    left, with points exactly on the edge assigned to one side only, whatever triangle asks.
    """
    swap = a_idx > b_idx
    lo = np.where(swap[:, None], b, a)
    hi = np.where(swap[:, None], a, b)
    e = (hi[:, 0] - lo[:, 0]) * (p[:, 1] - lo[:, 1]) - (hi[:, 1] - lo[:, 1]) * (p[:, 0] - lo[:, 0])
    canonical_left = e >= 0
    return np.where(swap, -e, e), np.where(swap, ~canonical_left, canonical_left)


def _point_in_triangle(
    jk: np.ndarray, faces: np.ndarray, t: np.ndarray, pj: np.ndarray, pk: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Which (triangle t, point) pairs are inside, and the barycentric weights (N, 3)."""
    p = np.stack([pj, pk], axis=1).astype(np.float64)
    a, b, c = jk[t, 0], jk[t, 1], jk[t, 2]
    fa, fb, fc = faces[t, 0], faces[t, 1], faces[t, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    w_a, s_a = _edge(fb, fc, b, c, p)  # opposite vertex a
    w_b, s_b = _edge(fc, fa, c, a, p)
    w_c, s_c = _edge(fa, fb, a, b, p)
    ccw = area > 0
    inside = np.where(ccw, s_a & s_b & s_c, ~s_a & ~s_b & ~s_c) & (area != 0)
    safe = np.where(area == 0, 1.0, area)
    w = np.stack([w_a, w_b, w_c], axis=1) / safe[:, None]
    return inside, w


def mesh_volume_mask_stats(mask: np.ndarray, reference: Volume) -> tuple[float, np.ndarray]:
    """Volume (mm^3) and RAS centroid (mm) of a boolean mask on ``reference``'s grid."""
    idx = np.argwhere(mask)
    if len(idx) == 0:
        return 0.0, np.full(3, np.nan)
    return float(len(idx) * reference.voxel_volume_mm3), reference.index_to_ras(idx.mean(axis=0))[0]
