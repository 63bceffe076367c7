"""Skeleton of one virtual child: SSM shape, age scaling, pose and landmarks (RAS mm).

Pose: knee flexion (0-10 deg), hip flexion/abduction/rotation (a few degrees each, abduction
also sets the separation of the legs). Landmarks (hip, knee and ankle centres, femoral head
radius, neck direction) drive the soft-tissue model in :mod:`limbseg.synth.anatomy`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import trimesh

from limbseg.synth import ssm


@dataclass
class Skeleton:
    """Bone meshes (RAS mm, watertight) keyed ``<bone>_<side>`` and leg landmarks keyed by side.

    ``vertices`` holds each part's posed vertices in the shape model's own order (RAS mm), so
    the model's landmark vertex numbers index them (:mod:`limbseg.synth.truth`).
    """

    meshes: dict[str, trimesh.Trimesh]
    landmarks: dict[str, dict[str, np.ndarray]]
    age: float
    info: dict[str, float] = field(default_factory=dict)
    vertices: dict[str, np.ndarray] = field(default_factory=dict)


def _rotation(axis: np.ndarray, angle_deg: float) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    a = np.deg2rad(angle_deg)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * (k @ k)


def _rotate(points: np.ndarray, rot: np.ndarray, centre: np.ndarray) -> np.ndarray:
    return (points - centre) @ rot.T + centre


def _sphere_fit(p: np.ndarray) -> tuple[np.ndarray, float]:
    a = np.c_[2 * p, np.ones(len(p))]
    sol = np.linalg.lstsq(a, (p**2).sum(1), rcond=None)[0]
    c = sol[:3]
    return c, float(np.sqrt(sol[3] + c @ c))


def _end_centroid(v: np.ndarray, top: bool, frac: float) -> np.ndarray:
    z = v[:, 2]
    length = z.max() - z.min()
    sel = z > z.max() - frac * length if top else z < z.min() + frac * length
    return v[sel].mean(0)


def leg_landmarks(femur: np.ndarray, tibia: np.ndarray) -> dict[str, np.ndarray]:
    """Hip (femoral head centre), knee and ankle centres (RAS mm), head radius and neck axis."""
    length = femur[:, 2].max() - femur[:, 2].min()
    top = femur[np.argmax(femur[:, 2])]
    head_pts = femur[np.linalg.norm(femur - top, axis=1) < 0.06 * length]
    hip, radius = _sphere_fit(head_pts)
    knee = 0.5 * (_end_centroid(femur, False, 0.04) + _end_centroid(tibia, True, 0.04))
    ankle = _end_centroid(tibia, False, 0.03)
    shaft = femur[np.abs(femur[:, 2] - (hip[2] - 0.25 * length)) < 0.02 * length].mean(0)
    neck = hip - shaft
    neck[2] = 0.35 * abs(neck[2])
    neck_dir = neck / np.linalg.norm(neck)
    return {"hip": hip, "knee": knee, "ankle": ankle, "head_radius": np.array(radius), "neck_dir": neck_dir}


@functools.lru_cache(maxsize=2)
def _acetabulum_indices(side: str) -> np.ndarray:
    """Indices of the hip-bone vertices lining the acetabulum (found on the mean shape)."""
    right = ssm.load_model("right")
    model = ssm.load_model(side)
    mean_l = ssm.model_to_ras(model.shape(np.zeros(len(model.variances))))
    mean_r = ssm.model_to_ras(right.shape(np.zeros(len(right.variances))))
    fem = mean_l[slice(*model.parts["femur"][:2])]
    tib = mean_l[slice(*model.parts["tibia"][:2])]
    lm = leg_landmarks(fem, tib)
    pel = mean_r[slice(*right.parts[f"pelvis_{side}"][:2])]
    return np.flatnonzero(np.linalg.norm(pel - lm["hip"], axis=1) < float(lm["head_radius"]) + 8.0)


def articulate(parts: dict[str, np.ndarray], knee_gap_mm: float) -> None:
    """Put the joints together: the SSM extrapolates bones apart for small subjects.

    The tibia and fibula move so the tibial plateau lies ``knee_gap_mm`` below the femoral
    condyles (centred under them); each leg moves so the femoral head centre sits in the
    acetabulum's centre.
    """
    for side in ssm.SIDES:
        fem, tib = parts[f"femur_{side}"], parts[f"tibia_{side}"]
        shift = _end_centroid(fem, False, 0.03) - _end_centroid(tib, True, 0.03)
        shift[2] = fem[:, 2].min() - knee_gap_mm - tib[:, 2].max()
        for bone in ("tibia", "fibula"):
            parts[f"{bone}_{side}"] = parts[f"{bone}_{side}"] + shift
        acetabulum, _ = _sphere_fit(parts[f"pelvis_{side}"][_acetabulum_indices(side)])
        hip = leg_landmarks(parts[f"femur_{side}"], parts[f"tibia_{side}"])["hip"]
        for bone in ("femur", "tibia", "fibula"):
            parts[f"{bone}_{side}"] = parts[f"{bone}_{side}"] + (acetabulum - hip)


def femur_length_for_age(age: float) -> float:
    """Typical femur length (mm, head top to condyles) of a child aged ``age`` years (5-16)."""
    return 270.0 + 19.0 * (age - 5.0)


def _pose_leg(parts: dict[str, np.ndarray], side: str, rng: np.random.Generator, info: dict) -> None:
    lm = leg_landmarks(parts[f"femur_{side}"], parts[f"tibia_{side}"])
    knee_flex = float(rng.uniform(0.0, 10.0))
    rk = _rotation([1, 0, 0], -knee_flex)
    for bone in ("tibia", "fibula"):
        parts[f"{bone}_{side}"] = _rotate(parts[f"{bone}_{side}"], rk, lm["knee"])
    sign = -1.0 if side == "right" else 1.0
    flex = info["hip_flexion"] + rng.uniform(-2, 2)
    abd, rot = info["hip_abduction"] + rng.uniform(-2, 2), rng.uniform(-8, 8)
    axis = _rotate(lm["ankle"][None], rk, lm["knee"])[0] - lm["hip"]
    rh = _rotation(axis, rot) @ _rotation([0, 1, 0], sign * abd) @ _rotation([1, 0, 0], flex)
    for bone in ("femur", "tibia", "fibula"):
        parts[f"{bone}_{side}"] = _rotate(parts[f"{bone}_{side}"], rh, lm["hip"])
    info.update({f"knee_flexion_{side}": knee_flex, f"hip_flexion_{side}": flex,
                 f"hip_abduction_{side}": abd, f"hip_rotation_{side}": rot})


def sample_skeleton(rng: np.random.Generator, age: float | None = None) -> Skeleton:
    """A random child: SSM weights (real subject or random draw), age 5-16, scaling and pose."""
    age = float(rng.uniform(5.0, 16.0)) if age is None else float(age)
    w = ssm.sample_weights(rng, ssm.load_model("right"))
    parts = {k: ssm.model_to_ras(v) for k, v in ssm.build_skeleton(w, rng).items()}
    fem_len = np.mean([np.ptp(parts[f"femur_{s}"][:, 2]) for s in ssm.SIDES])
    scale = femur_length_for_age(age) * float(np.clip(rng.normal(1.0, 0.04), 0.9, 1.1)) / fem_len
    centre = 0.5 * (parts["pelvis_left"].mean(0) + parts["pelvis_right"].mean(0))
    parts = {k: (v - centre) * scale for k, v in parts.items()}
    articulate(parts, knee_gap_mm=float(rng.uniform(3.0, 5.0) + 0.3 * (16.0 - age)))
    info: dict[str, float] = {"scale": float(scale), "age": age, "hip_flexion": float(rng.uniform(-3, 5)),
                              "hip_abduction": float(rng.uniform(-3, 3))}
    for side in ssm.SIDES:
        _pose_leg(parts, side, rng, info)
    meshes = {k: ssm.repair_mesh(v, ssm.part_faces(k)) for k, v in parts.items()}
    landmarks = {s: leg_landmarks(parts[f"femur_{s}"], parts[f"tibia_{s}"]) for s in ssm.SIDES}
    return Skeleton(meshes, landmarks, age, info, vertices=parts)
