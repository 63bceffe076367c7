"""Mesh files: LPS on disk / RAS in memory, header comments, repair of trivially open meshes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from limbseg.errors import LimbsegError
from limbseg.io.mesh import read_mesh, write_mesh


def _sphere() -> trimesh.Trimesh:
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=10.0)
    mesh.apply_translation([30.0, -20.0, 5.0])
    return mesh


@pytest.mark.parametrize("ext", [".ply", ".stl", ".obj"])
def test_write_lps_read_back_ras_roundtrip(tmp_path: Path, ext: str) -> None:
    mesh = _sphere()
    path = write_mesh(mesh, tmp_path / f"bone{ext}")
    raw = trimesh.load(str(path), force="mesh")
    # on disk: LPS, i.e. x and y negated
    assert np.allclose(raw.bounds.mean(axis=0), [-30.0, 20.0, 5.0], atol=1e-3)
    back = read_mesh(path)
    assert np.allclose(back.bounds, mesh.bounds, atol=1e-3)
    assert back.is_watertight and abs(back.volume - mesh.volume) < 1e-2 * mesh.volume
    as_ras = read_mesh(path, space="RAS")
    assert np.allclose(as_ras.bounds.mean(axis=0), [-30.0, 20.0, 5.0], atol=1e-3)
    assert not list(tmp_path.glob(".*partial*"))


def test_header_comments_name_the_space(tmp_path: Path) -> None:
    mesh = _sphere()
    ply = write_mesh(mesh, tmp_path / "a.ply").read_bytes()
    assert b"comment limbseg: coordinates in LPS millimetres\n" in ply[: ply.index(b"end_header")]
    assert write_mesh(mesh, tmp_path / "a.stl").read_bytes()[:80].startswith(b"limbseg: coordinates in LPS")
    assert "# limbseg: coordinates in RAS millimetres" in write_mesh(mesh, tmp_path / "b.obj", space="RAS").read_text()


def test_open_mesh_with_one_missing_triangle_is_repaired(tmp_path: Path) -> None:
    mesh = _sphere()
    holed = trimesh.Trimesh(mesh.vertices, mesh.faces[1:], process=False)
    assert not holed.is_watertight
    holed.export(str(tmp_path / "holed.ply"))
    fixed = read_mesh(tmp_path / "holed.ply", space="RAS")
    assert fixed.is_watertight
    assert abs(fixed.volume - mesh.volume) < 1e-3 * mesh.volume


def test_widely_open_mesh_is_refused(tmp_path: Path) -> None:
    mesh = _sphere()
    keep = mesh.triangles_center[:, 2] < 8.0  # cut the cap off: a large hole
    trimesh.Trimesh(mesh.vertices, mesh.faces[keep]).export(str(tmp_path / "cut.stl"))
    with pytest.raises(LimbsegError, match="open"):
        read_mesh(tmp_path / "cut.stl")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [("missing.ply", None, "no such"), ("bad.ply", b"ply\ngarbage", "corrupt mesh|triangles"),
     ("m.vtk", b"# vtk", "VTK"), ("m.xyz", b"1 2 3", "unsupported")],
)
def test_bad_mesh_files(tmp_path: Path, name: str, content: bytes | None, message: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(LimbsegError, match=message):
        read_mesh(path)


def test_bad_space_and_output_format(tmp_path: Path) -> None:
    with pytest.raises(LimbsegError, match="space"):
        write_mesh(_sphere(), tmp_path / "a.ply", space="XYZ")
    with pytest.raises(LimbsegError, match="format"):
        write_mesh(_sphere(), tmp_path / "a.vtk")
    assert not any(tmp_path.iterdir())
