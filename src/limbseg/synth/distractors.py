"""Unlabelled bones of the virtual cohort ("distractors"): patellae, sacrum and the lowest lumbar
vertebrae, tali and calcanei, and (in half of the subjects) the forearms and hands resting beside
the hips.

Real scans contain bones that limbseg does not label; a model that never saw them calls the patella
femur and the sacrum pelvis. Each distractor is simulated as real tissue (cortex, marrow, growth
cartilage, painted by :func:`limbseg.synth.bones.paint_bones` like the labelled bones), but it is not
one of the skeleton's meshes, so it is background in the label map and absent from the truth meshes
and measurements. Shapes are analytic (ellipsoids, rods, elliptic cylinders and a lofted sacrum),
sized from the child's femur length and placed from the labelled bones' meshes. On the simulation
grid every distractor voxel closer than ``GAP_MM`` to a labelled bone is removed (the labelled bone
wins). Soft tissue that must cover them (the front of the knee, the heel, the arms) is added as
extra body cross-sections (:func:`limbseg.synth.anatomy.with_parts`).

The parameters come from their own random stream (:func:`distractor_rng`), so a subject's skeleton,
body, contrast and scan grid (and so its labels) are the same with and without distractors.

Sizes (mm; L = femur length, 270 mm at 5 y to about 480 mm at 16 y):

=================  ===========================================================================
patella            height 0.092 L (25-45), width ~height (25-45), thickness 0.42 height (10-20);
                   2.5-4 mm in front of the trochlea, 0.08-0.10 L above the condyles; under 10 y
                   the bony nucleus is smaller than the patella and the rest is cartilage
sacrum             S1 endplate 0.16-0.20 x pelvis height below the iliac crests, tip at the hip
                   centres; lateral borders against the ilia (trimmed at the sacroiliac joints);
                   sacral slope 25-38 deg; cartilage between the segments under 16 y
L5, L4             elliptic cylinders: width 0.105 L (30-45), depth 0.72 width, height 0.058 L
                   (18-25), discs 0.02 L (5-10), lordosis ~12 deg per level
talus              0.12 L long, 0.075 L wide, 0.065 L high, under the plafond (1.5-2.5 mm gap)
calcaneus          0.16 L long, 0.062 L wide, 0.095 L high, below and behind the talus, pitch
                   15-25 deg, a calcaneal apophysis at 7-15 y
arm (50 %)         forearm 0.6 L (radius, ulna), hand 0.42 L (carpal bones by age, metacarpals,
                   proximal phalanges), distal humerus above the elbow; the elbow 0.05 L below to
                   0.12 L above the iliac crest; beside the body (gap -3..5 mm), on the table
=================  ===========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from scipy import ndimage

from limbseg.synth import anatomy as A
from limbseg.synth.bones import BoneVoxels, box_overlap
from limbseg.synth.pose import Skeleton
from limbseg.synth.voxel import Grid, index_box

GAP_MM = 1.0  #: distractor voxels closer than this to a labelled bone are removed
ARMS_PROBABILITY = 0.5
KINDS = ("patella", "sacrum", "lumbar", "talus", "calcaneus", "arm")


def distractor_rng(seed: int) -> np.random.Generator:
    """The random stream of a subject's distractors (independent of the subject's main stream)."""
    return np.random.default_rng([int(seed), 20240611, 7])


# ----------------------------------------------------------------------------------------- shapes
class Shape(Protocol):
    def inside(self, p: np.ndarray) -> np.ndarray: ...

    def bounds(self) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True, eq=False)
class Ellipsoid:
    """``sum |q_i / semi_i| ** power <= 1`` with ``q = (p - centre) @ axes`` (axes: 3x3, unit columns);
    ``power`` > 2 gives a rounded block."""

    centre: np.ndarray
    axes: np.ndarray
    semi: np.ndarray
    power: float = 2.0

    def inside(self, p: np.ndarray) -> np.ndarray:
        q = (p - self.centre) @ self.axes
        return (np.abs(q / self.semi) ** self.power).sum(-1) <= 1.0

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        ext = np.abs(self.axes) @ self.semi
        return self.centre - ext, self.centre + ext


@dataclass(frozen=True, eq=False)
class Rod:
    """A rod from ``p0`` to ``p1`` whose radius goes linearly from ``r0`` to ``r1``; rounded ends."""

    p0: np.ndarray
    p1: np.ndarray
    r0: float
    r1: float

    def inside(self, p: np.ndarray) -> np.ndarray:
        d = self.p1 - self.p0
        t = np.clip(((p - self.p0) @ d) / float(d @ d), 0.0, 1.0)
        r = self.r0 + (self.r1 - self.r0) * t
        return (((p - self.p0) - t[..., None] * d) ** 2).sum(-1) <= r * r

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        r = max(self.r0, self.r1)
        return np.minimum(self.p0, self.p1) - r, np.maximum(self.p0, self.p1) + r


@dataclass(frozen=True, eq=False)
class Cylinder:
    """Elliptic cylinder: ``(q0/a)^2 + (q1/b)^2 <= 1`` and ``|q2| <= h`` (``semi = (a, b, h)``)."""

    centre: np.ndarray
    axes: np.ndarray
    semi: np.ndarray

    def inside(self, p: np.ndarray) -> np.ndarray:
        q = (p - self.centre) @ self.axes
        a, b, h = self.semi
        return ((q[..., 0] / a) ** 2 + (q[..., 1] / b) ** 2 <= 1.0) & (np.abs(q[..., 2]) <= h)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        ext = np.abs(self.axes) @ self.semi
        return self.centre - ext, self.centre + ext


@dataclass(frozen=True, eq=False)
class Loft:
    """Axial cross-sections tabulated along z (the sacrum): at level z the section spans
    ``cx - wl .. cx + wr`` in x and, at ``xn = (x - cx) / w``, ``yc - d (1 - 0.35 xn^2) .. yc + d (1 - 0.3 xn^2)``
    in y (a plate, thicker in the middle); cut above by the plane through ``top`` with normal ``normal``."""

    z: np.ndarray
    cx: float
    yc: np.ndarray
    d: np.ndarray
    wl: np.ndarray
    wr: np.ndarray
    top: np.ndarray
    normal: np.ndarray

    def inside(self, p: np.ndarray) -> np.ndarray:
        x, y, z = p[..., 0], p[..., 1], p[..., 2]
        yc, d = np.interp(z, self.z, self.yc), np.interp(z, self.z, self.d)
        w = np.where(x >= self.cx, np.interp(z, self.z, self.wr), np.interp(z, self.z, self.wl))
        xn = (x - self.cx) / np.maximum(w, 1e-3)
        x2 = xn * xn
        ok = (z >= self.z[0]) & (z <= self.z[-1]) & (x2 <= 1.0)
        ok &= (y >= yc - d * (1.0 - 0.35 * x2)) & (y <= yc + d * (1.0 - 0.3 * x2))
        return ok & ((p - self.top) @ self.normal <= 0.0)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lo = np.array([self.cx - self.wl.max(), (self.yc - self.d).min(), self.z[0]])
        hi = np.array([self.cx + self.wr.max(), (self.yc + self.d).max(), self.z[-1]])
        return lo, hi


# ----------------------------------------------------------------------------------- distractors
@dataclass(eq=False)
class Piece:
    """One bone (or disc) of a distractor and how it is painted.

    ``marrow``: ``yellow``, ``red``, ``long`` (a long bone: red shaft turning yellow from its middle with
    age, yellow epiphyses beyond the growth plates) or ``solid`` (all ``tissue``: discs, unossified
    cartilage). ``cortex_mm``: cortical shell. ``physes``: u of growth plates (``physis_tissue``) painted
    at ages within ``growing``. ``cartilage``: articular cartilage thickness as a multiple of the
    age-dependent thickness (0: none), on the side facing ``cartilage_dir`` (None: all around).
    u runs from ``distal`` along ``axis`` over ``length`` (0-1).
    """

    name: str
    shape: Ellipsoid | Rod | Cylinder | Loft
    distal: np.ndarray
    axis: np.ndarray
    length: float
    marrow: str = "yellow"
    tissue: int = A.CARTILAGE
    cortex_mm: float = 1.0
    physes: tuple[float, ...] = ()
    physis_tissue: int = A.PHYSIS
    growing: tuple[float, float] = (0.0, 15.5)
    cartilage: float = 0.0
    cartilage_dir: np.ndarray | None = None
    centre: np.ndarray = field(default_factory=lambda: np.zeros(3))
    keep_largest: bool = False


@dataclass(eq=False)
class Distractor:
    """A named group of pieces (``patella_left``, ``sacrum``, ``lumbar``, ``arm_right`` ...)."""

    name: str
    kind: str
    pieces: list[Piece]
    centre: np.ndarray
    size_mm: np.ndarray

    def inside(self, p: np.ndarray) -> np.ndarray:
        """Points (..., 3) RAS inside any bony piece (before the labelled bones are cut out)."""
        out = np.zeros(p.shape[:-1], bool)
        for piece in self.pieces:
            if piece.marrow != "solid":
                out |= piece.shape.inside(p)
        return out


@dataclass(eq=False)
class Distractors:
    """A subject's distractors and the extra body cross-sections (``parts``: (Nz, 5) rows each, on the
    body's z levels) that hold their soft tissue."""

    items: list[Distractor]
    parts: list[np.ndarray]
    arms: bool

    def names(self) -> list[str]:
        return [d.name for d in self.items]


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def _frame(lat: np.ndarray, fwd: np.ndarray, up: np.ndarray) -> np.ndarray:
    return np.stack([lat, fwd, up], axis=1)


def _ellipsoid_piece(name: str, centre: np.ndarray, axes: np.ndarray, semi: np.ndarray, long_axis: int = 2,
                     power: float = 2.0, **kw: object) -> Piece:
    ax = axes[:, long_axis]
    return Piece(name, Ellipsoid(centre, axes, np.asarray(semi, float), power), centre - ax * semi[long_axis], ax,
                 2.0 * float(semi[long_axis]), centre=centre, **kw)  # type: ignore[arg-type]


def _rod_piece(name: str, p0: np.ndarray, p1: np.ndarray, r0: float, r1: float, **kw: object) -> Piece:
    """A rod from its distal end ``p0`` to ``p1``."""
    d = p1 - p0
    return Piece(name, Rod(p0, p1, float(r0), float(r1)), p0, _unit(d), float(np.linalg.norm(d)),
                 centre=0.5 * (p0 + p1), **kw)  # type: ignore[arg-type]


def _levels(body: A.Body) -> np.ndarray:
    return body.z0 + A.DZ * np.arange(body.parts.shape[1])


def _cover_rows(shapes: list[Shape], levels: np.ndarray, margin_mm: float, fat_mm: float, step: float = 1.5) -> np.ndarray:
    """Body rows (cx, cy, a, b, fat) of an elliptic cross-section around ``shapes`` plus ``margin_mm``
    at every level the shapes reach (soft tissue over a bone that sticks out of the body)."""
    rows = np.zeros((len(levels), 5), np.float32)
    lo = np.min([s.bounds()[0] for s in shapes], axis=0)
    hi = np.max([s.bounds()[1] for s in shapes], axis=0)
    xs, ys = np.arange(lo[0], hi[0] + step, step), np.arange(lo[1], hi[1] + step, step)
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    for n, z in enumerate(levels):
        if not lo[2] - margin_mm <= z <= hi[2] + margin_mm:
            continue
        zz = np.clip(z, lo[2] + 0.5 * step, hi[2] - 0.5 * step)
        p = np.stack([gx, gy, np.full_like(gx, zz)], axis=-1)
        m = np.zeros(gx.shape, bool)
        for s in shapes:
            m |= s.inside(p)
        if not m.any():
            continue
        x, y = gx[m], gy[m]
        # beyond the shapes' ends the cover closes over them (a dome of radius margin)
        over = abs(z - zz) / margin_mm
        shrink = np.sqrt(max(1.0 - over * over, 0.0))
        if shrink <= 0.05:
            continue
        rows[n] = [0.5 * (x.min() + x.max()), 0.5 * (y.min() + y.max()),
                   (0.5 * np.ptp(x) + margin_mm) * shrink, (0.5 * np.ptp(y) + margin_mm) * shrink, fat_mm]
    return rows


# --------------------------------------------------------------------------------------- patella
def _femur_frame(sk: Skeleton, side: str) -> tuple[np.ndarray, float, float, np.ndarray, np.ndarray, np.ndarray]:
    """(vertices, lowest z, length, up, anterior, lateral) of the distal femur."""
    v = np.asarray(sk.meshes[f"femur_{side}"].vertices)
    zmin, length = float(v[:, 2].min()), float(np.ptp(v[:, 2]))

    def slab(f: float) -> np.ndarray:
        return v[np.abs(v[:, 2] - (zmin + f * length)) < 0.02 * length].mean(0)

    up = _unit(slab(0.3) - slab(0.12))
    ant = _unit(np.array([0.0, 1.0, 0.0]) - up[1] * up)
    lat = np.cross(ant, up) if side == "right" else np.cross(up, ant)
    return v, zmin, length, up, ant, lat


def _patella(sk: Skeleton, side: str, rng: np.random.Generator, levels: np.ndarray) -> tuple[Distractor, np.ndarray]:
    v, zmin, length, up, ant, lat = _femur_frame(sk, side)
    h = float(np.clip(0.092 * length * rng.uniform(0.93, 1.07), 25.0, 45.0))
    w = float(np.clip(h * rng.uniform(0.92, 1.08), 25.0, 45.0))
    t = float(np.clip(0.42 * h * rng.uniform(0.9, 1.1), 10.0, 20.0))
    gap = float(rng.uniform(2.5, 4.0))
    height = 0.08 * length * rng.uniform(1.0, 1.25)  # centre above the condyles
    slab = v[np.abs(v[:, 2] - (zmin + height)) < 0.03 * length]
    axes = _frame(lat, ant, up)
    semi = np.array([0.5 * w, 0.5 * t, 0.5 * h])
    c0 = slab.mean(0) + lat * 0.01 * length
    near = v[(np.abs((v - c0) @ up) < semi[2] + gap + 2) & (np.abs((v - c0) @ lat) < semi[0] + gap + 2)]
    front = float(((near - c0) @ ant).max()) if len(near) else 0.0
    # from straddling the femur's front, slide forward until the patella clears the trochlea by the gap
    for s in np.arange(front - 0.5 * semi[1], front + semi[1] + gap + 1.0, 0.5):
        centre = c0 + s * ant
        q = (near - centre) @ axes / (semi + gap)
        if ((q * q).sum(1) > 1.0).all():
            break
    ossified = float(np.clip(0.55 + 0.09 * (sk.age - 5.0), 0.55, 1.0))
    scale = (length / 400.0) ** 0.5
    pieces = []
    if ossified < 1.0:  # the unossified rim of a young child's patella: cartilage
        pieces.append(_ellipsoid_piece(f"patella_{side}_cartilage", centre, axes, semi, marrow="solid"))
    pieces.append(_ellipsoid_piece(f"patella_{side}", centre, axes, semi * ossified, cortex_mm=1.2 * scale,
                                   cartilage=1.0, cartilage_dir=-ant))
    cover = _cover_rows([p.shape for p in pieces], levels, 6.0, 2.5)
    return Distractor(f"patella_{side}", "patella", pieces, centre, np.array([h, w, t])), cover


# --------------------------------------------------------------------------------- ankle and foot
def _tibia_frame(sk: Skeleton, side: str) -> tuple[np.ndarray, np.ndarray]:
    """(plafond centre, leg axis up) at the distal tibia."""
    v = np.asarray(sk.meshes[f"tibia_{side}"].vertices)
    zmin, length = float(v[:, 2].min()), float(np.ptp(v[:, 2]))

    def slab(f: float) -> np.ndarray:
        return v[np.abs(v[:, 2] - (zmin + f * length)) < 0.015 * length].mean(0)

    up = _unit(slab(0.2) - slab(0.08))
    a0 = slab(0.08)
    rel = v - a0
    along = rel @ up
    radial = np.linalg.norm(rel - along[:, None] * up, axis=1)
    sel = (radial < 0.025 * length) & (along < 0)
    plafond = a0 + up * (float(along[sel].min()) if sel.any() else -0.06 * length)
    return plafond, up


def _foot(sk: Skeleton, side: str, rng: np.random.Generator, levels: np.ndarray,
          femur_length: float) -> tuple[Distractor, Distractor, np.ndarray]:
    L = femur_length
    plafond, up = _tibia_frame(sk, side)
    ant = _unit(np.array([0.0, 1.0, 0.0]) - up[1] * up)
    lat = np.cross(ant, up) if side == "right" else np.cross(up, ant)
    phi = np.deg2rad(rng.uniform(5.0, 30.0))  # plantar flexion: the foot points down the table
    fwd = np.cos(phi) * ant - np.sin(phi) * up
    upf = np.cos(phi) * up + np.sin(phi) * ant
    k = rng.uniform(0.94, 1.06)
    lt, wt, ht = 0.12 * L * k, 0.075 * L * k, 0.065 * L * k
    gap = 1.5 + 0.07 * max(16.0 - sk.age, 0.0)
    t_centre = plafond - upf * (gap + 0.5 * ht) + fwd * 0.12 * lt
    t_axes = _frame(lat, fwd, upf)
    scale = (L / 400.0) ** 0.5
    talus = _ellipsoid_piece(f"talus_{side}", t_centre, t_axes, np.array([0.5 * wt, 0.5 * lt, 0.5 * ht]),
                             long_axis=1, power=2.6, cortex_mm=1.1 * scale, cartilage=1.0, cartilage_dir=upf)
    lc, wc, hc = 0.16 * L * k, 0.062 * L * k, 0.095 * L * k
    pitch = np.deg2rad(rng.uniform(15.0, 25.0))
    fc = np.cos(pitch) * fwd + np.sin(pitch) * upf  # the heel end lies lower than the front
    uc = np.cos(pitch) * upf - np.sin(pitch) * fwd
    c_centre = t_centre - upf * (0.5 * ht + gap + 0.42 * hc) - fwd * 0.22 * lc
    calc = _ellipsoid_piece(f"calcaneus_{side}", c_centre, _frame(lat, fc, uc),
                            np.array([0.5 * wc, 0.5 * lc, 0.5 * hc]), long_axis=1, power=2.4,
                            cortex_mm=1.1 * scale, physes=(0.12,), growing=(7.0, 15.0))
    heel = _cover_rows([talus.shape, calc.shape], levels, 8.0, 6.0)
    return (Distractor(f"talus_{side}", "talus", [talus], t_centre, np.array([lt, wt, ht])),
            Distractor(f"calcaneus_{side}", "calcaneus", [calc], c_centre, np.array([lc, wc, hc])), heel)


# ------------------------------------------------------------------------------ sacrum and spine
def _spine(sk: Skeleton, rng: np.random.Generator, femur_length: float) -> tuple[Distractor, Distractor]:
    L = femur_length
    pel = {s: np.asarray(sk.meshes[f"pelvis_{s}"].vertices) for s in ("left", "right")}
    allp = np.concatenate(list(pel.values()))
    crest, H = float(allp[:, 2].max()), float(np.ptp(allp[:, 2]))
    cx = float(0.5 * (pel["left"][:, 0].mean() + pel["right"][:, 0].mean()))
    hip_z = 0.5 * float(sk.landmarks["left"]["hip"][2] + sk.landmarks["right"]["hip"][2])
    z_top = crest - H * rng.uniform(0.16, 0.20)
    z_bot = hip_z - 0.03 * H
    hs = z_top - z_bot
    theta = np.deg2rad(rng.uniform(25.0, 38.0))  # sacral slope
    si = allp[(allp[:, 2] > z_bot + 0.4 * hs) & (allp[:, 2] < z_top)]
    y_post = float(si[:, 1].min()) + 0.04 * H  # the back of the sacrum, just in front of the ilia's ends
    d0 = 0.11 * H * rng.uniform(0.93, 1.07)
    z = np.arange(z_bot, z_top + 0.12 * H, 2.0)
    s = np.clip((z_top - z) / hs, 0.0, 1.0)
    kappa = np.tan(theta) + 0.3
    d = d0 * (1.0 - 0.65 * s)
    yc = y_post + d0 - hs * (np.tan(theta) * s - 0.5 * kappa * s * s)
    yc = np.where(z > z_top, y_post + d0 + (z - z_top) * np.tan(theta), yc)
    w_profile = 0.26 * H * (1.0 - 0.8 * s * s)
    widths = {}
    for side, sign in (("left", -1.0), ("right", 1.0)):
        v = pel[side]
        w = w_profile.copy()
        for n, zl in enumerate(z):
            sel = (np.abs(v[:, 2] - zl) < 2.5) & (np.abs(v[:, 1] - yc[n]) < d[n])
            if sel.any():  # reach a few mm into the ilium: the sacroiliac joint is cut out of it below
                w[n] = min(float(np.min(sign * (v[sel, 0] - cx))) + 5.0, 0.32 * H)
        widths[side] = np.maximum(ndimage.uniform_filter1d(w, 3), 4.0)
    normal = np.array([0.0, np.sin(theta), np.cos(theta)])
    top = np.array([cx, y_post + d0, z_top])
    axis = _unit(top - np.array([cx, yc[0], z_bot]))
    scale = (L / 400.0) ** 0.5
    sacrum = Piece("sacrum", Loft(z, cx, yc, d, widths["left"], widths["right"], top, normal),
                   np.array([cx, yc[0], z_bot]), axis, float(np.linalg.norm(top - np.array([cx, yc[0], z_bot]))),
                   marrow="red", cortex_mm=1.0 * scale, physes=(0.70, 0.45, 0.27, 0.12),
                   physis_tissue=A.CARTILAGE, growing=(0.0, 16.0), centre=np.array([cx, float(yc.mean()), z.mean()]),
                   keep_largest=True)
    # L5 and L4 on the S1 endplate, each tilted less (lumbar lordosis), with discs between
    wv = float(np.clip(0.105 * L * rng.uniform(0.93, 1.07), 30.0, 45.0))
    dv, hv = 0.72 * wv, float(np.clip(0.058 * L, 18.0, 25.0))
    disc = float(np.clip(0.02 * L, 5.0, 10.0))
    ant_plane = np.array([0.0, np.cos(theta), -np.sin(theta)])
    base = top + ant_plane * 0.3 * d0  # centre of the S1 endplate (the body is the front of the sacrum)
    n_prev, discs, bodies = normal, [], []
    for name, tilt in (("L5", theta - np.deg2rad(12.0)), ("L4", theta - np.deg2rad(24.0))):
        n_new = np.array([0.0, np.sin(tilt), np.cos(tilt)])
        n_disc = _unit(n_prev + n_new)
        lat = np.array([1.0, 0.0, 0.0])
        disc_axes = _frame(lat, np.cross(n_disc, lat), n_disc)
        discs.append(Piece(f"disc_{name}", Cylinder(base + n_disc * 0.5 * disc, disc_axes,
                                                     np.array([0.5 * wv, 0.5 * dv, 0.5 * disc + 0.5])),
                            base, n_disc, disc, marrow="solid", centre=base + n_disc * 0.5 * disc))
        c = base + n_disc * disc + n_new * 0.5 * hv
        body_axes = _frame(lat, np.cross(n_new, lat), n_new)
        bodies.append(Piece(name, Cylinder(c, body_axes, np.array([0.5 * wv, 0.5 * dv, 0.5 * hv])),
                            c - n_new * 0.5 * hv, n_new, hv, marrow="red", cortex_mm=0.9 * scale, centre=c))
        base, n_prev = c + n_new * 0.5 * hv, n_new
    sac = Distractor("sacrum", "sacrum", [sacrum], sacrum.centre, np.array([2 * widths["left"].max(), 2 * d0, hs]))
    # discs first: where a tilted disc and a bone overlap, the bone is painted over it
    lumbar = Distractor("lumbar", "lumbar", discs + bodies, bodies[0].centre, np.array([wv, dv, hv]))
    return sac, lumbar


# -------------------------------------------------------------------------------------------- arms
def _lateral_extent(body: A.Body, n: int, y0: float, y1: float, sign: float) -> float:
    """How far the body reaches towards ``sign`` x at level n between y0 and y1 (mm, along sign * x)."""
    ext = -np.inf
    for part in body.parts:
        cx, cy, a, b, _ = part[n]
        if a <= 0:
            continue
        for y in np.linspace(y0, y1, 7):
            r = 1.0 - ((y - cy) / b) ** 2
            if r > 0:
                ext = max(ext, sign * cx + a * np.sqrt(r))
    return float(ext)


def _arm(sk: Skeleton, body: A.Body, side: str, rng: np.random.Generator, levels: np.ndarray,
         femur_length: float) -> tuple[Distractor, np.ndarray]:
    L = femur_length
    sign = 1.0 if side == "right" else -1.0
    pel = np.concatenate([sk.meshes[f"pelvis_{s}"].vertices for s in ("left", "right")])
    crest = float(pel[:, 2].max())
    girth = rng.uniform(0.9, 1.15)
    elbow = crest + rng.uniform(-0.05, 0.12) * L
    wrist = elbow - 0.6 * L * rng.uniform(0.95, 1.05)
    tip = wrist - 0.42 * L * rng.uniform(0.95, 1.05)
    hand_w, hand_t = 0.19 * L * girth ** 0.5, 0.065 * L * girth ** 0.5
    pronated = bool(rng.random() < 0.5)  # palm on the table (else thumb up)
    gap = rng.uniform(-3.0, 5.0)
    lift = rng.uniform(0.0, 8.0)
    r_up, r_el, r_wr = 0.095 * L * girth, 0.08 * L * girth, 0.05 * L * girth
    # soft-tissue half axes per level (a along x, b along y)
    arm_r = np.interp(levels, [wrist, elbow, elbow + 0.1 * L], [r_wr, r_el, r_up])
    tt = np.clip((wrist - levels) / (wrist - tip), 0.0, 1.0)
    half_w = 0.5 * hand_w * np.interp(tt, [0.0, 0.35, 0.6, 0.92, 1.0], [0.85, 1.0, 0.85, 0.6, 0.25])
    half_t = 0.5 * hand_t * np.interp(tt, [0.0, 0.35, 1.0], [1.0, 1.0, 0.7])
    blend = np.clip((wrist - levels) / 15.0, 0.0, 1.0)  # forearm to hand over 15 mm
    hx, hy = (half_w, half_t) if pronated else (half_t, half_w)
    on = levels >= tip
    a = np.where(on, (1 - blend) * arm_r + blend * hx, 0.0)
    b = np.where(on, (1 - blend) * 0.92 * arm_r + blend * hy, 0.0)
    # on the table: the arm's back at the body's back (plus a lift)
    present = body.parts[:, :, 2] > 0
    table = float((body.parts[:, :, 1] - body.parts[:, :, 3])[present].min())
    cy = table + lift + b
    # beside the body: each straight segment (upper arm, forearm, hand) as close to the body's side as
    # ``gap`` (+ 4 mm for the outline's wobble) allows; need[n]: the least lateral position of the axis
    need = np.full(len(levels), -np.inf)
    for n in np.flatnonzero(on):
        ext = _lateral_extent(body, int(n), cy[n] - b[n], cy[n] + b[n], sign)
        if np.isfinite(ext):
            need[n] = ext + 4.0 + gap + a[n]
    upper, fore, hand = levels >= elbow, on & (levels < elbow) & (levels >= wrist), on & (levels < wrist)
    x_elbow = float(need[upper].max()) if np.isfinite(need[upper]).any() else float(need.max())

    def inward(x_top: float, z_top: float, sel: np.ndarray, lo: float, hi: float) -> float:
        """The largest inward slope (mm per mm down) of a segment from x_top that keeps clear of the body."""
        drop = z_top - levels[sel]
        ok = np.isfinite(need[sel]) & (drop > 1.0)
        k = float(np.min((x_top - need[sel][ok]) / drop[ok])) if ok.any() else hi
        return float(np.clip(k, lo, hi))

    k_fore = inward(x_elbow, elbow, fore, -0.15, 0.12)
    x_wrist = x_elbow - k_fore * (elbow - wrist)
    k_hand = inward(x_wrist, wrist, hand, k_fore - 0.1, k_fore + 0.35)
    x_fore = x_elbow - k_fore * (elbow - levels)
    lat_x = np.where(levels >= elbow, x_elbow, np.where(levels >= wrist, x_fore, x_wrist - k_hand * (wrist - levels)))
    cx = sign * lat_x
    fat = float(np.median(body.parts[0, :, 4][body.parts[0, :, 2] > 0])) * 0.6
    rows = np.stack([cx, cy, a, b, np.full(len(levels), fat)], axis=1).astype(np.float32)
    rows[~on] = 0.0

    def centre(z: float) -> np.ndarray:
        return np.array([np.interp(z, levels, cx), np.interp(z, levels, cy), z])

    up = np.array([0.0, 0.0, 1.0])
    lat = np.array([sign, 0.0, 0.0])
    across = lat if pronated else np.array([0.0, 1.0, 0.0])  # hand width: radial side lateral / anterior
    thick = np.array([0.0, 1.0, 0.0]) if pronated else lat
    scale = (L / 400.0) ** 0.5
    long_bone = {"marrow": "long", "cortex_mm": 1.6 * scale}
    pieces = [
        _rod_piece(f"humerus_{side}", centre(elbow + 0.02 * L), centre(elbow + 0.5 * L), 0.034 * L, 0.026 * L,
                   **long_bone),
        _rod_piece(f"radius_{side}", centre(wrist + 0.01 * L) + across * 0.022 * L,
                   centre(elbow - 0.015 * L) + across * 0.022 * L, 0.028 * L, 0.016 * L, physes=(0.05,), **long_bone),
        _rod_piece(f"ulna_{side}", centre(wrist + 0.02 * L) - across * 0.022 * L,
                   centre(elbow + 0.01 * L) - across * 0.022 * L, 0.014 * L, 0.024 * L, physes=(0.04,), **long_bone),
    ]
    # carpal bones appear one by one with age (capitate and hamate first, scaphoid last)
    grid_pos = {"capitate": (0, 0.1), "hamate": (0, -0.3), "triquetrum": (1, -0.3), "lunate": (1, -0.05),
                "trapezium": (0, 0.55), "trapezoid": (0, 0.3), "scaphoid": (1, 0.3)}
    n_carpal = int(np.clip(sk.age - 1.0, 2, len(grid_pos)))
    grow = float(np.clip(0.55 + 0.06 * (sk.age - 5.0), 0.55, 1.0))
    axes = np.stack([across, thick, up], axis=1)
    for name, (row, off) in list(grid_pos.items())[:n_carpal]:
        c = centre(wrist - (0.022 + 0.03 * (1 - row)) * L) + across * off * 0.5 * hand_w
        pieces.append(_ellipsoid_piece(f"{name}_{side}", c, axes, np.array([0.02, 0.014, 0.014]) * L * grow,
                                       cortex_mm=0.6 * scale))
    mc_top = wrist - 0.085 * L
    for i, off in enumerate((0.3, 0.1, -0.1, -0.3)):  # index to little finger
        o = across * off * hand_w
        mc_len = 0.13 * L * (1.0 - 0.08 * abs(i - 1))
        p_mc = centre(mc_top) + o
        pieces.append(_rod_piece(f"metacarpal{i + 2}_{side}", p_mc - up * mc_len, p_mc, 0.011 * L, 0.01 * L,
                                 cortex_mm=0.8 * scale, physes=(0.1,), growing=(0.0, 15.0)))
        p_ph = p_mc - up * (mc_len + 0.014 * L)
        pieces.append(_rod_piece(f"phalanx{i + 2}_{side}", p_ph - up * 0.08 * L, p_ph, 0.008 * L, 0.009 * L,
                                 cortex_mm=0.6 * scale, physes=(0.9,), growing=(0.0, 15.0)))
    return Distractor(f"arm_{side}", "arm", pieces, centre(wrist), np.array([elbow - tip, hand_w, hand_t])), rows


# --------------------------------------------------------------------------------------- building
def build(sk: Skeleton, body: A.Body, rng: np.random.Generator, arms: bool | None = None) -> Distractors:
    """A subject's distractors (parameters from ``rng``; ``arms``: None draws them with
    :data:`ARMS_PROBABILITY`)."""
    levels = _levels(body)
    L = float(np.mean([np.ptp(sk.meshes[f"femur_{s}"].vertices[:, 2]) for s in ("left", "right")]))
    draw_arms = bool(rng.random() < ARMS_PROBABILITY)
    arms = draw_arms if arms is None else bool(arms)
    items: list[Distractor] = []
    parts: list[np.ndarray] = []
    for side in ("left", "right"):
        patella, cover = _patella(sk, side, rng, levels)
        talus, calcaneus, heel = _foot(sk, side, rng, levels, L)
        items += [patella, talus, calcaneus]
        parts += [cover, heel]
    sacrum, lumbar = _spine(sk, rng, L)
    items += [lumbar, sacrum]  # painted in this order: the sacrum over the lowest disc
    arm_rng = np.random.default_rng(rng.integers(2**32))  # arms or not, the rest stays the same
    if arms:
        for side in ("left", "right"):
            arm, rows = _arm(sk, body, side, arm_rng, levels, L)
            items.append(arm)
            parts.append(rows)
    return Distractors(items, parts, arms)


def voxelize(ds: Distractors, grid: Grid, labelled: list[BoneVoxels], margin_mm: float = 5.0) -> list[BoneVoxels]:
    """Every piece on ``grid`` (BoneVoxels with the piece as ``spec``), minus the voxels within
    :data:`GAP_MM` of a labelled bone (``labelled``: their BoneVoxels on the same grid)."""
    out = []
    sp = grid.spacing
    pad = int(np.ceil(margin_mm / sp).max())
    for item in ds.items:
        for piece in item.pieces:
            lo, hi = piece.shape.bounds()
            corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
            box = index_box(grid.to_index(corners), grid.shape, margin=pad)
            if box is None:
                continue
            xyz = A.BoxCoords.from_grid(grid.affine, box).full()
            inside = piece.shape.inside(np.stack(xyz, axis=-1))
            for bv in labelled:
                overlap = box_overlap(box, bv.box)
                if overlap is None:
                    continue
                ib, bb = overlap
                inside[ib] &= bv.outside[bb] >= GAP_MM
            if piece.keep_largest and inside.any():
                lab, n = ndimage.label(inside)
                if n > 1:
                    inside = lab == 1 + int(np.argmax(np.bincount(lab.ravel())[1:]))
            if not inside.any():
                continue
            # depth below the surface: the distance to the nearest outside voxel centre less half a voxel
            # (so that a 1 mm cortex shows on a 1 mm grid)
            depth = ndimage.distance_transform_edt(np.pad(inside, 1), sampling=sp)[1:-1, 1:-1, 1:-1]
            depth = np.maximum(depth - 0.5 * float(sp.min()), 0.0)
            outside = ndimage.distance_transform_edt(~inside, sampling=sp)
            out.append(BoneVoxels(piece.name, box, inside, depth.astype(np.float32), outside.astype(np.float32),
                                  piece.distal, piece.axis, piece.length, spec=piece))
    return out


def in_view(ds: Distractors, grid: Grid) -> list[Distractor]:
    """The distractors with at least one scan voxel centre inside a bony piece."""
    out = []
    for item in ds.items:
        for piece in item.pieces:
            if piece.marrow == "solid":
                continue
            lo, hi = piece.shape.bounds()
            corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
            box = index_box(grid.to_index(corners), grid.shape, margin=1)
            if box is None:
                continue
            xyz = A.BoxCoords.from_grid(grid.affine, box).full()
            if piece.shape.inside(np.stack(xyz, axis=-1)).any():
                out.append(item)
                break
    return out


def describe(items: list[Distractor]) -> dict[str, dict[str, object]]:
    """Metadata of the distractors in view: kind, centre and main sizes (mm), their pieces."""
    return {d.name: {"kind": d.kind, "centre_mm": [round(float(c), 1) for c in d.centre],
                     "size_mm": [round(float(s), 1) for s in d.size_mm],
                     "pieces": [p.name for p in d.pieces]} for d in items}
