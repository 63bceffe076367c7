"""Finding the anatomical landmarks on a bone surface made from a label map (no shape model).

Input: closed surface meshes (RAS mm, outward normals) of one leg's femur, tibia and fibula.
Each detector finds the landmarks that the shape model marks by vertex number in the virtual
cohort (femoral head surface, epicondyles, plateau, malleoli); everything else is built by the
shared constructions of :mod:`limbseg.measure.bones`, exactly as for the truth.
"""

from __future__ import annotations

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from limbseg.measure import bones
from limbseg.measure.geometry import extent, perpendicular, principal_axis, sphere_fit, unit

#: Head radius search range, as fractions of the femur's length.
HEAD_RADIUS_RANGE = (0.03, 0.08)
#: Distal femur region searched for the condyles (fraction of the length above the lowest point).
CONDYLE_SEARCH_FRACTION = 0.12
#: Medial part of the distal tibia holding the medial malleolus (fraction of its medial-lateral width).
MEDIAL_MALLEOLUS_FRACTION = 0.2
#: Proximal tibia region whose upward-facing surface is the plateau (fraction of the length).
PLATEAU_TOP_FRACTION = 0.06


def femoral_head(mesh: trimesh.Trimesh) -> tuple[np.ndarray, float]:
    """(centre, radius mm) of the femoral head: a sphere fitted to the head's surface.

    The head is found among the vertices of the proximal 20 % of the femur by a Hough vote: each
    vertex p with outward normal n votes for the centre p - r n, for radii r over
    :data:`HEAD_RADIUS_RANGE`; the radius and centre with the densest vote win. The sphere is then
    refitted by least squares to the vertices that lie on it (distance within 12 % of the radius,
    normal within 32 degrees of the radial direction), three times.
    """
    v = np.asarray(mesh.vertices, dtype=np.float64)
    n = np.asarray(mesh.vertex_normals, dtype=np.float64)
    _, axis = principal_axis(v)
    lo, hi = extent(v, axis)
    length = hi - lo
    sel = v @ axis > hi - 0.2 * length
    pv, pn = v[sel], n[sel]
    best: tuple[int, np.ndarray, float] | None = None
    for r in np.linspace(HEAD_RADIUS_RANGE[0] * length, HEAD_RADIUS_RANGE[1] * length, 16):
        votes = pv - r * pn
        counts = cKDTree(votes).query_ball_point(votes, max(1.5, 0.08 * r), return_length=True)
        i = int(np.argmax(counts))
        if best is None or counts[i] > best[0]:
            best = (int(counts[i]), votes[i], float(r))
    assert best is not None
    centre, radius = best[1], best[2]
    for _ in range(3):
        d = np.linalg.norm(pv - centre, axis=1)
        radial = (pv - centre) / np.maximum(d, 1e-9)[:, None]
        on = (np.abs(d - radius) < max(1.5, 0.12 * radius)) & ((pn * radial).sum(1) > 0.85)
        if on.sum() < 10:
            break
        centre, radius = sphere_fit(pv[on])
    return centre, radius


def distal_condyles(mesh: trimesh.Trimesh, head: np.ndarray, iterations: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(medial, lateral) most distal points of the femoral condyles.

    The distal :data:`CONDYLE_SEARCH_FRACTION` of the femur is split into a medial and a lateral half
    by the plane through its centroid perpendicular to its major axis seen along the long axis
    (signed towards the head, which is medial of the principal axis); each half's tip along the distal direction is taken
    (:func:`tip`). The long axis starts as the femur's principal axis and is then reset to the
    mechanical axis (head centre to the midpoint of the two tips), ``iterations`` times.
    """
    v = np.asarray(mesh.vertices, dtype=np.float64)
    c, axis = principal_axis(v)
    towards_head = perpendicular(head - c, axis)  # the head is medial of the femur's principal axis
    med = lat = c
    for _ in range(iterations):
        lo, hi = extent(v, axis)
        region = v[v @ axis < lo + CONDYLE_SEARCH_FRACTION * (hi - lo)]
        centre = region.mean(0)
        q = region - centre
        q = q - np.outer(q @ axis, axis)
        _, _, vt = np.linalg.svd(q, full_matrices=False)
        m = vt[0] if vt[0] @ towards_head > 0 else -vt[0]
        s = q @ m
        med, lat = tip(region[s > 0], -axis), tip(region[s <= 0], -axis)
        axis = unit(head - 0.5 * (med + lat))
    return med, lat


def plateau_centre(tibia: trimesh.Trimesh, axis: np.ndarray) -> np.ndarray:
    """Centre of the tibial plateau: the area-weighted centroid of the tibia's upward-facing surface
    (face normal within 45 degrees of ``axis``) in the proximal :data:`PLATEAU_TOP_FRACTION` of it."""
    fc = np.asarray(tibia.triangles_center, dtype=np.float64)
    lo, hi = extent(fc, axis)
    sel = (fc @ axis > hi - PLATEAU_TOP_FRACTION * (hi - lo)) & (tibia.face_normals @ axis > np.sqrt(0.5))
    if not sel.any():
        return fc[int(np.argmax(fc @ axis))]
    w = tibia.area_faces[sel]
    return (fc[sel] * w[:, None]).sum(0) / w.sum()


def tip(points: np.ndarray, direction: np.ndarray, depth_mm: float = 1.5) -> np.ndarray:
    """The tip of a bone along ``direction``: its farthest point along it, placed at the centroid
    (across ``direction``) of the points within ``depth_mm`` of that extreme."""
    t = points @ direction
    near = points[t > t.max() - depth_mm]
    c = near.mean(0)
    return c + (float(t.max()) - float(c @ direction)) * direction


def tibia_medial(tibia: trimesh.Trimesh, fibula: trimesh.Trimesh | None, axis: np.ndarray, side: str) -> np.ndarray:
    """Unit medial direction of the proximal tibia: the major axis of its proximal part seen along
    ``axis``, signed away from the fibula (or, without a fibula, towards the body midline)."""
    v = np.asarray(tibia.vertices, dtype=np.float64)
    lo, hi = extent(v, axis)
    region = v[v @ axis > hi - bones.PLATEAU_FRACTION * (hi - lo)]
    q = region - region.mean(0)
    q = q - np.outer(q @ axis, axis)
    _, _, vt = np.linalg.svd(q, full_matrices=False)
    if fibula is not None:
        ref = perpendicular(v.mean(0) - np.asarray(fibula.vertices).mean(0), axis)
    else:
        ref = np.array([-1.0 if side == "right" else 1.0, 0.0, 0.0])
    return vt[0] if vt[0] @ ref > 0 else -vt[0]


def medial_malleolus_tip(tibia: np.ndarray, fibula: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Tip of the medial malleolus: the :func:`tip`, along the distal direction, of the medial
    :data:`MEDIAL_MALLEOLUS_FRACTION` of the distal tenth of the tibia (medial: from the fibula's
    distal tenth towards the tibia's)."""
    lo, hi = extent(tibia, axis)
    level = lo + 0.1 * (hi - lo)
    dist, fdist = tibia[tibia @ axis < level], fibula[fibula @ axis < level]
    if len(fdist) == 0:
        fdist = fibula
    m = unit(perpendicular(dist.mean(0) - fdist.mean(0), axis))
    s = dist @ m
    return tip(dist[s > s.max() - MEDIAL_MALLEOLUS_FRACTION * (s.max() - s.min())], -axis)


def leg_landmarks(femur: trimesh.Trimesh | None, tibia: trimesh.Trimesh | None, fibula: trimesh.Trimesh | None,
                  side: str) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """All landmarks of one leg that the bones present allow, and extra values (head radius)."""
    out: dict[str, np.ndarray] = {}
    extra: dict[str, float] = {}
    if femur is not None:
        head, radius = femoral_head(femur)
        med, lat = distal_condyles(femur, head)
        out.update(bones.femur_landmarks(femur, head, radius, med, lat, side))
        extra["femoral_head_radius_mm"] = radius
    if fibula is not None:
        out.update(bones.fibula_landmarks(fibula))
    if tibia is not None and fibula is not None:
        tv = np.asarray(tibia.vertices, dtype=np.float64)
        fv = np.asarray(fibula.vertices, dtype=np.float64)
        _, axis = principal_axis(tv)
        for _ in range(2):  # the tibial mechanical axis depends on the landmarks it helps find
            plateau = plateau_centre(tibia, axis)
            mm = medial_malleolus_tip(tv, fv, axis)
            lm = tip(fv, -axis)
            axis = unit(plateau - 0.5 * (mm + lm))
        medial = tibia_medial(tibia, fibula, axis, side)
        out.update(bones.tibia_landmarks(tibia, fibula, plateau, mm, lm, medial, side))
    return out, extra
