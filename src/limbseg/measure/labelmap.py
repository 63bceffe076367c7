"""From a label map to one closed surface per bone and side, and what is missing or cut.

Sides follow the contract of the label scheme: a bone is never split by a plane. Each bone's
3D connected components (26-connected) are assigned to the side of their centroid against the
body midline (RAS ``+x`` is the patient's right); the largest component of each side is that
side's bone. The surface is the 0.5 level of the mask lightly smoothed (Gaussian, sigma 1 mm but
at most one voxel along each axis), by marching cubes, in RAS mm with outward normals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import trimesh
from scipy import ndimage

from limbseg.volume import LabelMap

LEG_BONES = ("femur", "tibia", "fibula")
SIDES = ("left", "right")
#: A bone smaller than this (cm³) is treated as absent.
MIN_VOLUME_CM3 = 2.0
SMOOTH_MM = 1.0


@dataclass
class LegSurfaces:
    """Per side: ``meshes[side][bone]`` (RAS mm) for the bones that can be measured, ``missing[side][bone]``
    (why a bone cannot be), the ``midline_x`` used (RAS mm) and notes."""

    meshes: dict[str, dict[str, trimesh.Trimesh]]
    missing: dict[str, dict[str, str]]
    midline_x: float
    midline_source: str
    notes: list[str] = field(default_factory=list)


def _components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    return ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))


def _centroids_x(lab: np.ndarray, count: int, affine: np.ndarray, offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sizes = np.bincount(lab.ravel(), minlength=count + 1)[1:]
    idx = np.arange(1, count + 1)
    cents = np.array(ndimage.center_of_mass(lab > 0, lab, idx)).reshape(-1, 3) + offset
    return sizes, cents @ affine[0, :3] + affine[0, 3]


def estimate_midline(labels: LabelMap) -> tuple[float, str]:
    """RAS x (mm) of the body midline: halfway between the two largest femora (or tibiae) when both
    legs are in view, else the pelvis's centroid, else the centre of the field of view."""
    for bone in ("femur", "tibia"):
        if bone not in labels.scheme.names:
            continue
        mask = labels.mask(bone)
        box = ndimage.find_objects(mask.astype(np.uint8))
        if not box or box[0] is None:
            continue
        lab, count = _components(mask[box[0]])
        if count < 2:
            continue
        sizes, xs = _centroids_x(lab, count, labels.affine, np.array([b.start for b in box[0]]))
        order = np.argsort(sizes)[::-1]
        if sizes[order[1]] >= 0.3 * sizes[order[0]]:
            return float(0.5 * (xs[order[0]] + xs[order[1]])), f"between the two {bone} bones"
    if "pelvis" in labels.scheme.names and labels.mask("pelvis").any():
        ijk = np.argwhere(labels.mask("pelvis")).mean(0)
        return float(labels.index_to_ras(ijk)[0, 0]), "pelvis centroid"
    centre = (np.asarray(labels.shape, dtype=float) - 1) / 2
    return float(labels.index_to_ras(centre)[0, 0]), "centre of the field of view"


def _face_name(affine: np.ndarray, axis: int, high: bool) -> str:
    d = affine[:3, axis] * (1 if high else -1)
    c = int(np.argmax(np.abs(d)))
    return [("left", "right"), ("posterior", "anterior"), ("inferior", "superior")][c][int(d[c] > 0)]


def cut_faces(mask: np.ndarray, lo: np.ndarray, shape: tuple[int, ...], affine: np.ndarray) -> list[str]:
    """Anatomical names of the field-of-view faces that a cropped mask (starting at ``lo``) touches."""
    out = []
    for ax in range(3):
        if lo[ax] == 0 and np.take(mask, 0, axis=ax).any():
            out.append(_face_name(affine, ax, False))
        if lo[ax] + mask.shape[ax] == shape[ax] and np.take(mask, -1, axis=ax).any():
            out.append(_face_name(affine, ax, True))
    return out


def surface(mask: np.ndarray, lo: np.ndarray, affine: np.ndarray) -> trimesh.Trimesh:
    """Closed surface (RAS mm, outward normals) of a cropped boolean mask starting at voxel ``lo``."""
    from skimage.measure import marching_cubes

    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    sigma = np.minimum(SMOOTH_MM / spacing, 1.0)
    padded = np.pad(mask.astype(np.float32), 3)
    smooth = ndimage.gaussian_filter(padded, sigma)
    verts, faces, _, _ = marching_cubes(smooth, level=0.5)
    ijk = verts + (np.asarray(lo, dtype=float) - 3)
    mesh = trimesh.Trimesh(ijk @ affine[:3, :3].T + affine[:3, 3], faces, process=True)
    if mesh.volume < 0:
        mesh.invert()
    return mesh


def leg_surfaces(labels: LabelMap, midline_x: float | None = None) -> LegSurfaces:
    """Split the leg bones by side, check them against the field of view and make their surfaces."""
    source = "given"
    if midline_x is None:
        midline_x, source = estimate_midline(labels)
    meshes: dict[str, dict[str, trimesh.Trimesh]] = {s: {} for s in SIDES}
    missing: dict[str, dict[str, str]] = {s: {} for s in SIDES}
    notes: list[str] = []
    voxel_cm3 = labels.voxel_volume_mm3 / 1000.0
    for bone in LEG_BONES:
        mask = labels.mask(bone) if bone in labels.scheme.names else np.zeros(labels.shape, bool)
        box = ndimage.find_objects(mask.astype(np.uint8))
        parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if box and box[0] is not None:
            lo = np.array([b.start for b in box[0]])
            lab, count = _components(mask[box[0]])
            sizes, xs = _centroids_x(lab, count, labels.affine, lo)
            for side in SIDES:
                on = np.flatnonzero((xs > midline_x) == (side == "right"))
                if len(on) == 0:
                    continue
                best = on[int(np.argmax(sizes[on]))]
                if len(on) > 1:
                    notes.append(f"{bone} {side}: kept the largest of {len(on)} parts "
                                 f"({int(sizes[on].sum() - sizes[best])} voxels left out)")
                sub = ndimage.find_objects((lab == best + 1).astype(np.uint8))[0]
                parts[side] = ((lab[sub] == best + 1), lo + np.array([s.start for s in sub]))
        for side in SIDES:
            if side not in parts:
                missing[side][bone] = f"no {bone} on the {side} side"
                continue
            part, plo = parts[side]
            if part.sum() * voxel_cm3 < MIN_VOLUME_CM3:
                missing[side][bone] = f"the {side} {bone} is too small to measure ({part.sum() * voxel_cm3:.1f} cm3)"
                continue
            faces = cut_faces(part, plo, labels.shape, labels.affine)
            if faces:
                missing[side][bone] = (f"the {side} {bone} touches the edge of the field of view "
                                       f"({', '.join(faces)}): it may be cut")
                continue
            meshes[side][bone] = surface(part, plo, labels.affine)
    return LegSurfaces(meshes, missing, float(midline_x), source, notes)
