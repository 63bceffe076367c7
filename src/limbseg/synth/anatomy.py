"""Soft tissue around the skeleton: body outline, skin, fat, muscle, vessels, viscera.

The body is a union of elliptic cross-sections tabulated every ``DZ`` mm along RAS z (one
ellipse per leg, one for the trunk/pelvis), built from the skeleton's landmarks; girth and
fat thickness vary between subjects. :func:`soft_tissue` labels voxel centres (RAS mm,
float32 arrays of any shape) with the tissue classes below; bones are added by
:mod:`limbseg.synth.bones`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from limbseg.synth.pose import Skeleton

AIR, SKIN, FAT, MUSCLE, CORTEX, RED_MARROW, YELLOW_MARROW, PHYSIS, CARTILAGE, VESSEL, VISCERA = range(11)
TISSUES = ("air", "skin", "fat", "muscle", "cortex", "red_marrow", "yellow_marrow", "physis",
           "cartilage", "vessel", "viscera")
DZ = 2.0  # mm between tabulated cross-sections


@dataclass
class SmoothField:
    """A zero-mean, unit-variance Gaussian random field on a coarse RAS-aligned grid."""

    values: np.ndarray  # (X, Y, Z) float32
    origin: np.ndarray  # RAS mm of values[0, 0, 0]
    step: np.ndarray  # mm between samples along x, y, z

    @classmethod
    def make(cls, rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, step: tuple[float, float, float],
             sigma_mm: tuple[float, float, float]) -> SmoothField:
        st = np.asarray(step, float)
        shape = np.maximum(np.ceil((hi - lo) / st).astype(int) + 3, 2)
        noise = ndimage.gaussian_filter(rng.standard_normal(tuple(shape)).astype(np.float32),
                                        np.asarray(sigma_mm) / st, mode="wrap")
        noise /= max(float(noise.std()), 1e-6)
        return cls(noise, lo - st, st)

    def __call__(self, c: BoxCoords) -> np.ndarray:
        """Trilinear samples on a box (float32, ``c.shape``), separably: three small matmuls."""
        pos, lo = [], []
        for axis, (v, o, s) in enumerate(zip((c.x, c.y, c.z), self.origin, self.step, strict=True)):
            p = np.clip((v.ravel().astype(np.float64) - o) / s, 0, self.values.shape[axis] - 1.001)
            lo.append(int(np.floor(p.min())))
            pos.append(p - lo[-1])
        hi = [lo[a] + int(np.floor(pos[a].max())) + 2 for a in range(3)]
        out = self.values[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        for axis in np.argsort([len(p) / out.shape[a] for a, p in enumerate(pos)]):
            p = pos[axis]
            i0 = np.floor(p).astype(int)
            w = np.zeros((len(p), out.shape[axis]), np.float32)
            w[np.arange(len(p)), i0] = 1 - (p - i0)
            w[np.arange(len(p)), i0 + 1] = p - i0
            out = np.moveaxis(np.tensordot(w, out, axes=([1], [axis])), 0, axis)
        return np.ascontiguousarray(np.moveaxis(out, [0, 1, 2], c.perm))


@dataclass
class BoxCoords:
    """RAS coordinates (mm, float32) of a box of voxel centres on an axis-aligned grid, as
    broadcastable arrays: ``x``, ``y``, ``z`` each vary along one box axis, ``perm[c]`` is the
    box axis of RAS coordinate c, ``shape`` the box shape."""

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    perm: tuple[int, int, int]
    shape: tuple[int, int, int]

    @classmethod
    def from_grid(cls, affine: np.ndarray, box: tuple[slice, ...]) -> BoxCoords:
        rot = affine[:3, :3]
        perm = tuple(int(np.argmax(np.abs(rot[c]))) for c in range(3))
        if sorted(perm) != [0, 1, 2]:
            raise ValueError("the grid is not aligned with the RAS axes")
        coords = []
        for c in range(3):
            a = perm[c]
            idx = np.arange(box[a].start, box[a].stop, dtype=np.float64)
            vals = (rot[c, a] * idx + affine[c, 3]).astype(np.float32)
            shape = [1, 1, 1]
            shape[a] = len(idx)
            coords.append(vals.reshape(shape))
        return cls(*coords, perm=perm, shape=tuple(s.stop - s.start for s in box))  # type: ignore[arg-type]

    def full(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return tuple(np.broadcast_to(c, self.shape) for c in (self.x, self.y, self.z))  # type: ignore[return-value]


@dataclass
class Body:
    """Tabulated cross-sections and vessels of one subject (all mm, RAS).

    ``parts``: (P, Nz, 5) float32 rows ``cx, cy, a, b, fat_mm`` per part and level (a = 0: absent);
    level n lies at ``z0 + n * DZ``. ``vessels``: (S, 7) segments ``x0 y0 z0 x1 y1 z1 radius``.
    ``viscera``: (Nz, 4) ``cx, cy, a, b`` inside the pelvis. ``fields``: outline, septa, marbling.
    """

    z0: float
    parts: np.ndarray
    viscera: np.ndarray
    vessels: np.ndarray
    fields: dict[str, SmoothField]
    bbox: tuple[np.ndarray, np.ndarray]


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _leg_table(sk: Skeleton, side: str, z: np.ndarray, girth: float, fat: float) -> np.ndarray:
    """Rows cx, cy, a, b, fat_mm along z for one leg (ankle to groin), zero above the groin."""
    lm = sk.landmarks[side]
    hip, knee, ankle = lm["hip"], lm["knee"], lm["ankle"]
    lat = 1.0 if side == "right" else -1.0  # +x is the patient's right in RAS
    size = (hip[2] - ankle[2]) / 800.0
    # keypoints along the leg: z, radius (mm), b/a, medial shift, posterior shift (fractions of a)
    keys = np.array([
        [ankle[2] - 60, 30, 1.6, 0.0, -0.9],
        [ankle[2] - 20, 30, 1.0, 0.0, -0.2],
        [ankle[2] + 40, 30, 0.8, 0.0, 0.25],
        [ankle[2] + 0.6 * (knee[2] - ankle[2]), 50, 0.85, -0.15, 0.35],
        [knee[2] - 20, 46, 0.85, -0.05, 0.2],
        [knee[2] + 40, 52, 0.9, 0.05, 0.1],
        [knee[2] + 0.55 * (hip[2] - knee[2]), 66, 0.92, 0.15, 0.08],
        [hip[2] - 60, 78, 0.9, 0.35, 0.05],
        [hip[2] + 10, 70, 0.9, 0.5, 0.0],
    ])
    cols = [np.interp(z, keys[:, 0], keys[:, c]) for c in range(1, 5)]
    a = 1.12 * cols[0] * size * girth
    on_calf = z < knee[2]
    t = np.where(on_calf, (z - ankle[2]) / (knee[2] - ankle[2]), (z - knee[2]) / (hip[2] - knee[2]))
    t = np.clip(t, 0, 1)[:, None]
    axis = np.where(on_calf[:, None], ankle + t * (knee - ankle), knee + t * (hip - knee))
    axis[z < ankle[2]] = ankle
    cx = axis[:, 0] - lat * cols[2] * a
    cy = axis[:, 1] - cols[3] * a
    fat_mm = fat * size * np.where(on_calf, 6.0, 10.0)
    out = np.stack([cx, cy, a, a * cols[1], fat_mm], axis=1)
    out[z > hip[2] + 10] = 0.0
    return out


def _trunk_table(sk: Skeleton, z: np.ndarray, girth: float, fat: float) -> tuple[np.ndarray, np.ndarray]:
    pel = np.concatenate([sk.meshes[f"pelvis_{s}"].vertices for s in ("left", "right")])
    lo, hi = pel.min(0), pel.max(0)
    hip_z = 0.5 * (sk.landmarks["left"]["hip"][2] + sk.landmarks["right"]["hip"][2])
    fem_len = np.ptp(sk.meshes["femur_left"].vertices[:, 2])
    w = _smoothstep((z - (hip_z - 0.22 * fem_len)) / (0.22 * fem_len))
    cx = np.full_like(z, 0.5 * (lo[0] + hi[0]))
    cy = np.full_like(z, 0.5 * (lo[1] + hi[1]) - 8.0)
    a = (0.5 * (hi[0] - lo[0]) + 22.0 * girth) * (0.55 + 0.45 * w)
    b = (0.5 * (hi[1] - lo[1]) + 28.0 * girth) * (0.5 + 0.5 * w)
    size = fem_len / 400.0
    trunk = np.stack([cx, cy, a * w ** 0.3, b * w ** 0.3, np.full_like(z, 12.0 * fat * size)], 1)
    trunk[w <= 0.01] = 0.0
    vw = _smoothstep((z - hip_z) / 40.0) * (z < hi[2] + 10)
    viscera = np.stack([cx, cy + 10.0, 0.38 * (hi[0] - lo[0]) * vw, 0.3 * (hi[1] - lo[1]) * vw], 1)
    return trunk, viscera


def _vessels(sk: Skeleton, girth: float) -> np.ndarray:
    """Femoral-popliteal-tibial artery and vein of each leg as straight segments."""
    rows = []
    for side in ("left", "right"):
        lm = sk.landmarks[side]
        hip, knee, ankle = lm["hip"], lm["knee"], lm["ankle"]
        med = -1.0 if side == "right" else 1.0  # medial direction along x
        size = (hip[2] - ankle[2]) / 800.0
        pts = np.array([
            hip + [med * 12 * size, 22 * size, 30],
            hip + [med * 18 * size, 25 * size, -60 * size],
            knee + 0.55 * (hip - knee) + [med * 22 * size, 5 * size, 0],
            knee + 0.2 * (hip - knee) + [med * 8 * size, -25 * size, 0],
            knee + [0, -32 * size, 0],
            knee + 0.7 * (ankle - knee) + [med * 10 * size, -28 * size, 0],
            ankle + [med * 14 * size, -15 * size, 0],
        ])
        for off, rad in ((np.zeros(3), 3.2), (np.array([med * 5.0, -4.0, 0.0]) * size, 4.0)):
            p = pts + off
            for p0, p1 in zip(p[:-1], p[1:], strict=True):
                rows.append([*p0, *p1, rad * size * girth ** 0.3])
    return np.asarray(rows, np.float32)


def build_body(sk: Skeleton, rng: np.random.Generator) -> Body:
    """Sample girth and fat for the skeleton and tabulate the body."""
    verts = np.concatenate([m.vertices for m in sk.meshes.values()])
    z0 = float(verts[:, 2].min() - 120.0)
    z = z0 + DZ * np.arange(int((verts[:, 2].max() + 80.0 - z0) / DZ) + 1)
    girth, fat = float(rng.uniform(0.85, 1.25)), float(rng.uniform(0.5, 1.8))
    legs = [_leg_table(sk, s, z, girth * rng.uniform(0.97, 1.03), fat) for s in ("left", "right")]
    trunk, viscera = _trunk_table(sk, z, girth, fat)
    parts = np.stack([*legs, trunk]).astype(np.float32)
    present = parts[:, :, 2] > 0
    lo = np.array([(parts[..., 0] - 1.2 * parts[..., 2])[present].min(),
                   (parts[..., 1] - 1.2 * parts[..., 3])[present].min(), z[0]])
    hi = np.array([(parts[..., 0] + 1.2 * parts[..., 2])[present].max(),
                   (parts[..., 1] + 1.2 * parts[..., 3])[present].max(), z[-1]])
    fields = {
        "outline": SmoothField.make(rng, lo, hi, (8, 8, 16), (20, 20, 60)),
        "septa": SmoothField.make(rng, lo, hi, (3, 3, 12), (9, 9, 50)),
        "marbling": SmoothField.make(rng, lo, hi, (3, 3, 6), (4, 4, 12)),
        "texture": SmoothField.make(rng, lo, hi, (4, 4, 8), (6, 6, 12)),
    }
    return Body(z0, parts, viscera.astype(np.float32), _vessels(sk, girth), fields, (lo, hi))


def with_parts(body: Body, rows: list[np.ndarray]) -> Body:
    """The body with extra cross-sections (each (Nz, 5) rows on the body's levels, a = 0 where absent):
    soft tissue around unlabelled bones (:mod:`limbseg.synth.distractors`). ``bbox`` stays the body's
    own, so the scan grid and the bias field do not move."""
    if not rows:
        return body
    parts = np.concatenate([body.parts, np.stack(rows).astype(np.float32)])
    return Body(body.z0, parts, body.viscera, body.vessels, body.fields, body.bbox)


def _segment_distance(c: BoxCoords, seg: np.ndarray) -> np.ndarray:
    p0, p1 = seg[:3], seg[3:6]
    d = p1 - p0
    dx, dy, dz = c.x - p0[0], c.y - p0[1], c.z - p0[2]
    t = np.clip((dx * d[0] + dy * d[1] + dz * d[2]) / float(d @ d), 0, 1)
    return (dx - t * d[0]) ** 2 + (dy - t * d[1]) ** 2 + (dz - t * d[2]) ** 2


def soft_tissue(body: Body, c: BoxCoords) -> tuple[np.ndarray, np.ndarray]:
    """Tissue class (uint8, ``c.shape``) of a box of voxel centres, and a texture field (float32)."""
    n = np.clip(np.rint((c.z - body.z0) / DZ).astype(np.int32), 0, body.parts.shape[1] - 1)
    depth = np.full(c.shape, -1e9, np.float32)
    fat_mm = np.zeros(c.shape, np.float32)
    for part in body.parts:
        cx, cy, a, b, f = (part[n, k] for k in range(5))
        present = a > 0
        a, b = np.where(present, a, 1.0), np.where(present, b, 1.0)
        r = np.sqrt(((c.x - cx) / a) ** 2 + ((c.y - cy) / b) ** 2)
        d = np.where(present, (1.0 - r) * np.sqrt(a * b), -1e9)
        better = d > depth
        depth = np.where(better, d, depth)
        fat_mm = np.where(better, f, fat_mm)
    depth += 4.0 * body.fields["outline"](c)
    tissue = np.full(c.shape, MUSCLE, np.uint8)
    texture = body.fields["texture"](c)
    tissue[depth < fat_mm * (1 + 0.25 * texture) + 1.5] = FAT
    tissue[depth < 1.5] = SKIN
    body_mask = depth >= 0
    tissue[~body_mask] = AIR
    septa = (np.abs(body.fields["septa"](c)) < 0.09) | (body.fields["marbling"](c) > 2.1)
    tissue[septa & (tissue == MUSCLE)] = FAT
    vc = body.viscera[n]
    ok = vc[..., 2] > 0
    rv = ((c.x - vc[..., 0]) / np.where(ok, vc[..., 2], 1)) ** 2 + ((c.y - vc[..., 1]) / np.where(ok, vc[..., 3], 1)) ** 2
    tissue[ok & (rv < 1.0) & body_mask] = VISCERA
    zmin, zmax = float(c.z.min()), float(c.z.max())
    for seg in body.vessels:
        if min(seg[2], seg[5]) - seg[6] > zmax or max(seg[2], seg[5]) + seg[6] < zmin:
            continue
        tissue[(_segment_distance(c, seg) < seg[6] ** 2) & body_mask] = VESSEL
    return tissue, texture
