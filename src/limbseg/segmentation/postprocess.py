"""Post-processing of label maps: pure functions, no I/O.

Arrays are label volumes indexed ``(i, j, k)`` (uint8, 0 = background) on a grid described by
a 4x4 RAS affine (voxel index -> mm). Three steps, the study's rule first:

1. Per axial slice and per structure (the study's rule): fill holes smaller than ``fraction``
   (1 %) of the structure's pixel count in that slice, then remove connected components smaller
   than ``fraction`` of it. "Axial" is the voxel axis closest to the patient's superior axis.
2. In 3D: keep the largest connected component of each structure on each side of the body, pieces
   at most ``max_gap_mm`` apart along the axial axis counting as one (a slice of femur mislabelled as
   tibia leaves a stray piece of tibia, removed here, and does not cut the femur in two). Sides come
   from the bones (:mod:`limbseg.segmentation.sides`): with two legs every structure is split at the
   midline between them (RAS ``+x`` is the patient's **right**); with one leg each leg bone goes whole
   to that leg's side (``left``, ``right`` or ``unknown``).
3. Along the axial axis: close gaps of missing slices inside a bone (:func:`close_gaps`, at most
   ``max_gap_mm``): in each gap the bone's cross-section is interpolated from the slices on either
   side, within the structure's own in-plane footprint, on background only.

Empty-mask rules: an empty label map is returned unchanged (all background); a structure absent
from a slice or side is skipped; nothing is ever added except background voxels (holes, gaps).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from limbseg.labels import DEFAULT_SCHEME, LabelScheme, nonzero_box, structure_boxes
from limbseg.segmentation.sides import Sides, assign_sides, voxel_x_mm  # noqa: F401 - voxel_x_mm: re-exported
from limbseg.volume import LabelMap

SIDES = ("left", "right")  #: the sides of a split structure (a whole one may also be "unknown")
MAX_GAP_MM = 10.0  #: longest run of missing axial slices inside a bone that post-processing closes


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


def _signed_distance(mask: np.ndarray, sampling: tuple[float, float]) -> np.ndarray:
    """Signed distance (mm) to the mask's boundary: negative inside, positive outside (2D, padded by 1)."""
    pad = np.pad(mask, 1)
    inside = ndimage.distance_transform_edt(pad, sampling=sampling)
    outside = ndimage.distance_transform_edt(~pad, sampling=sampling)
    return (outside - inside)[1:-1, 1:-1]


def interpolate_slices(a: np.ndarray, b: np.ndarray, steps: int, sampling: tuple[float, float] = (1.0, 1.0)
                       ) -> np.ndarray:
    """The ``steps - 1`` masks between 2D masks ``a`` and ``b`` (``steps`` slices apart), shape-interpolated.

    Only the parts of ``a | b`` that overlap (connected pieces of the union holding pixels of ``a & b``)
    are interpolated: a piece seen on one side only is not carried into the gap, so two separate
    pieces (two legs) are never joined. Each mask is where the linear blend of the two signed distance
    maps is negative, clipped to those pieces: it always holds ``a & b`` and never leaves ``a | b``.
    """
    out = np.zeros((max(steps - 1, 0), *a.shape), dtype=bool)
    both = a & b
    if steps < 2 or not both.any():
        return out
    union, _ = ndimage.label(a | b, structure=np.ones((3, 3), dtype=bool))
    keep = np.isin(union, np.unique(union[both]))
    a, b = a & keep, b & keep
    da, db = _signed_distance(a, sampling), _signed_distance(b, sampling)
    for n in range(1, steps):
        t = n / steps
        out[n - 1] = ((1 - t) * da + t * db < 0) & keep
    return out


def close_gaps(labels: np.ndarray, values: Iterable[int], axis: int = 2, max_slices: int = 3,
               sampling: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """Close runs of up to ``max_slices`` missing slices (along ``axis``) inside each structure.

    For each structure, its in-plane footprint (the union over all slices) is split into connected
    pieces (e.g. the two legs' femurs); within each piece, slices where the structure is absent between
    slices where it is present form a gap, and the gap's slices get :func:`interpolate_slices` of the
    slices on either side. Only background voxels are filled: another structure is never overwritten.
    ``sampling``: the in-plane spacing (mm) of the two other axes, in order. Returns a new uint8 array.
    """
    native = np.asarray(labels, dtype=np.uint8).copy()
    out = np.moveaxis(native, axis, 0)  # a view of the copy, slices first
    values = [int(v) for v in values]
    if max_slices < 1:
        return native
    order = [axis] + [ax for ax in range(3) if ax != axis]
    boxes = structure_boxes(native, max(values, default=0))  # on the contiguous array: faster
    for value in values:
        box = boxes[value - 1] if value > 0 else None
        if box is None or box[axis].stop - box[axis].start < 3:
            continue
        box = tuple(box[ax] for ax in order)
        region = out[box]  # a view: the structure's bounding box
        mask = region == value
        pieces, _ = ndimage.label(mask.any(axis=0), structure=np.ones((3, 3), dtype=bool))
        for n, foot in enumerate(ndimage.find_objects(pieces), start=1):
            sub = mask[(slice(None), *foot)] & (pieces[foot] == n)
            present = np.flatnonzero(sub.any(axis=(1, 2)))
            steps = np.diff(present)
            for p in np.flatnonzero((steps > 1) & (steps <= max_slices + 1)):
                lo, hi = int(present[p]), int(present[p + 1])
                fill = interpolate_slices(sub[lo], sub[hi], hi - lo, sampling)
                target = region[(slice(lo + 1, hi), *foot)]  # a view into ``out``
                target[fill & (target == 0)] = value
    return native


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


def as_sides(labels: LabelMap, sides: Sides | float | None = None, midline_x: float | None = None) -> Sides:
    """``sides`` as a :class:`Sides`: as given; a number is a midline to split every structure at (the old
    rule); ``None``: :func:`~limbseg.segmentation.sides.assign_sides` from the bones, ``midline_x`` a hint."""
    if isinstance(sides, Sides):
        return sides
    if sides is not None:
        return Sides.split_at(float(sides))
    return assign_sides(labels, midline_x=midline_x)


def bone_sides(labels: LabelMap, sides: Sides | float | None = None) -> Iterator[BoneSide]:
    """Every structure of the scheme on each of its sides, each cropped to the structure's bounding box.

    ``sides``: how each structure is sided (see :func:`as_sides`; default: from the bones). Yields
    structures in scheme order, ``left`` before ``right`` (or one ``unknown``); an absent structure or
    side yields an empty mask. Working in bounding boxes keeps this fast on whole-body grids.
    """
    sides = as_sides(labels, sides)
    values = labels.scheme.values
    boxes = structure_boxes(labels.array, max(values, default=0))
    for name, value in zip(labels.scheme.names, values, strict=True):
        box = boxes[value - 1] or (slice(0, 0),) * 3
        lo = tuple(int(b.start) for b in box)
        crop = labels.crop(lo, tuple(int(b.stop) for b in box))
        for side, part in sides.split(name, crop.array == value, crop.affine):
            yield BoneSide(name, side, part, lo, crop.affine, box)  # type: ignore[arg-type]


def field_centre_x(shape: tuple[int, ...], affine: np.ndarray) -> float:
    """RAS x (mm) of the centre of the field of view: the default midline."""
    centre = (np.asarray(shape, dtype=float) - 1) / 2
    return float(np.asarray(affine, dtype=float)[0, :3] @ centre + affine[0, 3])


def largest_component(mask: np.ndarray, axis: int = 2, bridge: int = 0) -> np.ndarray:
    """The largest 26-connected component of a 3D boolean mask (empty in, empty out).

    ``bridge``: pieces at most this many slices apart along ``axis`` (and overlapping in-plane) count as one
    component, as a gap :func:`close_gaps` closes would make them: a bone with one slice mislabelled as its
    neighbour is kept whole, not cut at the bad slice. The component's size is that of its own voxels.
    """
    if not mask.any():
        return mask.copy()
    joined = mask
    if bridge > 0:
        line = np.zeros((3, 3, 3), dtype=bool)
        line[tuple(slice(None) if ax == axis else 1 for ax in range(3))] = True
        joined = ndimage.binary_closing(np.pad(mask, [(bridge + 1, bridge + 1) if ax == axis else (0, 0)
                                                      for ax in range(3)]), line, iterations=(bridge + 1) // 2)
        joined = joined[tuple(slice(bridge + 1, -(bridge + 1)) if ax == axis else slice(None)
                              for ax in range(3))] | mask
    lab, count = ndimage.label(joined, structure=np.ones((3, 3, 3), dtype=bool))
    if count == 1:
        return mask.copy()
    sizes = np.bincount(lab[mask], minlength=count + 1)
    sizes[0] = 0
    return mask & (lab == int(np.argmax(sizes)))


def keep_largest_per_side(
    labels: np.ndarray, affine: np.ndarray, values: Iterable[int], midline_x: float | None = None, *,
    sides: Sides | None = None, scheme: LabelScheme = DEFAULT_SCHEME, axis: int = 2, bridge: int = 0,
) -> np.ndarray:
    """Keep, for each structure value, the largest 3D component on each of its sides.

    ``axis``, ``bridge``: pieces up to ``bridge`` slices apart along ``axis`` are one component
    (:func:`largest_component`).

    ``sides`` says how each structure (named by ``scheme``) is sided; without it every structure is split
    at ``midline_x`` (RAS x > midline: right). Returns a new uint8 array; removed voxels become background.
    """
    if sides is None:
        if midline_x is None:
            raise ValueError("keep_largest_per_side needs sides or midline_x")
        sides = Sides.split_at(midline_x)
    out = np.asarray(labels, dtype=np.uint8).copy()
    a = np.asarray(affine, dtype=float)
    known = dict(zip(scheme.values, scheme.names, strict=True))
    values = [int(v) for v in values]
    boxes = structure_boxes(out, max(values, default=0))
    for value in values:
        box = boxes[value - 1] if value > 0 else None
        if box is None:
            continue
        region = out[box]  # a view: work inside the structure's own bounding box
        mask = region == value
        box_affine = a.copy()
        box_affine[:3, 3] = a[:3, :3] @ [b.start for b in box] + a[:3, 3]
        keep = np.zeros_like(mask)
        for _, part in sides.split(known.get(value, str(value)), mask, box_affine):
            sub = nonzero_box(part)
            if sub is not None:
                keep[sub] |= largest_component(part[sub], axis, bridge)
        region[mask & ~keep] = 0
    return out


def postprocess(
    labels: LabelMap, *, fraction: float = 0.01, midline_x: float | None = None, largest: bool = True,
    sides: Sides | None = None, max_gap_mm: float = MAX_GAP_MM,
) -> LabelMap:
    """The full post-processing of a label map (study's per-slice rule, 3D largest per side, gap closing).

    Args:
        labels: the label map (any orientation; slices are taken along :func:`axial_axis`).
        fraction: size threshold relative to the structure's pixel count in each slice (0.01 = 1 %).
        midline_x: a midline hint (RAS x, mm), used when ``sides`` is not given (see :func:`as_sides`).
        largest: also keep only the largest 3D component per structure and side.
        sides: how each structure is sided; default: from the bones after the slice steps.
        max_gap_mm: close runs of missing axial slices inside a bone up to this length (0: off).
    Returns:
        a new LabelMap on the same grid with the same scheme.
    """
    values = labels.scheme.values
    out = np.zeros(labels.shape, dtype=np.uint8)
    box = nonzero_box(labels.array)
    if box is not None:  # work inside the labels' bounding box plus one background voxel: same result, faster
        lo = [max(b.start - 1, 0) for b in box]
        hi = [min(b.stop + 1, n) for b, n in zip(box, labels.shape, strict=True)]
        crop = labels.crop(lo, hi)
        axis = axial_axis(labels.affine)
        array = clean_slices(crop.array, values, axis=axis, fraction=fraction)
        spacing = labels.spacing
        max_slices = int(max_gap_mm / spacing[axis] + 1e-6) if max_gap_mm > 0 else 0
        in_plane = tuple(spacing[ax] for ax in range(3) if ax != axis)
        if largest:  # before the gaps are closed: a slice of femur called tibia is a stray piece of tibia
            cleaned = LabelMap(array, crop.affine, {}, scheme=labels.scheme)
            sides = as_sides(cleaned, sides, midline_x)
            array = keep_largest_per_side(array, crop.affine, values, sides=sides, scheme=labels.scheme,
                                          axis=axis, bridge=max_slices)
        array = close_gaps(array, values, axis=axis, max_slices=max_slices, sampling=in_plane)  # type: ignore[arg-type]
        out[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = array
    return LabelMap(out, labels.affine.copy(), dict(labels.meta), scheme=labels.scheme)
