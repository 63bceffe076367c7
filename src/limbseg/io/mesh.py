"""Reading and writing surface meshes (PLY, STL, OBJ) in patient millimetres.

Inside limbseg a mesh's vertices are RAS millimetres, like every affine. Files are LPS by
default: 3D Slicer assumes LPS for model files, and limbseg writes LPS with a header comment
saying so where the format allows (PLY ``comment``, OBJ ``#``, STL's 80-byte header).
``space="RAS"`` reads or writes RAS coordinates instead. LPS <-> RAS negates x and y.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh

from limbseg.errors import LimbsegError
from limbseg.io.atomic import atomic_path
from limbseg.io.guard import reading

MESH_SUFFIXES = (".ply", ".stl", ".obj")
_FLIP = np.array([-1.0, -1.0, 1.0])


def is_mesh_path(path: str | Path) -> bool:
    """True when the file name ends in a mesh extension (.ply, .stl, .obj, .vtk, .vtp)."""
    return Path(path).name.lower().endswith((*MESH_SUFFIXES, ".vtk", ".vtp"))


def header_comment(space: str) -> str:
    """The comment written into mesh files: which coordinate convention the vertices use."""
    return f"limbseg: coordinates in {_check_space(space)} millimetres"


def _check_space(space: str) -> str:
    s = str(space).upper()
    if s not in ("LPS", "RAS"):
        raise LimbsegError(f"unknown mesh space {space!r} (use LPS or RAS)")
    return s


def _to_ras(vertices: np.ndarray, space: str) -> np.ndarray:
    v = np.asarray(vertices, dtype=np.float64)
    return v * _FLIP if space == "LPS" else v.copy()


def read_mesh(path: str | Path, space: str = "LPS") -> trimesh.Trimesh:
    """Read a closed surface mesh and return it with vertices in RAS mm.

    Args:
        path: a ``.ply``, ``.stl`` or ``.obj`` file.
        space: the convention of the file's coordinates, ``"LPS"`` (3D Slicer's default) or ``"RAS"``.

    Returns:
        A watertight :class:`trimesh.Trimesh`, vertices (N, 3) float64 in RAS mm. Open meshes whose
        holes are single triangles or quads (or duplicated vertices) are repaired; others are refused.

    Raises:
        LimbsegError: missing file, unsupported format, unreadable or empty mesh, open mesh.
    """
    path = Path(path)
    space = _check_space(space)
    if not path.is_file():
        raise LimbsegError("no such mesh file", path)
    if path.name.lower().endswith((".vtk", ".vtp")):
        raise LimbsegError("VTK/VTP meshes are not supported; save the model as PLY, STL or OBJ", path)
    if not path.name.lower().endswith(MESH_SUFFIXES):
        raise LimbsegError("unsupported mesh format (use .ply, .stl or .obj)", path)
    with reading(path, "mesh"):  # trimesh raises many types for corrupt files
        return _read(path, space)


def _read(path: Path, space: str) -> trimesh.Trimesh:
    loaded = trimesh.load(str(path), force="mesh", process=True)
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise LimbsegError("mesh has no triangles", path)
    if not np.all(np.isfinite(loaded.vertices)):
        raise LimbsegError("mesh has NaN or infinite vertex coordinates", path)
    mesh = close_mesh(loaded, path)
    return trimesh.Trimesh(_to_ras(mesh.vertices, space), mesh.faces.copy(), process=False)


def close_mesh(mesh: trimesh.Trimesh, path: str | Path | None = None) -> trimesh.Trimesh:
    """Return ``mesh`` watertight with consistent normals, repairing trivial defects.

    Merges duplicated vertices, removes degenerate and duplicate faces and fills holes made of
    one missing triangle or quad. Anything larger is refused with :class:`LimbsegError`.
    """
    if mesh.is_watertight:
        if not mesh.is_winding_consistent:
            mesh = mesh.copy()
            trimesh.repair.fix_normals(mesh)
        return mesh
    fixed = mesh.copy()
    fixed.merge_vertices()
    fixed.update_faces(fixed.nondegenerate_faces())
    fixed.update_faces(fixed.unique_faces())
    fixed.remove_unreferenced_vertices()
    trimesh.repair.fill_holes(fixed)
    if not fixed.is_watertight:
        edges = trimesh.grouping.group_rows(fixed.edges_sorted, require_count=1)
        raise LimbsegError(
            f"mesh is open ({len(edges)} boundary edges) and cannot be closed automatically; "
            "close it (e.g. 3D Slicer Surface Toolbox, fill holes) and try again",
            path,
        )
    trimesh.repair.fix_normals(fixed)
    return fixed


def write_mesh(mesh_ras: trimesh.Trimesh, path: str | Path, space: str = "LPS") -> Path:
    """Write a mesh whose vertices are RAS mm, atomically; format by extension (.ply, .stl, .obj).

    The file's coordinates are LPS mm by default (``space="RAS"`` keeps RAS), and the header
    says so: a PLY ``comment`` line, an OBJ ``#`` line or the STL header text.
    """
    path = Path(path)
    space = _check_space(space)
    name = path.name.lower()
    if not name.endswith(MESH_SUFFIXES):
        raise LimbsegError("unsupported mesh output format (use .ply, .stl or .obj)", path)
    vertices = _to_ras(mesh_ras.vertices, "LPS" if space == "LPS" else "RAS")  # RAS->LPS is the same flip
    out = trimesh.Trimesh(vertices, np.asarray(mesh_ras.faces).copy(), process=False)
    comment = header_comment(space)
    if name.endswith(".ply"):
        data = _ply_bytes(out, comment)
    elif name.endswith(".stl"):
        raw = bytearray(trimesh.exchange.stl.export_stl(out))
        raw[:80] = comment.encode("ascii").ljust(80, b" ")[:80]
        data = bytes(raw)
    else:
        text = trimesh.exchange.obj.export_obj(out, include_normals=False, include_color=False,
                                               include_texture=False, header=comment)
        data = text.encode("utf-8")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def _ply_bytes(mesh: trimesh.Trimesh, comment: str) -> bytes:
    """Binary PLY with the ``comment`` line in its header (replacing trimesh's own comment)."""
    raw = trimesh.exchange.ply.export_ply(mesh, encoding="binary", include_attributes=False)
    end = raw.index(b"end_header\n")
    lines = [ln for ln in raw[:end].split(b"\n") if ln and not ln.startswith(b"comment")]
    lines.insert(2, b"comment " + comment.encode("ascii"))
    return b"\n".join(lines) + b"\n" + raw[end:]
