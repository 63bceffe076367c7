"""Importing a study as an nnU-Net v2 raw dataset (``limbseg prepare``).

Layout (images and labels in the scan's native geometry, exact affines)::

    DIR/dataset.json  DIR/imagesTr/<case>_0000.nii.gz  DIR/labelsTr/<case>.nii.gz  DIR/prepare_report.json

The manifest is a CSV file with one row per subject: ``id``, ``scan``, then one column per
structure named after the labels whose value is a mask image path or one or more mesh paths
separated by ``;`` (an empty cell: structure not labelled). Relative paths resolve against the
manifest's folder. :func:`write_dataset_case` and :func:`write_dataset_json` are shared with
the virtual cohort generator.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from limbseg.data.labelmaps import (
    CaseRefused,
    LabelReport,
    binary_mask_on_grid,
    check_structures,
    finish_label_map,
    labels_from_meshes,
    mask_from_meshes,
    merge_label_masks,
)
from limbseg.errors import LimbsegError
from limbseg.labels import LabelScheme
from limbseg.volume import LabelMap, Volume

__all__ = [
    "CaseRefused", "LabelReport", "labels_from_meshes", "merge_label_masks", "prepare_dataset",
    "write_dataset_case", "write_dataset_json",
]

CASE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def check_case_id(case_id: str) -> str:
    """Refuse case ids that are not safe file names (letters, digits, '.', '_', '-'; no separators)."""
    if not CASE_ID_PATTERN.match(case_id or "") or ".." in case_id:
        raise CaseRefused("invalid id", f"case id {case_id!r} is not a safe file name "
                          "(use letters, digits, '.', '_' and '-'; no path separators)")
    return case_id


def case_paths(dataset_dir: str | Path, case_id: str) -> tuple[Path, Path]:
    """(image, label) paths of a case in an nnU-Net v2 raw dataset."""
    d = Path(dataset_dir)
    check_case_id(case_id)
    return d / "imagesTr" / f"{case_id}_0000.nii.gz", d / "labelsTr" / f"{case_id}.nii.gz"


def write_dataset_case(dataset_dir: str | Path, case_id: str, image: Volume, labels: LabelMap) -> tuple[Path, Path]:
    """Write one case (image and uint8 labels, same grid, exact affines) atomically.

    Returns:
        (image path, label path).
    """
    from limbseg.io.nifti import write_nifti

    if not labels.same_grid(image):
        raise LimbsegError(f"case {case_id}: labels grid {labels.shape} differs from the image grid {image.shape}")
    img_path, lab_path = case_paths(dataset_dir, case_id)
    write_nifti(image, img_path)
    write_nifti(Volume(labels.array.astype(np.uint8), image.affine.copy()), lab_path)
    return img_path, lab_path


def case_is_complete(dataset_dir: str | Path, case_id: str) -> bool:
    """True when both files of the case exist and their headers read with the same grid."""
    import nibabel as nib

    img_path, lab_path = case_paths(dataset_dir, case_id)
    if not (img_path.is_file() and lab_path.is_file()):
        return False
    try:
        a, b = nib.load(str(img_path)), nib.load(str(lab_path))
        same_shape = a.shape == b.shape  # type: ignore[attr-defined]
        return same_shape and bool(np.allclose(a.affine, b.affine, atol=1e-4))  # type: ignore[attr-defined]
    except Exception:
        return False


def write_dataset_json(
    dataset_dir: str | Path, scheme: LabelScheme, n_cases: int, extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``DIR/dataset.json`` (nnU-Net v2) atomically.

    ``extra`` goes into the ``"limbseg"`` provenance entry (tool version, source, overlap rule ...).
    """
    from limbseg import __version__
    from limbseg.io.atomic import atomic_path

    data = {
        "channel_names": {"0": "MRI"},
        "labels": scheme.to_dataset_labels(),
        "numTraining": int(n_cases),
        "file_ending": ".nii.gz",
        "limbseg": {"version": __version__, "geometry": "native", "scheme": scheme.to_json(), **dict(extra or {})},
    }
    path = Path(dataset_dir) / "dataset.json"
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def count_complete_cases(dataset_dir: str | Path) -> int:
    """Number of cases whose image and label files are both present."""
    labels_dir = Path(dataset_dir) / "labelsTr"
    if not labels_dir.is_dir():
        return 0
    ids = [p.name[: -len(".nii.gz")] for p in labels_dir.glob("*.nii.gz") if not p.name.startswith(".")]
    return sum((Path(dataset_dir) / "imagesTr" / f"{i}_0000.nii.gz").is_file() for i in ids)


@dataclass
class ManifestCase:
    """One manifest row: case id, scan path and per-structure mask/mesh paths (absolute)."""

    line: int
    case_id: str
    scan: Path
    structures: dict[str, list[Path]]


@dataclass
class PrepareResult:
    """Summary of a ``prepare`` run (also written as ``prepare_report.json``)."""

    imported: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    refused: list[dict[str, str]] = field(default_factory=list)
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)
    n_cases: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"imported": self.imported, "skipped": self.skipped, "refused": self.refused,
                "cases": self.cases, "numTraining": self.n_cases}


def read_manifest(path: str | Path, scheme: LabelScheme) -> list[ManifestCase]:
    """Read a manifest CSV (columns ``id``, ``scan``, then structures of ``scheme``)."""
    path = Path(path)
    if not path.is_file():
        raise LimbsegError("no such manifest file", path)
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise LimbsegError(f"not a readable CSV manifest ({exc})", path) from exc
    if not rows:
        raise LimbsegError("manifest is empty", path)
    header = [h.strip().lower() for h in rows[0]]
    if "id" not in header or "scan" not in header:
        raise LimbsegError("manifest needs the columns 'id' and 'scan' (then one column per structure)", path)
    if len(set(header)) != len(header):
        raise LimbsegError("manifest has duplicate column names", path)
    names = [h for h in header if h not in ("id", "scan")]
    if not names:
        raise LimbsegError(f"manifest has no structure column (use: {', '.join(scheme.names)})", path)
    try:
        check_structures(names, scheme, "manifest column")
    except LimbsegError as exc:
        raise LimbsegError(str(exc), path) from exc
    base = path.parent
    cases = []
    for line, row in enumerate(rows[1:], start=2):
        cells = dict(zip(header, (c.strip() for c in row), strict=False))
        if not any(cells.values()):
            continue
        structures = {n: [_resolve(base, p) for p in cells.get(n, "").split(";") if p.strip()] for n in names}
        cases.append(ManifestCase(line, cells.get("id", ""), _resolve(base, cells.get("scan", "")),
                                  {n: ps for n, ps in structures.items() if ps}))
    if not cases:
        raise LimbsegError("manifest lists no case", path)
    return cases


def _resolve(base: Path, value: str) -> Path:
    p = Path(value.strip()).expanduser()
    return p if p.is_absolute() else base / p


def structure_mask(scan: Volume, name: str, paths: Sequence[Path], space: str, report: LabelReport) -> np.ndarray:
    """Boolean (I, J, K) mask of one structure on the scan grid: union of its mask images and meshes."""
    from limbseg.io import read_image
    from limbseg.io.mesh import is_mesh_path, read_mesh

    out = np.zeros(scan.shape, dtype=bool)
    mesh_paths = [p for p in paths if is_mesh_path(p)]
    for p in paths:
        if not is_mesh_path(p):
            out |= binary_mask_on_grid(scan, name, read_image(p), report, p)
    if mesh_paths:
        meshes = [read_mesh(p, space=space) for p in mesh_paths]
        out |= mask_from_meshes(scan, name, meshes, mesh_paths)
    return out


def build_case(
    case: ManifestCase, scheme: LabelScheme, priority: Sequence[str] | None, space: str
) -> tuple[Volume, LabelMap, LabelReport]:
    """Read one case's scan and build its label map; refuse it (CaseRefused) when something is wrong."""
    from limbseg.io import read_image

    for p in [case.scan, *(p for ps in case.structures.values() for p in ps)]:
        if not p.exists():
            raise CaseRefused("missing file", "file not found", p)
    if not case.structures:
        raise CaseRefused("no labels", "the row gives no mask or mesh")
    scan = read_image(case.scan)
    report = LabelReport()
    masks = {n: structure_mask(scan, n, ps, space, report) for n, ps in case.structures.items()}
    labels, report = finish_label_map(scan, masks, scheme, priority, report)
    if report.empty:
        raise CaseRefused("empty mask", f"no voxel of {', '.join(report.empty)} on the scan grid "
                          "(empty mask, or all lost to overlaps)")
    return scan, labels, report


def _check_existing(dataset_dir: Path, scheme: LabelScheme) -> None:
    if dataset_dir.exists() and not dataset_dir.is_dir():
        raise LimbsegError("output exists and is not a folder", dataset_dir)
    existing = dataset_dir / "dataset.json"
    if existing.is_file():
        try:
            labels = json.loads(existing.read_text(encoding="utf-8")).get("labels")
        except (OSError, ValueError, AttributeError) as exc:
            raise LimbsegError(f"existing dataset.json is not readable ({exc})", existing) from exc
        if labels != scheme.to_dataset_labels():
            raise LimbsegError("the dataset was prepared with other labels; use a new output folder", existing)


def _import_case(case: ManifestCase, dataset_dir: Path, scheme: LabelScheme, priority: Sequence[str] | None, space: str,
                 overwrite: bool, seen: set[str], result: PrepareResult) -> None:
    """Import one manifest case, recording it in ``result`` as imported, skipped or refused (with the reason)."""
    try:
        check_case_id(case.case_id)
        if case.case_id in seen:
            raise CaseRefused("duplicate id", f"case id {case.case_id!r} appears twice (line {case.line})")
        seen.add(case.case_id)
        if not overwrite and case_is_complete(dataset_dir, case.case_id):
            result.skipped.append(case.case_id)
            return
        scan, labels, report = build_case(case, scheme, priority, space)
        write_dataset_case(dataset_dir, case.case_id, scan, labels)
    except LimbsegError as exc:
        category = exc.category if isinstance(exc, CaseRefused) else "unreadable"
        result.refused.append({"id": case.case_id, "line": str(case.line), "category": category,
                               "reason": str(exc)})
        return
    result.imported.append(case.case_id)
    result.cases[case.case_id] = report.as_dict()


def prepare_dataset(
    manifest: str | Path,
    dataset_dir: str | Path,
    scheme: LabelScheme,
    priority: Sequence[str] | None = None,
    space: str = "LPS",
    progress: bool = True,
    overwrite: bool = False,
    on_case: Callable[[int, int, str], None] | None = None,
) -> PrepareResult:
    """Import the cases of a manifest into an nnU-Net v2 raw dataset; finished cases are skipped.

    Refused cases (missing file, unreadable file, geometry mismatch, empty mask, invalid or duplicate
    id) are listed with their reasons; overlaps are warnings. Raises LimbsegError (nothing written)
    when the manifest is invalid or no case could be imported. ``on_case(done, total, case_id)`` is called
    after each case (the GUI's progress).
    """
    from tqdm import tqdm

    cases = read_manifest(manifest, scheme)
    if priority:
        check_structures(priority, scheme, "structure in --priority")
    dataset_dir = Path(dataset_dir)
    _check_existing(dataset_dir, scheme)
    result, seen = PrepareResult(), set()
    for number, case in enumerate(tqdm(cases, desc="prepare", unit="case", disable=not progress), start=1):
        _import_case(case, dataset_dir, scheme, priority, space, overwrite, seen, result)
        if on_case:
            on_case(number, len(cases), case.case_id)
    if not result.imported and not result.skipped:
        first = result.refused[0]
        raise LimbsegError(f"no case could be imported (first: {first['id']}: {first['reason']})", manifest)
    result.n_cases = count_complete_cases(dataset_dir)
    extra = {"source": "limbseg prepare", "manifest": Path(manifest).name, "mesh_space": space,
             "overlap_rule": {"priority": list(priority)} if priority else "background"}
    write_dataset_json(dataset_dir, scheme, result.n_cases, extra)
    _write_report(dataset_dir, result)
    return result


def _write_report(dataset_dir: Path, result: PrepareResult) -> None:
    from limbseg.io.atomic import atomic_path

    with atomic_path(dataset_dir / "prepare_report.json") as tmp:
        tmp.write_text(json.dumps(result.as_dict(), indent=2) + "\n", encoding="utf-8")
