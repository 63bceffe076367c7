"""Segmentation metrics as pure functions on boolean masks indexed (i, j, k).

Empty-mask rules (stated once, used everywhere):

* ``dice``: both masks empty -> 1.0 (nothing to find, nothing found); exactly one empty -> 0.0.
* ``hd95`` and ``assd``: both empty -> 0.0; exactly one empty -> ``nan`` (no surface to measure
  from; summaries skip nan and report how many cases were skipped).
* ``volume_error_pct``: reference empty -> ``nan``.

Surface distances follow MONAI's definitions (``compute_hausdorff_distance`` with
``percentile=95`` and ``compute_average_surface_distance`` with ``symmetric=True``): the surface is
the mask minus its erosion (6-connected structuring element, outside the image counts as
background), distances are Euclidean in millimetres using the voxel spacing, HD95 is the larger
of the two directed 95th percentiles, ASSD the mean over both directions' surface points.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage


def _as_bool(a: np.ndarray) -> np.ndarray:
    return np.asarray(a).astype(bool, copy=False)


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice similarity coefficient 2|P∩R| / (|P|+|R|) of two boolean masks of equal shape."""
    p, r = _as_bool(pred), _as_bool(ref)
    if p.shape != r.shape:
        raise ValueError(f"mask shapes differ: {p.shape} vs {r.shape}")
    total = int(p.sum()) + int(r.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(p, r).sum()) / total


def volume_error_cm3(pred: np.ndarray, ref: np.ndarray, voxel_volume_mm3: float) -> float:
    """The study's volume error: voxel volume x |N_pred - N_ref|, in cm³ (1 cm³ = 1000 mm³)."""
    n_p, n_r = int(_as_bool(pred).sum()), int(_as_bool(ref).sum())
    return float(voxel_volume_mm3) * abs(n_p - n_r) / 1000.0


def volume_error_pct(pred: np.ndarray, ref: np.ndarray) -> float:
    """|N_pred - N_ref| / N_ref x 100; nan when the reference is empty."""
    n_p, n_r = int(_as_bool(pred).sum()), int(_as_bool(ref).sum())
    return float("nan") if n_r == 0 else 100.0 * abs(n_p - n_r) / n_r


def _surface_distances(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances (mm): pred surface -> ref surface, ref surface -> pred surface."""
    union = pred | ref
    coords = np.nonzero(union)
    lo = [max(int(c.min()) - 1, 0) for c in coords]
    hi = [int(c.max()) + 2 for c in coords]
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    p = np.pad(pred[box], 1)
    r = np.pad(ref[box], 1)
    edge_p = p ^ ndimage.binary_erosion(p)
    edge_r = r ^ ndimage.binary_erosion(r)
    spacing = tuple(float(s) for s in spacing)
    dist_to_r = ndimage.distance_transform_edt(~edge_r, sampling=spacing)
    dist_to_p = ndimage.distance_transform_edt(~edge_p, sampling=spacing)
    return dist_to_r[edge_p], dist_to_p[edge_r]


def _check(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    p, r = _as_bool(pred), _as_bool(ref)
    if p.shape != r.shape:
        raise ValueError(f"mask shapes differ: {p.shape} vs {r.shape}")
    if len(spacing) != p.ndim:
        raise ValueError(f"spacing has {len(spacing)} values for a {p.ndim}-D mask")
    return p, r


def _distances_or_rule(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]
                       ) -> float | tuple[np.ndarray, np.ndarray]:
    """Surface distances (pred->ref, ref->pred) in mm, or the empty-mask value: 0.0 both empty, nan one empty."""
    p, r = _check(pred, ref, spacing)
    if not p.any() and not r.any():
        return 0.0
    if not p.any() or not r.any():
        return float("nan")
    return _surface_distances(p, r, spacing)


def hd95(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> float:
    """95th-percentile symmetric Hausdorff distance in mm (see the module's empty-mask rules)."""
    d = _distances_or_rule(pred, ref, spacing)
    return d if isinstance(d, float) else float(max(np.percentile(d[0], 95), np.percentile(d[1], 95)))


def assd(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> float:
    """Average symmetric surface distance in mm (see the module's empty-mask rules)."""
    d = _distances_or_rule(pred, ref, spacing)
    return d if isinstance(d, float) else float(np.concatenate(d).mean())
