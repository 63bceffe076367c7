"""Surface meshes of each bone and side (left, right or unknown), in patient millimetres.

Marching cubes (scikit-image) runs on the voxel grid of each bone/side mask; the vertices
(continuous voxel indices ``(i, j, k)``) are mapped through the volume's affine into RAS mm,
smoothed with Taubin's filter (no shrinkage) and written in LPS mm (3D Slicer's convention for
PLY/STL/OBJ) through :func:`limbseg.io.mesh.write_mesh`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh

from limbseg.io.mesh import write_mesh
from limbseg.segmentation.postprocess import as_sides, bone_sides
from limbseg.segmentation.sides import Sides
from limbseg.volume import LabelMap

FORMATS = ("ply", "stl", "obj")


def mask_to_mesh(
    mask: np.ndarray, affine: np.ndarray, *, smooth_iterations: int = 10
) -> trimesh.Trimesh | None:
    """A closed triangle mesh (RAS mm) of a boolean mask (i, j, k); ``None`` for an empty mask.

    The surface is the 0.5 iso-surface between inside and outside voxel centres; faces point outwards.
    """
    from skimage.measure import marching_cubes

    if not mask.any():
        return None
    idx = np.argwhere(mask)
    lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
    crop = np.pad(mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].astype(np.float32), 1)
    verts, faces, _, _ = marching_cubes(crop, level=0.5)
    ijk = verts - 1.0 + lo
    a = np.asarray(affine, dtype=float)
    ras = ijk @ a[:3, :3].T + a[:3, 3]
    mesh = trimesh.Trimesh(vertices=ras, faces=faces, process=True)
    if smooth_iterations > 0:
        trimesh.smoothing.filter_taubin(mesh, lamb=0.5, nu=0.53, iterations=smooth_iterations)
    if mesh.volume < 0:
        mesh.invert()
    return mesh




def export_meshes(
    labels: LabelMap,
    directory: str | Path,
    *,
    formats: tuple[str, ...] = ("ply",),
    midline_x: float | None = None,
    smooth_iterations: int = 10,
    sides: Sides | None = None,
) -> dict[tuple[str, str], trimesh.Trimesh]:
    """Write ``<bone>_<side>.<fmt>`` for every non-empty bone/side into ``directory``.

    ``side`` is ``left``, ``right`` or ``unknown`` (see :mod:`limbseg.segmentation.sides`; default: sides
    from the bones, ``midline_x`` a hint). Returns the meshes (RAS mm) keyed by ``(structure, side)``.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown mesh format(s) {unknown}; choose from {FORMATS}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meshes: dict[tuple[str, str], trimesh.Trimesh] = {}
    for part in bone_sides(labels, as_sides(labels, sides, midline_x)):
        mesh = mask_to_mesh(part.mask, part.affine, smooth_iterations=smooth_iterations)
        if mesh is None:
            continue
        meshes[(part.name, part.side)] = mesh
        for fmt in formats:
            write_mesh(mesh, directory / f"{part.name}_{part.side}.{fmt}", space="LPS")
    return meshes
