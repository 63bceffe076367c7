"""Fields of view labs acquire, cut from a whole virtual scan: one knee, one leg, the body cut at mid-thigh,
and the same scan stored sagittally. For tests and ``benchmarks/bench_locator.py`` (the exact labels come
along, cropped the same way)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from limbseg.volume import LabelMap, Volume

KNEE_HALF_MM = 90.0  #: the knee crop reaches this far above and below the joint


@dataclass
class FieldOfView:
    """One variant: its name, the scan and the labels, and where it lies in the whole scan (``box``: index
    slices of the crop, None for the sagittal copy, whose axes are permuted (k, i, j))."""

    name: str
    image: Volume
    labels: np.ndarray
    box: tuple[slice, slice, slice] | None

    def of(self, whole: np.ndarray) -> np.ndarray:
        """The same part of an array on the whole scan's grid (e.g. the whole scan's prediction)."""
        return whole[self.box] if self.box is not None else np.ascontiguousarray(np.transpose(whole, (2, 0, 1)))


def _crop(name: str, image: Volume, labels: np.ndarray, box: tuple[slice, slice, slice]) -> FieldOfView:
    lo = [s.start or 0 for s in box]
    hi = [s.stop if s.stop is not None else n for s, n in zip(box, image.shape, strict=True)]
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))  # type: ignore[assignment]
    return FieldOfView(name, image.crop(lo, hi), np.ascontiguousarray(labels[box]), box)


def fields_of_view(image: Volume, labels: np.ndarray, side: str = "right") -> list[FieldOfView]:
    """The variants of an axial virtual scan (RAS z along k, labels 1 tibia 2 femur 3 fibula 4 pelvis).

    The leg kept is ``side``'s: voxels whose RAS x is beyond the midline (the pelvis's centre in x).
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
    return out


def as_labels(fov: FieldOfView) -> LabelMap:
    """The variant's exact labels as a LabelMap on its scan's grid."""
    return LabelMap(fov.labels, fov.image.affine.copy(), {})
