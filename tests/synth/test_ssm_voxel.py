"""Shape model loading, mesh repair and the voxelizer."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import trimesh

from limbseg.errors import LimbsegError
from limbseg.synth import ssm
from limbseg.synth.voxel import Grid, voxelize


def test_models_load_with_both_hip_bones_and_one_leg():
    for side in ssm.SIDES:
        m = ssm.load_model(side)
        assert m.modes.shape == (63618, 10)
        assert set(m.parts) == {"pelvis_left", "pelvis_right", "femur", "tibia", "fibula"}
        assert m.faces.max() < len(m.mean) // 3


def test_missing_package_names_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "articulated_ssm_both_sides" else real(name, *a))
    with pytest.raises(LimbsegError, match="pip install --no-deps articulated-ssm==0.2.0"):
        ssm.ssm_directory()


def test_repair_drops_folded_face_pairs():
    box = trimesh.creation.box((10, 10, 10))
    faces = np.vstack([box.faces, box.faces[:1], box.faces[:1, ::-1]])
    fixed = ssm.repair_mesh(np.asarray(box.vertices), faces)
    assert fixed.is_watertight and fixed.volume == pytest.approx(1000.0)


def test_every_ssm_bone_is_watertight_after_repair():
    model = ssm.load_model("right")
    verts = model.shape(np.zeros(10))
    for name in ("tibia", "femur", "fibula"):
        v0, v1, _, _ = model.parts[name]
        mesh = ssm.repair_mesh(verts[v0:v1], ssm.part_faces(f"{name}_right"))
        assert mesh.is_watertight and mesh.volume > 0


@pytest.mark.parametrize("axes", [np.eye(3), np.array([[0, -1, 0], [0, 0, -1], [1, 0, 0]], float)])
def test_voxelized_sphere_volume_matches(axes):
    sphere = trimesh.creation.icosphere(4, radius=15.0)
    affine = np.eye(4)
    affine[:3, :3] = axes * np.array([0.8, 1.1, 2.0])
    affine[:3, 3] = -affine[:3, :3] @ np.array([25.0, 20.0, 12.0])
    grid = Grid((50, 40, 24), affine)
    mask = voxelize(np.asarray(sphere.vertices), np.asarray(sphere.faces), grid)
    assert mask.sum() * 0.8 * 1.1 * 2.0 == pytest.approx(sphere.volume, rel=0.02)
