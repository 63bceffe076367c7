"""Label maps from per-structure binary masks or closed meshes, on a scan's grid.

Label maps are always built on the scan's grid (its exact shape and RAS affine), dtype uint8,
values from a :class:`~limbseg.labels.LabelScheme`. Overlaps become background by default (the
study's rule) or follow a priority list; every step that changes data (resampling, thresholding,
overlaps) is reported in a :class:`LabelReport` and logged as a warning.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from limbseg.data.resample import covers, resample_to
from limbseg.errors import LimbsegError
from limbseg.labels import DEFAULT_SCHEME, LabelScheme, merge_masks
from limbseg.volume import LabelMap, Volume


class CaseRefused(LimbsegError):
    """A user error that belongs to one category of the prepare report (e.g. 'geometry mismatch')."""

    def __init__(self, category: str, message: str, path: str | Path | None = None) -> None:
        self.category = category
        super().__init__(message, path)


@dataclass
class LabelReport:
    """What happened while building a label map.

    Attributes:
        voxels: voxels per structure in the final label map (after overlap handling).
        overlap_voxels: voxels claimed by two or more structures.
        warnings: human-readable warnings (resampling, thresholding, overlaps, empty masks).
        empty: structures with no voxel in the label map (empty input, or all lost to overlaps).
    """

    voxels: dict[str, int] = field(default_factory=dict)
    overlap_voxels: int = 0
    warnings: list[str] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def as_dict(self) -> dict[str, Any]:
        return {"voxels": dict(self.voxels), "overlap_voxels": self.overlap_voxels,
                "warnings": list(self.warnings), "empty": list(self.empty)}


def check_structures(names: Sequence[str], scheme: LabelScheme, what: str = "structure") -> None:
    """Refuse names that are not structures of ``scheme``."""
    unknown = [n for n in names if n not in scheme.names]
    if unknown:
        raise LimbsegError(f"unknown {what} {', '.join(map(repr, unknown))}; the labels are {', '.join(scheme.names)}")


def binary_mask_on_grid(
    reference: Volume, name: str, mask: Volume, report: LabelReport, path: str | Path | None = None
) -> np.ndarray:
    """A boolean (I, J, K) mask of ``name`` on ``reference``'s grid.

    Non-binary values are thresholded at > 0 and a mask on another grid that covers the scan
    is resampled by nearest neighbour, each with a warning; a mask that does not cover the scan
    is refused (:class:`CaseRefused`, category 'geometry mismatch').
    """
    where = f" ({Path(path).name})" if path is not None else ""
    arr = mask.array
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise CaseRefused("unreadable", f"{name} mask holds NaN or Inf values", path)
    if bool(((arr != 0) & (arr != 1)).any()):
        report.warn(f"{name}{where}: mask values are not only 0/1; using voxels > 0")
    binary = Volume((arr > 0).astype(np.uint8), mask.affine, dict(mask.meta))
    if binary.same_grid(reference):
        return binary.array.astype(bool)
    if not covers(binary, reference):
        raise CaseRefused("geometry mismatch", f"{name} mask does not cover the scan "
                          f"(mask grid {mask.shape}, scan grid {reference.shape})", path)
    report.warn(f"{name}{where}: mask is on another grid {mask.shape} than the scan {reference.shape}; "
                "resampled (nearest neighbour)")
    return resample_to(binary, reference, order=0, path=path).array.astype(bool)


def finish_label_map(
    reference: Volume, masks: dict[str, np.ndarray], scheme: LabelScheme,
    priority: Sequence[str] | None, report: LabelReport,
) -> tuple[LabelMap, LabelReport]:
    """Merge boolean masks on the reference grid into a LabelMap and complete the report."""
    if not masks:
        raise LimbsegError("no masks or meshes given")
    if priority is not None:
        check_structures(priority, scheme, "structure in --priority")
        priority = [p for p in priority if p in masks]
    for name, m in masks.items():
        if not m.any():
            report.empty.append(name)
            report.warn(f"{name}: mask is empty on the scan grid")
    labels, n_overlap = merge_masks(masks, scheme, priority)
    report.overlap_voxels = n_overlap
    if n_overlap:
        rule = f"given to the first of {','.join(priority)}" if priority else "set to background"
        report.warn(f"{n_overlap} voxels belong to more than one structure; {rule}")
    report.voxels = {n: int(np.count_nonzero(labels == scheme.value_of(n))) for n in masks}
    for name, n in report.voxels.items():
        if n == 0 and name not in report.empty:
            report.empty.append(name)
            report.warn(f"{name}: no voxel left after resolving overlaps")
    out = LabelMap(labels, reference.affine.copy(), {"source": "limbseg labels"}, scheme=scheme)
    return out, report


def merge_label_masks(
    reference: Volume,
    masks: Mapping[str, Volume],
    scheme: LabelScheme = DEFAULT_SCHEME,
    priority: Sequence[str] | None = None,
    paths: Mapping[str, str | Path] | None = None,
) -> tuple[LabelMap, LabelReport]:
    """Merge per-structure binary masks into one uint8 label map on ``reference``'s grid.

    Args:
        reference: the scan; the result has its shape and exact affine.
        masks: structure name -> mask volume (any grid that covers the scan; values 0/1 expected).
        scheme: names -> label values.
        priority: overlap rule; None sets overlapping voxels to background (the study's rule),
            otherwise the first listed structure wins.
        paths: structure name -> file, for messages.

    Returns:
        (label map, report with voxels per structure, overlapping voxels and warnings).
    """
    check_structures(list(masks), scheme)
    report = LabelReport()
    paths = paths or {}
    grid = {n: binary_mask_on_grid(reference, n, v, report, paths.get(n)) for n, v in masks.items()}
    return finish_label_map(reference, grid, scheme, priority, report)


def mask_from_meshes(reference: Volume, name: str, meshes: Sequence[Any],
                     paths: Sequence[str | Path] | None = None) -> np.ndarray:
    """Union of several closed meshes (RAS mm) voxelized on ``reference``: boolean (I, J, K).

    Raises:
        CaseRefused ('empty mask'): a mesh has no voxel centre inside it on the scan grid
            (usually a mesh in the other coordinate convention: try --space RAS / LPS).
    """
    from limbseg.data.voxelize import voxelize_mesh

    out = np.zeros(reference.shape, dtype=bool)
    for n, mesh in enumerate(meshes):
        m = voxelize_mesh(mesh, reference)
        if not m.any():
            path = paths[n] if paths else None
            raise CaseRefused("empty mask", f"{name} mesh lies outside the scan (no voxel inside it); "
                              "check the mesh space (--space LPS or RAS)", path)
        out |= m
    return out


def labels_from_meshes(
    reference: Volume,
    meshes: Mapping[str, Sequence[Any]],
    scheme: LabelScheme = DEFAULT_SCHEME,
    priority: Sequence[str] | None = None,
    paths: Mapping[str, Sequence[str | Path]] | None = None,
) -> tuple[LabelMap, LabelReport]:
    """Voxelize closed meshes (RAS mm; several per structure are united) into a label map on ``reference``."""
    check_structures(list(meshes), scheme)
    paths = paths or {}
    grid = {n: mask_from_meshes(reference, n, ms, paths.get(n)) for n, ms in meshes.items()}
    return finish_label_map(reference, grid, scheme, priority, LabelReport())


def load_scheme(path: str | Path | None) -> LabelScheme:
    """The label scheme of a dataset.json (``labels``) or labels.json file; the default without a path."""
    if path is None:
        return DEFAULT_SCHEME
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise LimbsegError("no such labels file", path) from exc
    except (OSError, ValueError) as exc:
        raise LimbsegError(f"not a readable JSON file ({exc})", path) from exc
    labels = data.get("labels", data) if isinstance(data, dict) else None
    try:
        if not isinstance(labels, dict):
            raise ValueError("no 'labels' mapping")
        scheme = LabelScheme.from_json(labels)
    except (ValueError, TypeError, KeyError) as exc:
        raise LimbsegError(f"invalid label scheme ({exc})", path) from exc
    if not scheme.structures:
        raise LimbsegError("label scheme lists no structure", path)
    return scheme


def parse_name_paths(items: Sequence[str], option: str) -> list[tuple[str, str]]:
    """Parse ``NAME=PATH`` command-line items, in order (a name may repeat)."""
    out = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise LimbsegError(f"{option} expects NAME=PATH, got {item!r}")
        out.append((name.strip().lower(), value.strip()))
    return out


def parse_priority(text: str | None) -> list[str] | None:
    """``"femur,tibia"`` -> ``["femur", "tibia"]``; None or empty -> None (overlaps become background)."""
    if not text:
        return None
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if len(set(names)) != len(names):
        raise LimbsegError(f"--priority lists a structure twice: {text}")
    return names or None
