"""Geometric primitives for morphometrics: pure functions on points and meshes in RAS mm.

Points are float64 arrays (N, 3) in patient millimetres (RAS); directions are unit 3-vectors.
Nothing here depends on the scan grid: every function works in the bone's own axes, so a result
does not change when the scan is rotated or resampled. Both the label-map measurement
(:mod:`limbseg.measure.landmarks`) and the virtual cohort's truth (:mod:`limbseg.synth.truth`)
use these primitives, so that their definitions are literally the same.
"""

from __future__ import annotations

import numpy as np
import trimesh

SUPERIOR = np.array([0.0, 0.0, 1.0])


def unit(v: np.ndarray) -> np.ndarray:
    """``v`` scaled to length 1 (a zero vector is returned unchanged)."""
    v = np.asarray(v, dtype=np.float64)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def perpendicular(v: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """The component of ``v`` perpendicular to the unit ``axis``."""
    return np.asarray(v, dtype=np.float64) - float(np.dot(v, axis)) * axis


def anterior_of(medial: np.ndarray, superior: np.ndarray, side: str) -> np.ndarray:
    """The anterior unit vector of a leg frame from its medial and superior axes.

    The frame is right-handed for one side and left-handed for the other: on the right leg
    medial x superior points anteriorly, on the left leg superior x medial does (in RAS).
    """
    a = np.cross(medial, superior) if side == "right" else np.cross(superior, medial)
    return unit(a)


def signed_angle_deg(reference: np.ndarray, vector: np.ndarray, medial: np.ndarray, anterior: np.ndarray) -> float:
    """Angle (degrees, in (-180, 180]) from ``reference`` to ``vector`` in the plane spanned by the
    unit ``medial`` and ``anterior`` axes, positive when ``vector`` is turned towards anterior."""
    def polar(v: np.ndarray) -> float:
        return float(np.arctan2(np.dot(v, anterior), np.dot(v, medial)))

    d = np.degrees(polar(vector) - polar(reference))
    return float((d + 180.0) % 360.0 - 180.0) if d != 180.0 else 180.0


def angle_deg(u: np.ndarray, v: np.ndarray) -> float:
    """Unsigned 3D angle (degrees) between two vectors."""
    c = float(np.dot(unit(u), unit(v)))
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def sphere_fit(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares sphere (centre (3,), radius mm) through ``points`` (N >= 4, algebraic fit)."""
    p = np.asarray(points, dtype=np.float64)
    a = np.c_[2.0 * p, np.ones(len(p))]
    sol = np.linalg.lstsq(a, (p**2).sum(1), rcond=None)[0]
    c = sol[:3]
    return c, float(np.sqrt(max(sol[3] + c @ c, 0.0)))


def principal_axis(points: np.ndarray, up: np.ndarray = SUPERIOR) -> tuple[np.ndarray, np.ndarray]:
    """(centroid, unit first principal axis) of ``points``, the axis signed to agree with ``up``."""
    p = np.asarray(points, dtype=np.float64)
    c = p.mean(0)
    step = max(1, len(p) // 50_000)
    _, _, vt = np.linalg.svd(p[::step] - c, full_matrices=False)
    axis = vt[0]
    return c, axis if axis @ up >= 0 else -axis


def extent(points: np.ndarray, axis: np.ndarray) -> tuple[float, float]:
    """(min, max) of the projections of ``points`` on the unit ``axis`` (mm)."""
    t = np.asarray(points, dtype=np.float64) @ axis
    return float(t.min()), float(t.max())


def extreme_point(points: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """The point of ``points`` farthest along ``direction``."""
    p = np.asarray(points, dtype=np.float64)
    return p[int(np.argmax(p @ direction))]


def posterior_line(points: np.ndarray, centre: np.ndarray, axis: np.ndarray, medial: np.ndarray,
                   side: str, iterations: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(medial point, lateral point): the posterior bitangent of a two-lobed bone end.

    ``points`` are the surface points of the bone end (condyles). They are split into a medial and
    a lateral half by the plane through ``centre`` perpendicular to ``medial``; in each half the most
    posterior point (perpendicular to ``axis``) is taken, the medial direction is reset to the line
    joining them, and this repeats until the two points stop changing. The fixed point is the line
    that touches both lobes from behind in the projection along ``axis`` (the posterior condylar
    line), whatever the starting ``medial`` direction within a few tens of degrees.
    """
    p = np.asarray(points, dtype=np.float64)
    m = unit(perpendicular(medial, axis))
    pm = pl = p[0]
    for _ in range(iterations):
        a = anterior_of(m, axis, side)
        s = (p - centre) @ m
        med, lat = p[s > 0], p[s <= 0]
        if len(med) == 0 or len(lat) == 0:
            break
        new_pm, new_pl = med[int(np.argmin(med @ a))], lat[int(np.argmin(lat @ a))]
        if np.array_equal(new_pm, pm) and np.array_equal(new_pl, pl):
            break
        pm, pl = new_pm, new_pl
        m_new = unit(perpendicular(pm - pl, axis))
        if float(m_new @ m) < 0.5:  # a degenerate jump: keep the previous direction
            break
        m = m_new
    return pm, pl


def hull_posterior_point(points: np.ndarray, medial: np.ndarray, anterior: np.ndarray, s0: float) -> np.ndarray | None:
    """The point of the posterior outline of ``points`` seen along ``medial x anterior``, at medial
    coordinate ``s0``: where the line ``s = s0`` leaves the 2D convex hull of the projected points on its
    posterior side. It lies on a hull edge; the 3D point is interpolated between the edge's two points
    (so it lies on the bone's surface, or on the bridge the hull spans across a notch). None when
    ``s0`` is outside the points' medial extent."""
    from scipy.spatial import ConvexHull, QhullError

    p = np.asarray(points, dtype=np.float64)
    q = np.c_[p @ medial, p @ anterior]
    try:
        ring = ConvexHull(q).vertices
    except (QhullError, ValueError):
        return None
    best: tuple[float, np.ndarray] | None = None
    for a, b in zip(ring, np.roll(ring, -1), strict=True):
        sa, sb = q[a, 0], q[b, 0]
        if sa == sb or not min(sa, sb) <= s0 <= max(sa, sb):
            continue
        t = (s0 - sa) / (sb - sa)
        ant = (1 - t) * q[a, 1] + t * q[b, 1]
        if best is None or ant < best[0]:
            best = (float(ant), (1 - t) * p[a] + t * p[b])
    return None if best is None else best[1]


def posterior_secant(points: np.ndarray, centre: np.ndarray, axis: np.ndarray, medial: np.ndarray, side: str,
                     offset: float = 0.25, iterations: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(medial point, lateral point) of a bone end's posterior outline seen along ``axis``, ``offset`` of
    its medial-lateral width medial and lateral of ``centre``.

    The points lie on the convex hull of the projected points (:func:`hull_posterior_point`), so a
    notch between two lobes is bridged as by a bitangent; the medial direction is reset to the line
    joining them until it stops turning (0.01 degrees) or ``iterations`` are done. Unlike the extreme
    points of :func:`posterior_line`, the two points do not slide along a flat or evenly curved
    posterior border when the surface changes by a fraction of a voxel, and they stay half the width
    apart, so the line's direction is well conditioned.
    """
    p = np.asarray(points, dtype=np.float64)
    m = unit(perpendicular(medial, axis))
    pm = pl = None
    for _ in range(iterations):
        a = anterior_of(m, axis, side)
        s = (p - centre) @ m
        half = offset * float(s.max() - s.min())
        c = float(np.asarray(centre, dtype=np.float64) @ m)
        new_pm, new_pl = (hull_posterior_point(p, m, a, c + d) for d in (half, -half))
        if new_pm is None or new_pl is None:
            break
        pm, pl = new_pm, new_pl
        m_new = unit(perpendicular(pm - pl, axis))
        if float(m_new @ m) < 0.5:  # a degenerate jump: keep the previous direction
            break
        done = float(m_new @ m) > np.cos(np.radians(0.01))
        m = m_new
        if done:
            break
    if pm is None or pl is None:
        return posterior_line(p, centre, axis, medial, side)
    return pm, pl


def _loops(mesh: trimesh.Trimesh, origin: np.ndarray, normal: np.ndarray) -> list[np.ndarray]:
    try:
        path = mesh.section(plane_origin=origin, plane_normal=normal)
    except (ValueError, IndexError):
        return []
    if path is None:
        return []
    return [d for d in path.discrete if len(d) >= 4]


def section(mesh: trimesh.Trimesh, origin: np.ndarray, normal: np.ndarray,
            near: np.ndarray | None = None) -> tuple[float, np.ndarray] | None:
    """(area mm², centroid) of one closed cross-section of ``mesh`` by a plane.

    The plane passes through ``origin`` with unit ``normal``. Of the closed loops it cuts, the one
    whose centroid lies nearest ``near`` (default: ``origin``) is returned; None when the plane misses.
    """
    n = unit(normal)
    e1 = unit(np.cross(n, [1.0, 0.0, 0.0] if abs(n[0]) < 0.9 else [0.0, 1.0, 0.0]))
    e2 = np.cross(n, e1)
    target = origin if near is None else near
    best: tuple[float, float, np.ndarray] | None = None
    for loop in _loops(mesh, origin, n):
        q = (loop - origin) @ np.c_[e1, e2]
        x, y = q[:, 0], q[:, 1]
        x1, y1 = np.roll(x, -1), np.roll(y, -1)
        cross = x * y1 - x1 * y
        area = 0.5 * cross.sum()
        if abs(area) < 1e-6:
            continue
        cx = ((x + x1) * cross).sum() / (6.0 * area)
        cy = ((y + y1) * cross).sum() / (6.0 * area)
        centroid = origin + cx * e1 + cy * e2
        d = float(np.linalg.norm(centroid - target))
        if best is None or d < best[0]:
            best = (d, abs(float(area)), centroid)
    return None if best is None else (best[1], best[2])


def fit_line(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(point, unit direction) of the least-squares line through ``points`` (N >= 2)."""
    p = np.asarray(points, dtype=np.float64)
    c = p.mean(0)
    _, _, vt = np.linalg.svd(p - c, full_matrices=False)
    return c, vt[0]
