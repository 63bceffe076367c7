"""A two-legged phantom of known geometry: femur, tibia and fibula from spheres and cylinders.

Each leg (RAS mm, patient right = +x) is built from its parameters (neck-shaft angle, femoral
anteversion, tibial torsion, lengths), so the expected landmarks are exact; the label map is the
union of the primitives sampled at the voxel centres of an axial 0.94 x 0.94 x 3 mm grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from limbseg.measure import bones, definitions
from limbseg.volume import LabelMap

SPACING = (0.9375, 0.9375, 3.0)


@dataclass(frozen=True)
class Leg:
    side: str
    neck_shaft_deg: float = 130.0
    anteversion_deg: float = 15.0
    torsion_deg: float = 20.0
    femur_shaft_mm: float = 320.0
    tibia_drop_mm: float = 300.0  # femur about 1.15 times the tibia, a child's proportions
    x: float = 90.0


def _rot_z(deg: float) -> np.ndarray:
    a = np.radians(deg)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])


def leg_parts(leg: Leg) -> tuple[dict[str, list[tuple]], dict[str, np.ndarray]]:
    """Primitives per bone (``('sphere', c, r)`` / ``('capsule', p, q, r)`` / ``('cyl', p, q, r)``) and the
    exact landmarks, before any rotation. The leg is built as a right leg and mirrored for the left."""
    knee_z = -60.0 - leg.femur_shaft_mm
    med = np.array([-1.0, 0.0, 0.0])  # right leg: medial is -x
    ant, up = np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0])
    base = np.array([0.0, 0.0, -75.0])
    elev, av = np.radians(leg.neck_shaft_deg - 90.0), np.radians(leg.anteversion_deg)
    d = np.cos(elev) * (np.cos(av) * med + np.sin(av) * ant) + np.sin(elev) * up
    head = base + 45.0 * d
    cm, cl = np.array([-20.0, -8.0, knee_z]), np.array([20.0, -8.0, knee_z])
    femur = [("sphere", head, 20.0), ("cyl", base, head, 9.0), ("capsule", np.array([0, 0, knee_z + 10.0]),
                                                                     np.array([0, 0, -60.0]), 11.0),
             ("sphere", np.array([0, 0, -60.0]), 14.0), ("sphere", cm, 12.0), ("sphere", cl, 12.0),
             ("capsule", cm, cl, 5.0)]
    top = knee_z - 16.0
    bottom = top - leg.tibia_drop_mm
    pl, pm_ = np.array([17.0, 0, top]), np.array([-17.0, 0, top])
    # the distal tibia (a cylinder about x = y = 0) and the medial malleolus below it; the malleolar
    # sections (bones.MALLEOLUS_LEVEL of the length above the medial tip) cut the cylinder alone
    yl = -28.0 * np.tan(np.radians(leg.torsion_deg))
    mm_c, lm_c = np.array([-12.0, 4.0]), np.array([28.0, yl])
    tibia = [("cyl", pm_ - [0, 0, 20], pm_, 18.0), ("cyl", pl - [0, 0, 20], pl, 18.0),
             ("cyl", np.array([0, 0, bottom + 20]), np.array([0, 0, top - 10]), 10.0),
             ("cyl", np.array([0, 0, bottom + 12]), np.array([0, 0, bottom + 30]), 14.0),
             ("capsule", np.r_[mm_c, bottom + 6], np.r_[mm_c, bottom + 10], 6.0)]
    fa, fb = np.r_[lm_c, bottom - 9], np.array([28.0, -10.0, top - 30])
    fibula = [("capsule", fa, fb, 6.0)]
    level = bottom + bones.MALLEOLUS_LEVEL * (top - bottom)  # the section level (tibial axis ~ z)
    lm = {"femoral_head_centre": head, "neck_centre": base, "knee_centre": 0.5 * (cm + cl) - [0, 0, 12.0],
          "posterior_medial_condyle": cm - [0, 12.0, 0], "posterior_lateral_condyle": cl - [0, 12.0, 0],
          "plateau_centre": np.array([0.0, 0.0, top]), "posterior_medial_plateau": pm_ - [0, 18.0, 0],
          "posterior_lateral_plateau": pl - [0, 18.0, 0],
          "medial_malleolus": np.array([0.0, 0.0, level]),
          "lateral_malleolus": fa + (level - fa[2]) / (fb[2] - fa[2]) * (fb - fa),
          "ankle_centre": 0.5 * (np.r_[mm_c, bottom] + np.r_[lm_c, bottom - 15.0]),
          "shaft_proximal": np.array([0, 0, -100.0]), "shaft_distal": np.array([0, 0, -300.0])}
    u = (head - lm["knee_centre"]) / np.linalg.norm(head - lm["knee_centre"])
    lm["femur_proximal"] = head + 20.0 * u
    lm["femur_distal"] = (cm if cm @ u < cl @ u else cl) - 12.0 * u  # the lower condyle sphere
    fu = (fb - fa) / np.linalg.norm(fb - fa)
    lm["fibula_proximal"], lm["fibula_distal"] = fb + 6.0 * fu, fa - 6.0 * fu
    return {"femur": femur, "tibia": tibia, "fibula": fibula}, lm


def _place(points: np.ndarray, leg: Leg, rotation: np.ndarray) -> np.ndarray:
    p = np.array(points, dtype=float) + [leg.x, 0.0, 0.0]
    if leg.side == "left":
        p = p * [-1.0, 1.0, 1.0]
    return p @ rotation.T


def expected(leg: Leg, rotation_deg: float = 0.0) -> dict[str, float]:
    """The exact measurements of a leg (through the shared definitions)."""
    _, lm = leg_parts(leg)
    rot = _rot_z(rotation_deg)
    placed = {k: _place(v[None], leg, rot)[0] for k, v in lm.items()}
    return {m.name: m.function(placed, leg.side) for m in definitions.MEASUREMENTS}


def _inside(prim: tuple, p: np.ndarray) -> np.ndarray:
    if prim[0] == "sphere":
        return ((p - prim[1]) ** 2).sum(-1) <= prim[2] ** 2
    a, b, r = prim[1], prim[2], prim[3]
    ab = b - a
    t = ((p - a) @ ab) / float(ab @ ab)
    tc = np.clip(t, 0.0, 1.0)
    near = ((p - (a + tc[..., None] * ab)) ** 2).sum(-1) <= r * r
    return near if prim[0] == "capsule" else near & (t >= 0) & (t <= 1)


def _bounds(prim: tuple) -> tuple[np.ndarray, np.ndarray]:
    pts = np.array([prim[1]] if prim[0] == "sphere" else [prim[1], prim[2]], dtype=float)
    r = prim[-1]
    return pts.min(0) - r, pts.max(0) + r


def phantom(legs: tuple[Leg, ...], rotation_deg: float = 0.0,
            z_range: tuple[float, float] = (-801.5, -1.5)) -> LabelMap:
    """Label map of the legs on an axial grid (i = L, j = P, k = S), rotated by ``rotation_deg``
    about the superior axis; ``z_range`` (RAS mm) sets the field of view along z."""
    rot = _rot_z(rotation_deg)
    shape = (int(300 / SPACING[0]), int(170 / SPACING[1]), int((z_range[1] - z_range[0]) / SPACING[2]) + 1)
    affine = np.diag([-SPACING[0], -SPACING[1], SPACING[2], 1.0])
    affine[:3, 3] = [150.0, 85.0, z_range[0]]
    inv = np.linalg.inv(affine)
    out = np.zeros(shape, np.uint8)
    values = {"tibia": 1, "femur": 2, "fibula": 3}
    for leg in legs:
        parts, _ = leg_parts(leg)
        for bone, prims in parts.items():
            for prim in prims:
                lo, hi = _bounds(prim)
                corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
                ijk = _place(corners, leg, rot) @ inv[:3, :3].T + inv[:3, 3]
                a = np.clip(np.floor(ijk.min(0)).astype(int) - 1, 0, shape)
                b = np.clip(np.ceil(ijk.max(0)).astype(int) + 2, 0, shape)
                if np.any(b <= a):
                    continue
                grids = np.meshgrid(*(np.arange(x, y) for x, y in zip(a, b, strict=True)), indexing="ij")
                xyz = np.stack(grids, -1).astype(float) @ affine[:3, :3].T + affine[:3, 3]
                local = xyz @ rot  # undo the rotation and the placement: the leg's own frame
                if leg.side == "left":
                    local = local * [-1.0, 1.0, 1.0]
                local = local - [leg.x, 0.0, 0.0]
                region = out[a[0]:b[0], a[1]:b[1], a[2]:b[2]]
                region[_inside(prim, local) & (region == 0)] = values[bone]
    return LabelMap(out, affine)
