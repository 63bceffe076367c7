"""Mesh -> mask voxelization: accuracy against the mesh's exact volume and trimesh's inside test."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from limbseg.data.voxelize import mesh_volume_mask_stats, voxelize_mesh
from limbseg.errors import LimbsegError
from limbseg.volume import Volume


def _grid(shape, spacing, centre_index, rotation=None) -> Volume:
    """A grid whose voxel ``centre_index`` sits at RAS (0, 0, 0)."""
    m = (np.eye(3) if rotation is None else rotation) @ np.diag(spacing)
    affine = np.eye(4)
    affine[:3, :3] = m
    affine[:3, 3] = -m @ np.asarray(centre_index, dtype=float)
    return Volume(np.zeros(shape, np.uint8), affine)


def _sphere(centre=(3.3, -2.1, 5.7)) -> trimesh.Trimesh:
    mesh = trimesh.creation.icosphere(subdivisions=4, radius=20.0)
    mesh.apply_translation(centre)
    return mesh


def test_sphere_on_1x1x3_grid_volume_and_centroid() -> None:
    mesh = _sphere()
    ref = _grid((60, 60, 24), (1.0, 1.0, 3.0), (30, 30, 12))
    mask = voxelize_mesh(mesh, ref)
    assert mask.dtype == np.bool_ and mask.shape == ref.shape
    volume, centroid = mesh_volume_mask_stats(mask, ref)
    assert abs(volume / mesh.volume - 1) < 0.02
    assert np.linalg.norm(centroid - mesh.center_mass) < 1.0


def test_sphere_on_oblique_grid_matches_exact_inside_test() -> None:
    mesh = _sphere()
    rot = Rotation.from_euler("xyz", [20, -35, 50], degrees=True).as_matrix()
    ref = _grid((56, 50, 22), (0.9, 1.1, 2.5), (28, 25, 11), rot)
    mask = voxelize_mesh(mesh, ref)
    volume, centroid = mesh_volume_mask_stats(mask, ref)
    assert abs(volume / mesh.volume - 1) < 0.02
    assert np.linalg.norm(centroid - mesh.center_mass) < 1.0
    # compare with trimesh's inside test on the voxels nearest the surface (where errors would be)
    idx = np.argwhere(np.ones(ref.shape, bool))
    centres = ref.index_to_ras(idx)
    near = np.flatnonzero(np.abs(np.linalg.norm(centres - mesh.center_mass, axis=1) - 20.0) < 1.0)
    pick = np.random.default_rng(0).choice(near, size=min(300, len(near)), replace=False)
    expected = mesh.contains(centres[pick])
    assert np.array_equal(mask[tuple(idx[pick].T)], expected)


def test_ray_through_vertices_and_edges_is_counted_once() -> None:
    # A cube whose faces and edges lie exactly on voxel-centre rows: tie-breaks must be consistent.
    mesh = trimesh.creation.box(extents=(8.0, 8.0, 8.0))
    ref = _grid((16, 16, 16), (1.0, 1.0, 1.0), (8, 8, 8))
    mask = voxelize_mesh(mesh, ref)
    # Centres at -8..7 mm; the faces at +-4 mm pass through centres and each plane of centres goes
    # to one side only, so the cube holds exactly 8 x 8 x 8 voxels, in one solid block.
    assert mask.sum() == 8**3
    ii, jj, kk = np.nonzero(mask)
    assert np.ptp(ii) == np.ptp(jj) == np.ptp(kk) == 7


def test_mesh_outside_grid_gives_empty_mask_and_partial_mesh_is_clipped() -> None:
    ref = _grid((20, 20, 10), (1.0, 1.0, 3.0), (10, 10, 5))
    far = _sphere(centre=(500.0, 0.0, 0.0))
    assert not voxelize_mesh(far, ref).any()
    half = _sphere(centre=(10.0, 0.0, 0.0))  # reaches beyond the grid's +x end
    mask = voxelize_mesh(half, ref)
    assert mask.any() and mask[-1].any()


def test_empty_mesh_refused() -> None:
    ref = _grid((4, 4, 4), (1.0, 1.0, 1.0), (2, 2, 2))
    with pytest.raises(LimbsegError):
        voxelize_mesh(trimesh.Trimesh(np.zeros((3, 3)), np.zeros((0, 3), int)), ref)
