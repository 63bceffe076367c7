"""DICOM series discovery: find DICOM files, read their headers and group them into series.

Files are grouped by SeriesInstanceUID, then by ImageOrientationPatient and matrix size, so
slices of different orientations (3-plane localizers, several stacks in one series) are
never mixed. Non-DICOM files (no ``DICM`` marker) are skipped; a file that has the marker
but is truncated or unreadable is an error naming it. Patient identity is never read into
the records kept here.
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from limbseg.errors import LimbsegError
from limbseg.io.guard import reading

log = logging.getLogger(__name__)

#: A series needs at least this many slices to count as a 3D image (fewer: localizer-like).
MIN_IMAGE_SLICES = 3
#: Angle (degrees) within which a slice normal is called axial / coronal / sagittal.
PLANE_TOLERANCE_DEG = 10.0
#: Non-image storage classes (no pixel data expected).
_NON_IMAGE_CLASSES = ("1.2.840.10008.1.3.10",)  # Media Storage Directory (DICOMDIR)
_IMAGE_CLASS_PREFIX = "1.2.840.10008.5.1.4.1.1."
_NON_IMAGE_SUBCLASSES = ("11.", "88.", "481.", "66", "104.", "9.")  # presentation states, SR, RT, registration...


@dataclass
class SliceHeader:
    """What is needed from one DICOM file to place its slice (LPS, mm); no patient data."""

    path: Path
    series_uid: str
    modality: str
    description: str
    image_type: tuple[str, ...]
    rows: int
    cols: int
    iop: tuple[float, ...] | None  # row cosine (3) + column cosine (3), LPS
    ipp: tuple[float, float, float] | None  # LPS mm of the first transmitted pixel
    pixel_spacing: tuple[float, float] | None  # (row spacing = along j, column spacing = along i)
    slice_thickness: float | None
    instance_number: int | None
    bits_allocated: int
    samples_per_pixel: int
    n_frames: int
    transfer_syntax: str
    slope: float
    intercept: float


@dataclass
class SeriesInfo:
    """One stack of slices: a series, or one orientation of a series that holds several.

    ``key`` is what ``--series`` accepts: the SeriesInstanceUID, with ``:N`` appended when the
    series holds several orientations or matrix sizes. ``files`` are unsorted (discovery order).
    """

    uid: str
    description: str
    modality: str
    orientation: str
    n_slices: int
    rows: int
    cols: int
    is_image: bool
    files: list[Path] = field(default_factory=list)
    key: str = ""
    headers: list[SliceHeader] = field(default_factory=list, repr=False)

    @property
    def size_label(self) -> str:
        """``COLSxROWSxN`` i.e. the (i, j, k) shape of the volume it makes."""
        return f"{self.cols}x{self.rows}x{self.n_slices}"


def _floats(value: object, n: int) -> tuple[float, ...] | None:
    try:
        out = tuple(float(v) for v in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return None
    return out if len(out) == n and all(np.isfinite(out)) else None


def _one_float(value: object, default: float | None) -> float | None:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return out if np.isfinite(out) else default


def has_dicm_marker(path: Path) -> bool:
    """True for a DICOM Part 10 file (``DICM`` at byte 128)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _expects_pixels(ds: object, sop_class: str) -> bool:
    if "Rows" in ds:  # type: ignore[operator]
        return True
    if sop_class in _NON_IMAGE_CLASSES or not sop_class.startswith(_IMAGE_CLASS_PREFIX):
        return False
    return not sop_class[len(_IMAGE_CLASS_PREFIX):].startswith(_NON_IMAGE_SUBCLASSES)


def read_header(path: Path) -> SliceHeader | None:
    """The slice header of a DICOM image file; None for DICOM files without an image.

    Raises LimbsegError for a DICOM file that is truncated or cannot be parsed. pydicom converts
    elements lazily, on first access, so a corrupt element (an unknown VR, a bad length) fails below
    ``dcmread``: the whole function runs under :func:`~limbseg.io.guard.reading`.
    """
    with reading(path, "DICOM file"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lazily converted values warn here, not in dcmread
        return _slice_header(dcmread_bounded(path, defer_size=1024), path)


class _BoundedReader(io.BufferedReader):
    """A binary file whose ``read(n)`` never asks for more than the bytes left in the file.

    pydicom reads an element's value with ``fp.read(length)``, and Python allocates ``length`` bytes
    before reading: a corrupt length of 4 GB in a 1 kB file would allocate 4 GB.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(io.FileIO(str(path), "rb"))  # a str name: pydicom reopens it for deferred values
        self._size = os.fstat(self.fileno()).st_size

    def read(self, size: int | None = -1) -> bytes:
        if size is not None and size >= 0:
            size = min(size, max(self._size - self.tell(), 0))
        return super().read(size)


def dcmread_bounded(path: Path, **kwargs: Any) -> Any:
    """``pydicom.dcmread`` through :class:`_BoundedReader`, warnings silenced (corrupt files make many)."""
    import pydicom

    with _BoundedReader(path) as fh, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(fh, **kwargs)


def _slice_header(ds: Any, path: Path) -> SliceHeader | None:
    meta = getattr(ds, "file_meta", None)
    sop_class = str(getattr(meta, "MediaStorageSOPClassUID", "") or ds.get("SOPClassUID", ""))
    has_pixels = any(t in ds for t in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))
    if not has_pixels:
        if _expects_pixels(ds, sop_class):
            raise LimbsegError("truncated or corrupt DICOM file (image without pixel data)", path)
        return None
    if "SeriesInstanceUID" not in ds or "Rows" not in ds or "Columns" not in ds:
        raise LimbsegError("corrupt DICOM image (no SeriesInstanceUID, Rows or Columns)", path)
    ts = str(getattr(meta, "TransferSyntaxUID", "") or "1.2.840.10008.1.2")
    spacing = _floats(ds.get("PixelSpacing"), 2)
    return SliceHeader(
        path=path,
        series_uid=str(ds.SeriesInstanceUID),
        modality=str(ds.get("Modality", "") or ""),
        description=str(ds.get("SeriesDescription", "") or ""),
        image_type=tuple(str(v).upper() for v in (ds.get("ImageType") or ())),
        rows=int(ds.Rows),
        cols=int(ds.Columns),
        iop=_floats(ds.get("ImageOrientationPatient"), 6),
        ipp=_floats(ds.get("ImagePositionPatient"), 3),  # type: ignore[arg-type]
        pixel_spacing=spacing,  # type: ignore[arg-type]
        slice_thickness=_one_float(ds.get("SliceThickness"), None),
        instance_number=int(ds.InstanceNumber) if ds.get("InstanceNumber") not in (None, "") else None,
        bits_allocated=int(ds.get("BitsAllocated", 16) or 16),
        samples_per_pixel=int(ds.get("SamplesPerPixel", 1) or 1),
        n_frames=int(ds.get("NumberOfFrames", 1) or 1),
        transfer_syntax=ts,
        slope=_one_float(ds.get("RescaleSlope"), 1.0) or 1.0,
        intercept=_one_float(ds.get("RescaleIntercept"), 0.0) or 0.0,
    )


def iter_files(folder: Path) -> Iterable[Path]:
    """Every regular file under ``folder`` (recursively, sorted, symlinks not followed)."""
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            p = Path(root) / name
            if p.is_file() and not p.is_symlink():
                yield p


def scan_headers(folder: Path) -> list[SliceHeader]:
    """Headers of all DICOM image files under ``folder``; raises if there are none."""
    if not folder.is_dir():
        raise LimbsegError("not a folder", folder)
    headers: list[SliceHeader] = []
    n_files = 0
    for path in iter_files(folder):
        n_files += 1
        if not has_dicm_marker(path):
            continue
        header = read_header(path)
        if header is not None:
            headers.append(header)
    if n_files == 0:
        raise LimbsegError("folder is empty", folder)
    if not headers:
        raise LimbsegError(f"no DICOM images found among {n_files} files", folder)
    return headers


def normal_of(iop: tuple[float, ...]) -> np.ndarray:
    """Unit slice normal (row cosine x column cosine), LPS."""
    n = np.cross(np.asarray(iop[:3]), np.asarray(iop[3:]))
    return n / (np.linalg.norm(n) or 1.0)


def orientation_label(iop: tuple[float, ...] | None) -> str:
    """'axial', 'coronal', 'sagittal' or 'oblique' from the slice normal (within 10 degrees)."""
    if iop is None:
        return "unknown"
    n = np.abs(normal_of(iop))
    axis = int(np.argmax(n))
    if n[axis] < np.cos(np.radians(PLANE_TOLERANCE_DEG)):
        return "oblique"
    return ("sagittal", "coronal", "axial")[axis]


def _group_key(h: SliceHeader) -> tuple:
    iop = tuple(round(v, 3) for v in h.iop) if h.iop is not None else None
    return (h.series_uid, iop, h.rows, h.cols)


def group_series(headers: list[SliceHeader]) -> list[SeriesInfo]:
    """Group slice headers into stacks (series UID, orientation, matrix size)."""
    groups: dict[tuple, list[SliceHeader]] = {}
    for h in headers:
        groups.setdefault(_group_key(h), []).append(h)
    per_uid: dict[str, int] = {}
    for key in groups:
        per_uid[key[0]] = per_uid.get(key[0], 0) + 1
    ordered = sorted(groups.items(), key=lambda kv: (kv[0][0], -len(kv[1]), str(kv[0][1]), kv[0][2:]))
    out: list[SeriesInfo] = []
    counter: dict[str, int] = {}
    for (uid, _iop, rows, cols), hs in ordered:
        counter[uid] = counter.get(uid, 0) + 1
        first = hs[0]
        n_frames = sum(h.n_frames for h in hs)
        localizer = any("LOCALIZER" in h.image_type for h in hs)
        is_image = (not localizer and n_frames >= MIN_IMAGE_SLICES and first.iop is not None
                    and first.ipp is not None and first.samples_per_pixel == 1)
        out.append(SeriesInfo(
            uid=uid, description=first.description, modality=first.modality,
            orientation=orientation_label(first.iop), n_slices=n_frames, rows=rows, cols=cols,
            is_image=is_image, files=[h.path for h in hs],
            key=uid if per_uid[uid] == 1 else f"{uid}:{counter[uid]}", headers=hs,
        ))
    return out


def default_series(series: list[SeriesInfo]) -> SeriesInfo | None:
    """The largest MR image series (by slice count, then matrix size); else the largest image series."""
    images = [s for s in series if s.is_image]
    mr = [s for s in images if s.modality.upper() == "MR"]
    pool = mr or images
    if not pool:
        return None
    return max(pool, key=lambda s: (s.n_slices, s.rows * s.cols, s.key))


def pick_series(series: list[SeriesInfo], wanted: str | None, source: Path) -> SeriesInfo:
    """The series named by ``wanted`` (a key or a SeriesInstanceUID), else the default one."""
    if wanted is None:
        chosen = default_series(series)
        if chosen is None:
            found = ", ".join(f"{s.key} ({s.orientation}, {s.n_slices} slices)" for s in series)
            raise LimbsegError(f"no 3D image series found (only localizers or single images: {found})", source)
        return chosen
    exact = [s for s in series if s.key == wanted]
    if exact:
        return exact[0]
    same_uid = [s for s in series if s.uid == wanted]
    if same_uid:
        chosen = max(same_uid, key=lambda s: (s.is_image, s.n_slices))
        if len(same_uid) > 1:
            log.warning("series %s holds %d stacks; reading %s (%s, %d slices)", wanted, len(same_uid),
                        chosen.key, chosen.orientation, chosen.n_slices)
        return chosen
    available = ", ".join(s.key for s in series)
    raise LimbsegError(f"series {wanted} not found; available: {available}", source)
