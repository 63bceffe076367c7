"""Bone shapes from the coupled pelvis-femur-tibia-fibula statistical shape model.

The model is the University of Auckland paediatric SSM shipped in the PyPI package
``articulated-ssm`` 0.2.0 (installed with ``--no-deps``; only its data files are used).
Each side model holds both hip bones and one leg; a shape is ``mean + modes @ w`` in mm in
the model's frame: x anterior, y superior, z towards the right side. limbseg works in RAS,
so model coordinates (x, y, z) map to RAS (z, x, y) (a rotation, winding is kept).

A skeleton is a dict ``{"femur_left": Trimesh, ..., "pelvis_right": Trimesh}`` in RAS mm.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh

from limbseg.errors import LimbsegError

SSM_SUBDIR = ("coupled_ssm", "pel_fem_tib_fib_both_side")
BONES = ("tibia", "femur", "fibula", "pelvis")
SIDES = ("left", "right")
_MODEL_NAMES = {"Pel_L": "pelvis_left", "Pel_R": "pelvis_right", "Fem": "femur", "Fib": "fibula", "Tib": "tibia"}
INSTALL_HINT = "pip install --no-deps articulated-ssm==0.2.0"


@dataclass(frozen=True)
class ShapeModel:
    """One side model: ``mean`` (V, 3) mm, ``modes`` (3V, M) unit vectors, ``variances`` (M,),
    ``projected`` (M, S) weights of the training subjects, ``faces`` (F, 3) and per-part
    ``(v0, v1, f0, f1)`` vertex and face ranges keyed by part name (``femur``, ``pelvis_left`` ...)."""

    mean: np.ndarray
    modes: np.ndarray
    variances: np.ndarray
    projected: np.ndarray
    faces: np.ndarray
    parts: dict[str, tuple[int, int, int, int]]

    def shape(self, weights: np.ndarray) -> np.ndarray:
        """Vertices (V, 3) float64 mm in the model frame for mode weights ``weights`` (M,)."""
        return (self.mean.reshape(-1) + self.modes @ weights).reshape(-1, 3).astype(np.float64)


def ssm_directory() -> Path:
    """Folder holding the SSM data files, or a LimbsegError naming the install command."""
    spec = importlib.util.find_spec("articulated_ssm_both_sides")
    if spec is None or not spec.submodule_search_locations:
        raise LimbsegError(f"the shape model package is not installed; run: {INSTALL_HINT}")
    folder = Path(list(spec.submodule_search_locations)[0]).joinpath(*SSM_SUBDIR)
    if not (folder / "shape_model_left_side.pc.npz").is_file():
        raise LimbsegError(f"shape model data files are missing; run: {INSTALL_HINT}", folder)
    return folder


def _read_ranges(path: Path) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for line in path.read_text().split("\n"):
        # the files have no trailing newline between records on some lines: split on names
        parts = line.split()
        for n in range(0, len(parts) - 2, 3):
            name = parts[n].split("_")[0] if parts[n].startswith(("Fem", "Fib", "Tib")) else parts[n]
            out[_MODEL_NAMES[name]] = (int(parts[n + 1]), int(parts[n + 2]))
    return out


def _read_ply_faces(path: Path, n_vertices: int) -> np.ndarray:
    mesh = trimesh.load(str(path), process=False)
    if len(mesh.vertices) != n_vertices:
        raise LimbsegError("shape model mean mesh does not match the model", path)
    return np.asarray(mesh.faces, dtype=np.int64)


@functools.lru_cache(maxsize=2)
def load_model(side: str) -> ShapeModel:
    """Load (and cache) the side model ``side`` ('left' or 'right')."""
    if side not in SIDES:
        raise ValueError(f"side must be left or right, got {side!r}")
    folder = ssm_directory()
    try:
        data = np.load(folder / f"shape_model_{side}_side.pc.npz", allow_pickle=False)
        mean, modes = data["mean"], data["modes"]
        variances, projected = data["weights"], data["projectedWeights"]
    except (OSError, ValueError, KeyError) as exc:
        raise LimbsegError(f"unreadable shape model ({exc}); reinstall with: {INSTALL_HINT}", folder) from exc
    faces = _read_ply_faces(folder / f"shape_model_{side}_side_mean.ply", mean.size // 3)
    vr = _read_ranges(folder / f"Coupled_SSM_node_nrs_per_bone_mesh_{side}.txt")
    fr = _read_ranges(folder / f"Coupled_SSM_face_nrs_per_bone_mesh_{side}.txt")
    parts = {k: (vr[k][0], vr[k][1], fr[k][0], fr[k][1]) for k in vr}
    return ShapeModel(mean.astype(np.float32), modes.astype(np.float32), variances.astype(np.float64),
                      projected.astype(np.float64), faces, parts)


def repair_mesh(vertices: np.ndarray, faces: np.ndarray) -> trimesh.Trimesh:
    """A watertight, consistently wound mesh: drops duplicated faces (the SSM tibia has folded
    face pairs), degenerate faces and unused vertices, then fills holes and fixes normals."""
    s = np.sort(faces, axis=1)
    _, inverse, counts = np.unique(s, axis=0, return_inverse=True, return_counts=True)
    keep = counts[inverse.reshape(-1)] == 1
    mesh = trimesh.Trimesh(vertices, faces[keep], process=False)
    if not mesh.is_watertight:
        mesh.merge_vertices()
        mesh.update_faces(mesh.nondegenerate_faces())
        mesh.remove_unreferenced_vertices()
        trimesh.repair.fill_holes(mesh)
    if not mesh.is_winding_consistent:
        trimesh.repair.fix_winding(mesh)
    if mesh.volume < 0:
        mesh.invert()
    return mesh


def model_to_ras(points: np.ndarray) -> np.ndarray:
    """Model frame (x anterior, y superior, z right) -> RAS (x right, y anterior, z superior)."""
    return points[:, [2, 0, 1]]


def _part(model: ShapeModel, verts: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    v0, v1, f0, f1 = model.parts[name]
    return verts[v0:v1], model.faces[f0:f1] - v0


def _rigid_fit(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation R and translation t minimising |src @ R.T + t - dst| (Kabsch)."""
    cs, cd = src.mean(0), dst.mean(0)
    u, _, vt = np.linalg.svd((src - cs).T @ (dst - cd))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    rot = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return rot, cd - cs @ rot.T


def sample_weights(rng: np.random.Generator, model: ShapeModel, real_fraction: float = 0.5) -> np.ndarray:
    """Mode weights: a projected real subject (plus small noise) or a draw clipped to +-3 SD."""
    sd = np.sqrt(model.variances)
    if rng.random() < real_fraction:
        j = int(rng.integers(model.projected.shape[1]))
        return model.projected[:, j] + rng.normal(0.0, 0.2, sd.shape) * sd
    return np.clip(rng.normal(0.0, 1.0, sd.shape), -3.0, 3.0) * sd


def build_skeleton(w_right: np.ndarray, rng: np.random.Generator, asymmetry: float = 0.15) -> dict[str, np.ndarray]:
    """Both legs and the pelvis as vertex arrays (model frame, mm), keyed ``femur_right`` ...

    The pelvis and right leg come from the right model with ``w_right``; the left leg comes
    from the left model, whose weights are fitted so that its pelvis matches the right model's
    pelvis (plus a little asymmetry), then rigidly aligned on the left hip bone.
    """
    right, left = load_model("right"), load_model("left")
    vr = right.shape(w_right)
    pel = np.r_[slice(*right.parts["pelvis_left"][:2]), slice(*right.parts["pelvis_right"][:2])]
    a = left.modes.reshape(-1, 3, left.modes.shape[1])[pel].reshape(-1, left.modes.shape[1])
    b = (vr[pel] - left.mean.reshape(-1, 3)[pel]).reshape(-1)
    w_left = np.linalg.lstsq(a.astype(np.float64), b, rcond=None)[0]
    w_left += rng.normal(0.0, asymmetry, w_left.shape) * np.sqrt(left.variances)
    vl = left.shape(w_left)
    rot, t = _rigid_fit(_part(left, vl, "pelvis_left")[0], _part(right, vr, "pelvis_left")[0])
    vl = vl @ rot.T + t
    out: dict[str, np.ndarray] = {}
    for side, model, verts in (("right", right, vr), ("left", left, vl)):
        for bone in ("femur", "tibia", "fibula"):
            out[f"{bone}_{side}"] = _part(model, verts, bone)[0]
    for side in SIDES:
        out[f"pelvis_{side}"] = _part(right, vr, f"pelvis_{side}")[0]
    return out


def part_faces(name: str) -> np.ndarray:
    """Faces (F, 3) of a skeleton part (``femur_left``, ``pelvis_right`` ...), local indices."""
    bone, side = name.split("_")
    model = load_model(side if bone != "pelvis" else "right")
    key = name if bone == "pelvis" else bone
    v0, _, f0, f1 = model.parts[key]
    return model.faces[f0:f1] - v0
