"""Post-processing of label maps: pure functions, no I/O.

Arrays are label volumes indexed ``(i, j, k)`` (uint8, 0 = background) on a grid described by
a 4x4 RAS affine (voxel index -> mm). Two steps, both from the study plus one addition:

1. Per axial slice and per structure (the study's rule): fill holes smaller than ``fraction``
   (1 %) of the structure's pixel count in that slice, then remove connected components smaller
   than ``fraction`` of it. "Axial" is the voxel axis closest to the patient's superior axis.
2. In 3D: keep the largest connected component of each structure on each side of the body.
   Sides come from patient coordinates: RAS ``+x`` points to the patient's **right**, so voxels
   with ``x > midline_x`` are right, the others left (LPS, as in DICOM, has ``+x`` to the left).

Empty-mask rules: an empty label map is returned unchanged (all background); a structure absent
from a slice or side is skipped; nothing is ever added except background pixels inside holes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from limbseg.labels import nonzero_box, structure_boxes
from limbseg.volume import LabelMap

SIDES = ("left", "right")


def axial_axis(affine: np.ndarray) -> int:
    """The voxel axis (0, 1 or 2) whose direction is closest to the patient's superior (RAS z) axis."""
    directions = np.asarray(affine, dtype=float)[:3, :3]
    directions = directions / np.linalg.norm(directions, axis=0)
    return int(np.argmax(np.abs(directions[2])))


def clean_slice(mask: np.ndarray, fraction: float = 0.01) -> np.ndarray:
    """One 2D boolean mask: fill holes and drop components smaller than ``fraction`` of its pixels.

    Returns a new boolean array of the same shape; an empty mask is returned as is.
    """
    n = int(mask.sum())
    if n == 0:
        return mask.copy()
    limit = fraction * n
    out = mask.copy()
    holes = ndimage.binary_fill_holes(mask) & ~mask
    if holes.any():
        lab, count = ndimage.label(holes)
        sizes = np.bincount(lab.ravel(), minlength=count + 1)
        small = np.flatnonzero(sizes < limit)
        out |= np.isin(lab, small[small > 0])
    lab, count = ndimage.label(out)
    if count > 1:
        sizes = np.bincount(lab.ravel(), minlength=count + 1)
        out &= ~np.isin(lab, np.flatnonzero((sizes < limit) & (np.arange(count + 1) > 0)))
    return out


def clean_slices(labels: np.ndarray, values: Iterable[int], axis: int = 2, fraction: float = 0.01) -> np.ndarray:
    """Apply :func:`clean_slice` to every structure in every slice along ``axis``.

    Holes are filled only where the label map is background (another structure is never overwritten).
    Returns a new uint8 array of the same shape.
    """
    out = np.moveaxis(np.asarray(labels, dtype=np.uint8).copy(), axis, 0)
    values = [int(v) for v in values]
    for n in np.flatnonzero(out.reshape(out.shape[0], -1).any(axis=1)):
        boxes = ndimage.find_objects(out[n], max_label=max(values, default=0))
        for value in values:
            box = boxes[value - 1]
            if box is None:
                continue
            sl = out[n][box]  # a view: the structure's bounding box in this slice
            mask = sl == value
            cleaned = clean_slice(mask, fraction)
            sl[mask & ~cleaned] = 0
            sl[cleaned & ~mask & (sl == 0)] = value
    return np.moveaxis(out, 0, axis)


def voxel_x_mm(shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    """RAS x (mm) of every voxel centre, shape ``shape``, float64."""
    a = np.asarray(affine, dtype=float)
    i, j, k = (np.arange(s, dtype=float) for s in shape)
    return a[0, 0] * i[:, None, None] + a[0, 1] * j[None, :, None] + a[0, 2] * k[None, None, :] + a[0, 3]


@dataclass(frozen=True)
class BoneSide:
    """One structure on one side, cropped to the structure's bounding box.

    ``mask`` is the boolean mask inside the box ``[lo, hi)`` of the full grid; ``affine`` maps the box's
    voxel indices to RAS mm (so meshes and centroids need no offset); ``box`` indexes the full grid.
    """

    name: str
    side: str
    mask: np.ndarray
    lo: tuple[int, int, int]
    affine: np.ndarray
    box: tuple[slice, slice, slice]


def bone_sides(labels: LabelMap, midline_x: float) -> Iterator[BoneSide]:
    """Every structure of the scheme split into its left and right part, each cropped to its bounding box.

    Yields structures in scheme order, ``left`` before ``right``; an absent structure or side yields an
    empty mask. Working in bounding boxes keeps this fast on whole-body grids (one pass over the volume).
    """
    values = labels.scheme.values
    boxes = structure_boxes(labels.array, max(values, default=0))
    for name, value in zip(labels.scheme.names, values, strict=True):
        box = boxes[value - 1] or (slice(0, 0),) * 3
        lo = tuple(int(b.start) for b in box)
        crop = labels.crop(lo, tuple(int(b.stop) for b in box))
        mask = crop.array == value
        right = voxel_x_mm(mask.shape, crop.affine) > midline_x
        yield BoneSide(name, "left", mask & ~right, lo, crop.affine, box)  # type: ignore[arg-type]
        yield BoneSide(name, "right", mask & right, lo, crop.affine, box)  # type: ignore[arg-type]


def field_centre_x(shape: tuple[int, ...], affine: np.ndarray) -> float:
    """RAS x (mm) of the centre of the field of view: the default midline."""
    centre = (np.asarray(shape, dtype=float) - 1) / 2
    return float(np.asarray(affine, dtype=float)[0, :3] @ centre + affine[0, 3])


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of a 3D boolean mask (empty in, empty out)."""
    if not mask.any():
        return mask.copy()
    lab, count = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    if count == 1:
        return mask.copy()
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == int(np.argmax(sizes))


def keep_largest_per_side(
    labels: np.ndarray, affine: np.ndarray, values: Iterable[int], midline_x: float
) -> np.ndarray:
    """Keep, for each structure value, the largest 3D component on each side of ``midline_x``.

    Returns a new uint8 array; removed voxels become background.
    """
    out = np.asarray(labels, dtype=np.uint8).copy()
    right = voxel_x_mm(out.shape, affine) > midline_x
    values = [int(v) for v in values]
    boxes = structure_boxes(out, max(values, default=0))
    for value in values:
        box = boxes[value - 1] if value > 0 else None
        if box is None:
            continue
        region = out[box]  # a view: work inside the structure's own bounding box
        mask = region == value
        keep = np.zeros_like(mask)
        for side in (right[box], ~right[box]):
            part = mask & side
            sub = nonzero_box(part)
            if sub is not None:
                keep[sub] |= largest_component(part[sub])
        region[mask & ~keep] = 0
    return out


def postprocess(
    labels: LabelMap, *, fraction: float = 0.01, midline_x: float | None = None, largest: bool = True
) -> LabelMap:
    """The full post-processing of a label map (study's per-slice rule, then 3D largest per side).

    Args:
        labels: the label map (any orientation; slices are taken along :func:`axial_axis`).
        fraction: size threshold relative to the structure's pixel count in each slice (0.01 = 1 %).
        midline_x: RAS x (mm) of the body midline; default: the centre of the field of view.
        largest: also keep only the largest 3D component per structure and side.
    Returns:
        a new LabelMap on the same grid with the same scheme.
    """
    values = labels.scheme.values
    if midline_x is None:
        midline_x = field_centre_x(labels.shape, labels.affine)
    out = np.zeros(labels.shape, dtype=np.uint8)
    box = nonzero_box(labels.array)
    if box is not None:  # work inside the labels' bounding box plus one background voxel: same result, faster
        lo = [max(b.start - 1, 0) for b in box]
        hi = [min(b.stop + 1, n) for b, n in zip(box, labels.shape, strict=True)]
        crop = labels.crop(lo, hi)
        array = clean_slices(crop.array, values, axis=axial_axis(labels.affine), fraction=fraction)
        if largest:
            array = keep_largest_per_side(array, crop.affine, values, midline_x)
        out[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = array
    return LabelMap(out, labels.affine.copy(), dict(labels.meta), scheme=labels.scheme)
