"""Bone-level geometric constructions shared by the measurement and the virtual cohort's truth.

Each function takes a closed bone surface (:class:`trimesh.Trimesh`, RAS mm) and landmarks that
are already known (head centre, knee centre ...) and constructs one more element of the bone's
anatomy: the femoral shaft axis, the femoral neck centre, the posterior condylar points, the
posterior points of the tibial plateau, the maximal length. The definitions are stated in each
docstring and in ``docs/measurements.md``.
"""

from __future__ import annotations

import numpy as np
import trimesh

from limbseg.measure.geometry import (
    extent,
    fit_line,
    perpendicular,
    posterior_line,
    posterior_secant,
    principal_axis,
    section,
    unit,
)

#: Femoral shaft sections: fractions of the head-centre-to-knee-centre distance.
SHAFT_FRACTIONS = tuple(np.round(np.arange(0.30, 0.701, 0.05), 2))
#: Distal femur region for the condyles: within this fraction of the length above the lowest point.
CONDYLE_FRACTION = 0.12
#: Proximal tibia region for the posterior plateau line: within this fraction below the highest point.
PLATEAU_FRACTION = 0.08
#: Medial and lateral offset of the posterior plateau points from the region's centre (fraction of its width).
PLATEAU_OFFSET = 0.25
#: Level of the malleolar cross-sections above the medial malleolar tip (fraction of the tibia's length): above
#: the level where the medial malleolus joins the distal tibia (at 2 % the plane cut through that junction and
#: the medial centroid moved by several mm with the grid).
MALLEOLUS_LEVEL = 0.05


def shaft_axis(mesh: trimesh.Trimesh, head: np.ndarray, knee: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Femoral anatomical (shaft) axis: (point, unit direction pointing distally).

    The least-squares line through the centroids of the femur's cross-sections perpendicular to the
    mechanical axis (head centre to knee centre) at 30, 35, ..., 70 % of the way from the head centre
    to the knee centre (the diaphysis, clear of the trochanters and of the distal metaphysis).
    """
    mech = unit(knee - head)
    cents = []
    for f in SHAFT_FRACTIONS:
        origin = head + f * (knee - head)
        s = section(mesh, origin, mech)
        if s is not None:
            cents.append(s[1])
    if len(cents) < 2:
        return head, mech
    point, direction = fit_line(np.asarray(cents))
    return point, direction if direction @ mech >= 0 else -direction


def neck_centre(mesh: trimesh.Trimesh, head: np.ndarray, radius: float, shaft_point: np.ndarray,
                shaft_dir: np.ndarray, iterations: int = 4) -> np.ndarray:
    """Centre of the femoral neck: the centroid of its narrowest cross-section.

    The neck axis runs from this point to the head centre. Planes perpendicular to the current axis
    estimate are cut at 0.5-2.5 head radii from the head centre; the cross-section (the loop nearest
    the axis) of smallest area gives the centroid, the axis is reset through it, and this repeats.
    The first estimate points from the head centre to the shaft axis, 45 degrees distally.
    """
    q = shaft_point + float((head - shaft_point) @ shaft_dir) * shaft_dir  # foot of the perpendicular
    reach = float(np.linalg.norm(head - q))
    d = unit(q + reach * shaft_dir - head)  # towards the neck, from the head
    centre = head + 1.5 * radius * d
    for _ in range(iterations):
        best: tuple[float, np.ndarray] | None = None
        for s in np.linspace(0.5, 2.5, 21) * radius:
            origin = head + s * d
            cut = section(mesh, origin, d)
            if cut is None or np.linalg.norm(cut[1] - origin) > radius:
                continue
            if best is None or cut[0] < best[0]:
                best = cut
        if best is None:
            break
        centre = best[1]
        d = unit(centre - head)
    return centre


def condyle_points(points: np.ndarray, mech_superior: np.ndarray) -> np.ndarray:
    """Surface points of the distal femur within :data:`CONDYLE_FRACTION` of the length of its lowest point."""
    lo, hi = extent(points, mech_superior)
    t = points @ mech_superior
    return points[t < lo + CONDYLE_FRACTION * (hi - lo)]


def posterior_condyles(points: np.ndarray, knee: np.ndarray, mech_superior: np.ndarray, medial: np.ndarray,
                       side: str) -> tuple[np.ndarray, np.ndarray]:
    """(medial, lateral) posterior condylar points: the posterior bitangent of the femoral condyles
    seen along the mechanical axis (see :func:`~limbseg.measure.geometry.posterior_line`)."""
    return posterior_line(condyle_points(points, mech_superior), knee, mech_superior, medial, side)


def posterior_plateau(tibia: trimesh.Trimesh, tibial_superior: np.ndarray, medial: np.ndarray,
                      side: str) -> tuple[np.ndarray, np.ndarray]:
    """(medial, lateral) posterior points of the tibial condyles, seen along the tibial mechanical axis:
    the points of the posterior outline (convex hull) of the tibia within :data:`PLATEAU_FRACTION` of its
    length below its highest point, a quarter of that region's medial-lateral width medial and lateral
    of its area-weighted centroid (:func:`~limbseg.measure.geometry.posterior_secant`).

    The shape model's plateau has no posterior notch deep enough for a bitangent: its posterior border
    is flat or evenly curved, where the most posterior point of each half slid by millimetres (and the
    line turned by 2-6 degrees) when the same bone was voxelised on another grid.
    """
    v = np.asarray(tibia.vertices, dtype=np.float64)
    lo, hi = extent(v, tibial_superior)
    sel = v[v @ tibial_superior > hi - PLATEAU_FRACTION * (hi - lo)]
    fc = np.asarray(tibia.triangles_center, dtype=np.float64)
    flo, fhi = extent(fc, tibial_superior)
    faces = fc @ tibial_superior > fhi - PLATEAU_FRACTION * (fhi - flo)
    w = np.asarray(tibia.area_faces)[faces]
    centre = (fc[faces] * w[:, None]).sum(0) / w.sum() if w.sum() > 0 else sel.mean(0)
    return posterior_secant(sel, centre, tibial_superior, medial, side, offset=PLATEAU_OFFSET)


def length_along(points: np.ndarray, axis: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(length mm, lowest point, highest point) of ``points`` along the unit ``axis``."""
    t = points @ axis
    return float(t.max() - t.min()), points[int(np.argmin(t))], points[int(np.argmax(t))]


def fibula_axis(points: np.ndarray) -> np.ndarray:
    """Unit long axis of the fibula (its first principal axis), pointing superiorly."""
    return principal_axis(points)[1]


def medial_from(reference: np.ndarray, away_from: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Unit vector perpendicular to ``axis`` from ``away_from`` towards ``reference``."""
    return unit(perpendicular(reference - away_from, axis))


def femur_landmarks(mesh: trimesh.Trimesh, head: np.ndarray, radius: float, medial_condyle: np.ndarray,
                    lateral_condyle: np.ndarray, side: str) -> dict[str, np.ndarray]:
    """All femoral landmarks (RAS mm) from the head sphere and the distal points of the two condyles.

    Knee centre: midpoint of the most distal points of the medial and lateral condyles. Mechanical
    axis: head centre to knee centre. Then the shaft axis (two points on it, at 30 % and 70 %), the
    neck centre, the posterior condylar points and the most proximal / distal points along the
    mechanical axis.
    """
    v = np.asarray(mesh.vertices, dtype=np.float64)
    knee = 0.5 * (medial_condyle + lateral_condyle)
    up = unit(head - knee)
    sp, sd = shaft_axis(mesh, head, knee)
    neck = neck_centre(mesh, head, radius, sp, sd)
    pmc, plc = posterior_condyles(v, knee, up, medial_condyle - lateral_condyle, side)
    _, distal, proximal = length_along(v, up)
    shaft = [sp + float((head + f * (knee - head) - sp) @ sd) * sd for f in (SHAFT_FRACTIONS[0], SHAFT_FRACTIONS[-1])]
    return {"femoral_head_centre": head, "distal_medial_condyle": medial_condyle,
            "distal_lateral_condyle": lateral_condyle, "knee_centre": knee, "neck_centre": neck,
            "shaft_proximal": shaft[0], "shaft_distal": shaft[1], "posterior_medial_condyle": pmc,
            "posterior_lateral_condyle": plc, "femur_proximal": proximal, "femur_distal": distal}


def malleolar_centres(tibia: trimesh.Trimesh, fibula: trimesh.Trimesh, medial_tip: np.ndarray,
                      lateral_tip: np.ndarray, up: np.ndarray, length: float) -> tuple[np.ndarray, np.ndarray]:
    """(medial, lateral) malleolar centres: the centroids of the tibia's and the fibula's cross-sections
    perpendicular to the tibial axis ``up``, :data:`MALLEOLUS_LEVEL` of the tibia's ``length`` above the
    medial malleolar tip (the loop nearest each tip)."""
    origin = medial_tip + MALLEOLUS_LEVEL * length * up
    out = []
    for mesh, tip in ((tibia, medial_tip), (fibula, lateral_tip)):
        near = tip + float((origin - tip) @ up) * up
        cut = section(mesh, near, up, near=near)
        out.append(near if cut is None else cut[1])
    return out[0], out[1]


def tibia_landmarks(tibia: trimesh.Trimesh, fibula: trimesh.Trimesh, plateau: np.ndarray, medial_tip: np.ndarray,
                    lateral_tip: np.ndarray, medial: np.ndarray, side: str) -> dict[str, np.ndarray]:
    """Tibial landmarks (RAS mm) from the plateau centre and the malleolar tips.

    Ankle centre: midpoint of the malleolar tips. Tibial mechanical axis: plateau centre to ankle
    centre. Then the posterior points of the tibial condyles (``medial`` seeds the medial direction)
    and the malleolar centres.
    """
    ankle = 0.5 * (medial_tip + lateral_tip)
    up = unit(plateau - ankle)
    tv = np.asarray(tibia.vertices, dtype=np.float64)
    pmp, plp = posterior_plateau(tibia, up, medial, side)
    lo, hi = extent(tv, up)
    mmc, lmc = malleolar_centres(tibia, fibula, medial_tip, lateral_tip, up, hi - lo)
    return {"plateau_centre": plateau, "posterior_medial_plateau": pmp, "posterior_lateral_plateau": plp,
            "medial_malleolus_tip": medial_tip, "lateral_malleolus_tip": lateral_tip, "ankle_centre": ankle,
            "medial_malleolus": mmc, "lateral_malleolus": lmc}


def fibula_landmarks(fibula: trimesh.Trimesh) -> dict[str, np.ndarray]:
    """Most proximal and most distal points of the fibula along its own long axis."""
    v = np.asarray(fibula.vertices, dtype=np.float64)
    _, distal, proximal = length_along(v, fibula_axis(v))
    return {"fibula_proximal": proximal, "fibula_distal": distal}
