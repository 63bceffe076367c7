"""Bone interiors on the simulation grid: cortex, red/yellow marrow, growth plates, cartilage.

Each bone mesh is voxelized on the fine grid inside its bounding box (plus a margin for
cartilage); Euclidean distance transforms (mm) give the depth below the surface (cortex) and
the distance outside it (articular cartilage). A longitudinal coordinate ``u`` (0 distal,
1 proximal) places the growth plates and the red-to-yellow marrow conversion, which
advances with age from the shaft's middle outwards; epiphyses hold yellow marrow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from limbseg.synth import anatomy as A
from limbseg.synth.pose import Skeleton
from limbseg.synth.voxel import Grid, index_box, voxelize_crop

# growth plates: (bone, u of the plate) for the long bones (femoral head handled apart)
PHYSES = {"femur": (0.075,), "tibia": (0.93, 0.045), "fibula": (0.955, 0.04)}


@dataclass
class BoneVoxels:
    """One bone on the fine grid: ``box`` (slices), ``inside`` (bool), ``depth`` and ``outside``
    (float32 mm to the surface from inside / outside), and the axis (``distal`` point, unit
    ``axis``, ``length`` mm) that defines u. ``spec``: None for a labelled bone, else the
    unlabelled bone's :class:`limbseg.synth.distractors.Piece` (how to paint it)."""

    name: str
    box: tuple[slice, ...]
    inside: np.ndarray
    depth: np.ndarray
    outside: np.ndarray
    distal: np.ndarray
    axis: np.ndarray
    length: float
    spec: Any = None


def _bone_axis(sk: Skeleton, name: str) -> tuple[np.ndarray, np.ndarray, float]:
    bone, side = name.split("_")
    v = sk.meshes[name].vertices
    lm = sk.landmarks[side]
    if bone == "femur":
        lo, hi = lm["knee"] + [0, 0, 0.5 * (v[:, 2].min() - lm["knee"][2])], lm["hip"]
        lo = np.array([lo[0], lo[1], v[:, 2].min()])
        hi = np.array([hi[0], hi[1], v[:, 2].max()])
    else:
        lo = v[v[:, 2] < v[:, 2].min() + 5].mean(0)
        hi = v[v[:, 2] > v[:, 2].max() - 5].mean(0)
        lo[2], hi[2] = v[:, 2].min(), v[:, 2].max()
    d = hi - lo
    return lo, d / np.linalg.norm(d), float(np.linalg.norm(d))


def voxelize_bones(sk: Skeleton, grid: Grid, margin_mm: float = 5.0) -> list[BoneVoxels]:
    """Voxelize every bone on ``grid`` with distance maps in its (padded) bounding box."""
    out = []
    sp = grid.spacing
    pad = np.ceil(margin_mm / sp).astype(int)
    for name, mesh in sk.meshes.items():
        vij = grid.to_index(mesh.vertices)
        res = voxelize_crop(vij, np.asarray(mesh.faces), grid.shape)
        if res is None:
            continue
        mask, box = res
        big = index_box(vij, grid.shape, margin=int(pad.max()))
        assert big is not None
        inside = np.zeros(tuple(s.stop - s.start for s in big), bool)
        inside[tuple(slice(b.start - g.start, b.stop - g.start) for b, g in zip(box, big, strict=True))] = mask
        depth = ndimage.distance_transform_edt(np.pad(inside, 1), sampling=sp)[1:-1, 1:-1, 1:-1]
        outside = ndimage.distance_transform_edt(~inside, sampling=sp)
        lo, axis, length = _bone_axis(sk, name)
        out.append(BoneVoxels(name, big, inside, depth.astype(np.float32), outside.astype(np.float32),
                              lo, axis, length))
    return out


def _marrow(bv: BoneVoxels, u: np.ndarray, age: float, p: np.ndarray, sk: Skeleton) -> np.ndarray:
    bone, side = bv.name.split("_")
    if bone == "pelvis":
        return np.full(u.shape, A.RED_MARROW, np.uint8)
    yellow_half = 0.5 * np.clip((age - 4.0) / 12.0, 0.05, 0.9)
    plates = PHYSES[bone]
    epiphysis = (u > max(plates)) if bone == "femur" else (u > max(plates)) | (u < min(plates))
    if bone == "femur":
        epiphysis = (u < plates[0]) | (np.linalg.norm(p - sk.landmarks[side]["hip"], axis=1)
                                       < 0.9 * float(sk.landmarks[side]["head_radius"]))
    yellow = epiphysis | (np.abs(u - 0.5) < yellow_half)
    return np.where(yellow, A.YELLOW_MARROW, A.RED_MARROW).astype(np.uint8)


def box_overlap(a: tuple[slice, ...], b: tuple[slice, ...]) -> tuple[tuple[slice, ...], tuple[slice, ...]] | None:
    """Where two index boxes of one grid overlap, as slices into each box's own array; None if they do not."""
    inter = [slice(max(x.start, y.start), min(x.stop, y.stop)) for x, y in zip(a, b, strict=True)]
    if any(s.stop <= s.start for s in inter):
        return None
    return (tuple(slice(s.start - x.start, s.stop - x.start) for s, x in zip(inter, a, strict=True)),
            tuple(slice(s.start - y.start, s.stop - y.start) for s, y in zip(inter, b, strict=True)))


def paint_bones(tissue: np.ndarray, box: tuple[slice, ...], xyz: tuple[np.ndarray, ...],
                bones: list[BoneVoxels], sk: Skeleton) -> None:
    """Overwrite ``tissue`` (the fine-grid crop ``box``; xyz its RAS coordinates) with bone tissues,
    in list order (a later bone is painted over an earlier one)."""
    age = sk.age
    plate_mm = 1.2 + 0.18 * max(16.0 - age, 0.0)
    cart_mm = 1.5 + 0.15 * max(16.0 - age, 0.0)
    for bv in bones:
        overlap = box_overlap(box, bv.box)
        if overlap is None:
            continue
        tb, bb = overlap
        inside, depth, outside = bv.inside[bb], bv.depth[bb], bv.outside[bb]
        reach = cart_mm if bv.spec is None else cart_mm * bv.spec.cartilage
        near = inside | (outside < reach)
        if not near.any():
            continue
        t = tissue[tb]
        p = np.stack([c[tb][near] for c in xyz], axis=1)
        u = (p - bv.distal) @ bv.axis / bv.length
        paint = _bone_tissue if bv.spec is None else _distractor_tissue
        t[near] = paint(bv, p, u, inside[near], depth[near], outside[near], t[near], sk, plate_mm, cart_mm)


def _bone_tissue(bv: BoneVoxels, p: np.ndarray, u: np.ndarray, inside: np.ndarray, depth: np.ndarray,
                 outside: np.ndarray, current: np.ndarray, sk: Skeleton, plate_mm: float,
                 cart_mm: float) -> np.ndarray:
    bone, side = bv.name.split("_")
    lm = sk.landmarks[side]
    shaft = (u > 0.2) & (u < 0.8)
    cortex_mm = np.where(shaft, 2.6, 1.1) * (bv.length / 400.0) ** 0.5 if bone != "pelvis" else 1.1
    out = np.where(depth < cortex_mm, A.CORTEX, _marrow(bv, u, sk.age, p, sk)).astype(np.uint8)
    if sk.age < 15.5 and bone in PHYSES:
        for up in PHYSES[bone]:
            out[(np.abs(u - up) * bv.length < plate_mm / 2) & (depth > 0.6)] = A.PHYSIS
        if bone == "femur":
            r = float(lm["head_radius"])
            c = lm["hip"] - 0.35 * r * lm["neck_dir"]
            plane = np.abs((p - c) @ lm["neck_dir"]) < plate_mm / 2
            out[plane & (np.linalg.norm(p - lm["hip"], axis=1) < 1.3 * r) & (depth > 0.6)] = A.PHYSIS
    joint = np.zeros(len(p), bool)
    r = float(lm["head_radius"])
    if bone in ("femur", "pelvis") and not (bone == "pelvis" and side not in bv.name):
        joint |= np.linalg.norm(p - lm["hip"], axis=1) < r + cart_mm + 1.5
    if bone == "femur":
        joint |= u < 0.08
    if bone == "tibia":
        joint |= (u > 0.95) | (u < 0.02)
    soft = (current != A.AIR) & (current != A.CORTEX) & (current < A.RED_MARROW)
    cart = ~inside & joint & (outside < cart_mm) & soft
    return np.where(inside, out, np.where(cart, A.CARTILAGE, current)).astype(np.uint8)


def _distractor_tissue(bv: BoneVoxels, p: np.ndarray, u: np.ndarray, inside: np.ndarray, depth: np.ndarray,
                       outside: np.ndarray, current: np.ndarray, sk: Skeleton, plate_mm: float,
                       cart_mm: float) -> np.ndarray:
    """Tissue of an unlabelled bone (a distractor piece): cortex, marrow, growth plates, cartilage."""
    spec = bv.spec
    if spec.marrow == "solid":
        out = np.full(len(p), spec.tissue, np.uint8)
    else:
        if spec.marrow == "long":
            yellow = np.abs(u - 0.5) < 0.5 * np.clip((sk.age - 4.0) / 12.0, 0.05, 0.9)
            for up in spec.physes:  # epiphyses beyond the growth plates hold yellow marrow
                yellow |= (u < up) if up < 0.5 else (u > up)
            marrow = np.where(yellow, A.YELLOW_MARROW, A.RED_MARROW)
        else:
            marrow = np.full(len(p), A.RED_MARROW if spec.marrow == "red" else A.YELLOW_MARROW)
        out = np.where(depth < spec.cortex_mm, A.CORTEX, marrow).astype(np.uint8)
        if spec.growing[0] <= sk.age < spec.growing[1]:
            for up in spec.physes:
                out[(np.abs(u - up) * bv.length < plate_mm / 2) & (depth > 0.6)] = spec.physis_tissue
    soft = (current != A.AIR) & (current != A.CORTEX) & (current < A.RED_MARROW)
    cart = ~inside & soft & (outside < cart_mm * spec.cartilage)
    if spec.cartilage_dir is not None:
        cart &= (p - spec.centre) @ spec.cartilage_dir > 0
    return np.where(inside, out, np.where(cart, A.CARTILAGE, current)).astype(np.uint8)
