"""Per-bone, per-side measurements of a label map, written as CSV and JSON.

Every structure of the scheme gets a row for each of its sides: ``left`` and ``right``, or one
``unknown`` row when its side could not be decided. Sides come from the bones
(:mod:`limbseg.segmentation.sides`: two legs split at the midline between them, a single leg whole on
its side); RAS ``+x`` is the patient's right. Units: volume cm³, lengths and centroids mm.
An absent bone/side has ``voxels = 0``, ``volume_cm3 = 0`` and ``None`` for the other measures.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from limbseg.io.atomic import atomic_path
from limbseg.segmentation.postprocess import BoneSide, as_sides, bone_sides
from limbseg.segmentation.sides import Sides
from limbseg.volume import LabelMap, Volume

COLUMNS = [
    "structure", "side", "voxels", "volume_cm3", "length_mm",
    "centroid_ras_x_mm", "centroid_ras_y_mm", "centroid_ras_z_mm",
    "centroid_lps_x_mm", "centroid_lps_y_mm", "centroid_lps_z_mm",
    "mean_intensity", "touches_edge",
]


def long_axis_length_mm(ijk: np.ndarray, affine: np.ndarray) -> float:
    """Extent (mm) of a voxel set along its first principal axis, voxel footprint included.

    ``ijk``: (N, 3) integer voxel indices. The extent of the voxel centres along the unit principal
    axis ``u`` is widened by one voxel's projected size ``sum_a |u . column_a(affine)|``, so a straight
    run of n voxels of spacing s measures n * s.
    """
    a = np.asarray(affine, dtype=float)
    xyz = ijk @ a[:3, :3].T
    if len(xyz) == 1:
        u = a[:3, 2] / np.linalg.norm(a[:3, 2])
    else:
        centred = xyz - xyz.mean(axis=0)
        _, _, vt = np.linalg.svd(centred[:: max(1, len(centred) // 200_000)], full_matrices=False)
        u = vt[0]
    proj = xyz @ u
    footprint = float(np.abs(u @ a[:3, :3]).sum())
    return float(proj.max() - proj.min()) + footprint


def touches_edge(mask: np.ndarray, lo: tuple[int, ...] | None = None, shape: tuple[int, ...] | None = None) -> bool:
    """True when the mask has a voxel on any face of the volume (the bone may be cut off).

    ``mask`` may be a crop starting at ``lo`` of a volume of ``shape``: only the crop's faces that lie on
    the volume's faces count.
    """
    lo = lo or (0,) * mask.ndim
    shape = shape or mask.shape
    for ax in range(mask.ndim):
        if lo[ax] == 0 and np.take(mask, 0, axis=ax).any():
            return True
        if lo[ax] + mask.shape[ax] == shape[ax] and np.take(mask, -1, axis=ax).any():
            return True
    return False


def _row(part: BoneSide, labels: LabelMap, image: Volume | None) -> dict[str, Any]:
    mask = part.mask
    n = int(mask.sum())
    row: dict[str, Any] = {c: None for c in COLUMNS}
    row.update(structure=part.name, side=part.side, voxels=n, volume_cm3=n * labels.voxel_volume_mm3 / 1000.0)
    if n == 0:
        row["touches_edge"] = False
        return row
    ijk = np.argwhere(mask).astype(np.float64)
    a = part.affine
    ras = ijk.mean(axis=0) @ a[:3, :3].T + a[:3, 3]
    row.update(
        length_mm=long_axis_length_mm(ijk, a),
        centroid_ras_x_mm=float(ras[0]), centroid_ras_y_mm=float(ras[1]), centroid_ras_z_mm=float(ras[2]),
        centroid_lps_x_mm=float(-ras[0]), centroid_lps_y_mm=float(-ras[1]), centroid_lps_z_mm=float(ras[2]),
        touches_edge=touches_edge(mask, part.lo, labels.shape),
    )
    if image is not None:
        row["mean_intensity"] = float(np.asarray(image.array)[part.box][mask].astype(np.float64).mean())
    return row


def compute_statistics(
    labels: LabelMap, image: Volume | None = None, *, midline_x: float | None = None, sides: Sides | None = None
) -> list[dict[str, Any]]:
    """One row per structure and side (see :data:`COLUMNS`).

    Args:
        labels: label map (uint8, (i, j, k), RAS affine).
        image: the scan on the same grid, for ``mean_intensity`` (optional).
        midline_x: a midline hint (RAS x, mm), used when ``sides`` is not given.
        sides: how each structure is sided; default: from the bones (:func:`~limbseg.segmentation.postprocess.as_sides`).
    """
    if image is not None and image.shape != labels.shape:
        raise ValueError(f"image shape {image.shape} differs from labels {labels.shape}")
    sides = as_sides(labels, sides, midline_x)
    return [_row(part, labels, image) for part in bone_sides(labels, sides)]


def left_right_differences(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per structure: right minus left length (mm) and volume (cm³); ``None`` when a side is missing."""
    out = []
    for name in dict.fromkeys(r["structure"] for r in rows):
        side = {r["side"]: r for r in rows if r["structure"] == name}
        left, right = side.get("left"), side.get("right")
        both = bool(left and right and left["voxels"] and right["voxels"])
        out.append({
            "structure": name,
            "length_diff_mm": right["length_mm"] - left["length_mm"] if both else None,  # type: ignore[index]
            "volume_diff_cm3": right["volume_cm3"] - left["volume_cm3"] if both else None,  # type: ignore[index]
        })
    return out


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def write_statistics(rows: list[dict[str, Any]], directory: str | Path, *, midline_x: float | None = None,
                     sides: Sides | None = None) -> list[Path]:
    """Write ``statistics.csv`` (one row per bone/side, then ``difference`` rows) and ``statistics.json``.

    ``sides`` (the :class:`Sides` the rows were computed with) is recorded under ``"sides"``: the rule
    that decided, the midline and how each structure was sided; ``midline_x`` alone records a split there.
    """
    directory = Path(directory)
    if sides is None and midline_x is not None:
        sides = Sides.split_at(midline_x)
    sides_doc = sides.to_json() if sides is not None else None
    diffs = left_right_differences(rows)
    csv_path, json_path = directory / "statistics.csv", directory / "statistics.json"
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS + ["length_diff_mm", "volume_diff_cm3"])
        for r in rows:
            writer.writerow([_fmt(r[c]) for c in COLUMNS] + ["", ""])
        for d in diffs:
            blank = [""] * (len(COLUMNS) - 2)
            writer.writerow([d["structure"], "right-left", *blank, _fmt(d["length_diff_mm"]), _fmt(d["volume_diff_cm3"])])
    doc = {
        "units": {"volume": "cm3", "length": "mm", "centroid": "mm"},
        "sides": sides_doc,
        "midline_ras_x_mm": sides.midline_x if sides is not None else midline_x,
        "structures": rows,
        "left_right_differences": diffs,
    }
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(doc, indent=2))
    return [csv_path, json_path]
