"""The subjects of a cohort: from a manifest CSV or from a folder of scans.

A manifest has a header row, one subject a row: an id column (``subject``, ``subject_id``, ``id`` or
``case``), a scan column (``scan``, ``scan_path``, ``path``, ``input`` or ``image``; relative paths are
taken from the manifest's folder) and any other columns (``age``, ``sex``, ``group`` ...), which are
carried into the cohort tables as they are. Commas, semicolons and tabs are recognised as separators.

A folder's entries are its scans: sub-folders (DICOM), ``.zip``, NIfTI, NRRD and MetaImage files, each a
subject named after the entry without its extension. Hidden entries and other files are ignored.

Subject ids name the output folders, so they are restricted to letters, digits, ``.``, ``_`` and ``-``.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from limbseg.errors import LimbsegError
from limbseg.io import IMAGE_SUFFIXES

ID_COLUMNS = ("subject", "subject_id", "id", "case")
SCAN_COLUMNS = ("scan", "scan_path", "path", "input", "image")
SCAN_SUFFIXES = (*IMAGE_SUFFIXES, ".zip")
#: Names in the output folder that belong to the cohort itself, not to a subject.
RESERVED = ("cohort_statistics.csv", "cohort_summary.md", "failures.csv", "cohort_plots")
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class Subject:
    """One scan of the cohort: its ``id`` (the output folder's name), ``scan`` path and the manifest's
    other columns (``extra``, column -> text, in the manifest's order)."""

    id: str
    scan: Path
    extra: dict[str, str] = field(default_factory=dict)


def read_subjects(source: str | Path, *, exclude: Path | None = None) -> list[Subject]:
    """The subjects of a manifest CSV or of a folder of scans (see the module docstring); a folder's entry
    at ``exclude`` (the cohort's own output folder, when it lies inside) is not a scan.

    Raises:
        LimbsegError: no such path, a manifest without id or scan column, an empty or unsafe id,
            two subjects with the same id, or no subject at all.
    """
    source = Path(source)
    if not source.exists():
        raise LimbsegError("no such manifest or folder", source)
    subjects = _from_folder(source, exclude) if source.is_dir() else _from_manifest(source)
    if not subjects:
        raise LimbsegError("no subjects found (a manifest CSV or a folder of scans is expected)", source)
    seen: set[str] = set()
    for s in subjects:
        if s.id in seen:
            raise LimbsegError(f"two subjects have the id {s.id!r}", source)
        seen.add(s.id)
    return subjects


def scan_name(path: Path) -> str:
    """A scan's name without its image extension (``a.nii.gz`` -> ``a``; folders keep their name)."""
    name = path.name
    for ext in SCAN_SUFFIXES:
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


def _check_id(subject_id: str, where: str, source: Path) -> str:
    if not _SAFE_ID.fullmatch(subject_id) or subject_id in RESERVED:
        raise LimbsegError(f"{where}: subject id {subject_id!r} cannot name a folder "
                           "(use letters, digits, '.', '_' and '-')", source)
    return subject_id


def _from_folder(folder: Path, exclude: Path | None) -> list[Subject]:
    subjects = []
    skip = exclude.resolve() if exclude is not None else None
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.resolve() == skip:
            continue
        if entry.is_dir() or entry.name.lower().endswith(SCAN_SUFFIXES):
            name = _check_id(scan_name(entry), f"entry {entry.name!r}", folder)
            subjects.append(Subject(name, entry.resolve()))
    return subjects


def _column(header: list[str], names: tuple[str, ...]) -> str | None:
    lower = {h.strip().lower(): h for h in header}
    return next((lower[n] for n in names if n in lower), None)


def _from_manifest(path: Path) -> list[Subject]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise LimbsegError(f"cannot read the manifest ({type(exc).__name__})", path) from None
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(text.splitlines(), dialect=dialect)
    header = list(reader.fieldnames or [])
    id_col, scan_col = _column(header, ID_COLUMNS), _column(header, SCAN_COLUMNS)
    if id_col is None or scan_col is None:
        kind, names = ("id", ID_COLUMNS) if id_col is None else ("scan", SCAN_COLUMNS)
        raise LimbsegError(f"the manifest has no {kind} column (one of: {', '.join(names)})", path)
    subjects = []
    for n, row in enumerate(reader, start=2):
        values = {k: (v or "").strip() for k, v in row.items() if k is not None}
        if not any(values.values()):
            continue
        subject_id, scan = values[id_col], values[scan_col]
        if not scan:
            raise LimbsegError(f"line {n}: no scan path", path)
        scan_path = Path(scan).expanduser()
        scan_path = scan_path if scan_path.is_absolute() else (path.parent / scan_path)
        extra = {k: v for k, v in values.items() if k not in (id_col, scan_col)}
        subjects.append(Subject(_check_id(subject_id, f"line {n}", path), scan_path.resolve(), extra))
    return subjects
