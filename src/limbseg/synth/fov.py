"""Fields of view labs acquire, cut from a whole virtual scan: one knee, one leg, the body cut at mid-thigh,
the same scan stored sagittally, and the knee as knee MRIs are acquired (sagittal 0.3 x 0.3 x 1.5 mm, coronal
0.3 x 0.3 x 3.8 mm: resampled, so they hold no more detail than the scan they come from, but they carry the
orientation, the thin in-plane pixels and the slice spacing a real knee series has). For tests and
``benchmarks/bench_locator.py`` (the exact labels come along, cropped or resampled the same way)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from limbseg.volume import LabelMap, Volume

KNEE_HALF_MM = 90.0  #: the knee crop reaches this far above and below the joint
#: Knee series as acquired: (name, in-plane pixel mm, slice mm, RAS directions of i, j, k, extent mm of i, j, k).
KNEE_SERIES = (
    ("knee sagittal 0.3x0.3x1.5 mm", 0.3, 1.5, ((0, -1, 0), (0, 0, -1), (1, 0, 0)), (160.0, 180.0, 120.0)),
    ("knee coronal 0.3x0.3x3.8 mm", 0.3, 3.8, ((-1, 0, 0), (0, 0, -1), (0, 1, 0)), (140.0, 180.0, 120.0)),
)


@dataclass
class FieldOfView:
    """One variant: its name, the scan and the labels, and where it lies in the whole scan (``box``: index
    slices of the crop, None for the sagittal copy, whose axes are permuted (k, i, j))."""

    name: str
    image: Volume
    labels: np.ndarray
    box: tuple[slice, slice, slice] | None
    source: np.ndarray | None = None  #: the whole scan's affine, for a variant resampled onto a new grid

    def of(self, whole: np.ndarray) -> np.ndarray:
        """The same part of an array on the whole scan's grid (e.g. the whole scan's prediction), on this
        variant's grid (nearest neighbour for a resampled one)."""
        if self.source is not None:
            from limbseg.data.resample import resample_to

            return resample_to(Volume(whole, self.source), self.image, 0, check_coverage=False).array
        return whole[self.box] if self.box is not None else np.ascontiguousarray(np.transpose(whole, (2, 0, 1)))


def knee_series(image: Volume, labels: np.ndarray, centre: np.ndarray) -> list[FieldOfView]:
    """The knee at ``centre`` (RAS mm) as the :data:`KNEE_SERIES` acquisitions: image trilinear, labels nearest."""
    from limbseg.data.resample import resample_to

    out = []
    for name, pixel, thickness, directions, extent in KNEE_SERIES:
        spacing = np.array([pixel, pixel, thickness])
        shape = tuple(int(round(e / s)) for e, s in zip(extent, spacing, strict=True))
        affine = np.eye(4)
        affine[:3, :3] = np.asarray(directions, dtype=float).T * spacing
        affine[:3, 3] = centre - affine[:3, :3] @ ((np.array(shape) - 1) / 2.0)
        grid = Volume(np.zeros(shape, np.uint8), affine)
        scan = resample_to(image, grid, 1, check_coverage=False)
        if np.issubdtype(image.array.dtype, np.integer):  # stored as the scanner stores it
            scan = Volume(np.round(scan.array).astype(image.array.dtype), affine)
        lab = resample_to(Volume(labels, image.affine), grid, 0, check_coverage=False).array
        out.append(FieldOfView(name, Volume(scan.array, affine, dict(image.meta)), lab, None, image.affine.copy()))
    return out


def _crop(name: str, image: Volume, labels: np.ndarray, box: tuple[slice, slice, slice]) -> FieldOfView:
    lo = [s.start or 0 for s in box]
    hi = [s.stop if s.stop is not None else n for s, n in zip(box, image.shape, strict=True)]
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))  # type: ignore[assignment]
    return FieldOfView(name, image.crop(lo, hi), np.ascontiguousarray(labels[box]), box)


def fields_of_view(image: Volume, labels: np.ndarray, side: str = "right", *,
                   acquired: bool = True) -> list[FieldOfView]:
    """The variants of an axial virtual scan (RAS z along k, labels 1 tibia 2 femur 3 fibula 4 pelvis).

    The leg kept is ``side``'s: voxels whose RAS x is beyond the midline (the pelvis's centre in x).
    ``acquired``: also the knee as sagittal and coronal knee series (:func:`knee_series`), centred on the
    femur and tibia voxels within 10 slices of the joint.
    """
    pelvis = np.argwhere(labels == 4)
    x_all = image.index_to_ras(np.stack([np.arange(image.shape[0]), np.zeros(image.shape[0]),
                                         np.zeros(image.shape[0])], axis=1).astype(float))[:, 0]
    mid = float(image.index_to_ras(pelvis.astype(float))[:, 0].mean()) if len(pelvis) else float(x_all.mean())
    keep = np.flatnonzero(x_all > mid if side == "right" else x_all <= mid)
    leg_i = slice(int(keep.min()), int(keep.max()) + 1)
    top_tibia = int(np.flatnonzero((labels == 1).any(axis=(0, 1))).max())
    bottom_femur = int(np.flatnonzero((labels == 2).any(axis=(0, 1))).min())
    knee_k = 0.5 * (top_tibia + bottom_femur)
    half = int(round(KNEE_HALF_MM / abs(float(image.affine[2, 2]))))
    femur_k = np.flatnonzero((labels == 2).any(axis=(0, 1)))
    out = [
        _crop("one knee", image, labels, (leg_i, slice(None), slice(max(0, int(knee_k) - half), int(knee_k) + half))),
        _crop("one leg", image, labels, (leg_i, slice(None), slice(None))),
        _crop("cut at mid-thigh", image, labels, (slice(None), slice(None), slice(int(np.median(femur_k)), None))),
    ]
    sagittal = Volume(np.ascontiguousarray(np.transpose(image.array, (2, 0, 1))), image.affine[:, [2, 0, 1, 3]],
                      dict(image.meta))
    out.append(FieldOfView("sagittal", sagittal, np.ascontiguousarray(np.transpose(labels, (2, 0, 1))), None))
    if acquired:
        band = np.zeros(labels.shape, bool)
        band[leg_i, :, max(0, int(knee_k) - 10):int(knee_k) + 10] = True
        knee = np.argwhere(band & ((labels == 1) | (labels == 2)))
        centre = image.index_to_ras(knee.mean(0)[None, :].astype(float))[0]
        out += knee_series(image, labels, centre)
    return out


def as_labels(fov: FieldOfView) -> LabelMap:
    """The variant's exact labels as a LabelMap on its scan's grid."""
    return LabelMap(fov.labels, fov.image.affine.copy(), {})
