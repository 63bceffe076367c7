"""NRRD reading and writing with pynrrd; NRRD files here use the LPS 'space' convention."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nrrd
import numpy as np

from limbseg.errors import LimbsegError
from limbseg.io.atomic import atomic_path
from limbseg.io.guard import reading
from limbseg.io.limits import MAX_GZIP_RATIO, check_image_size
from limbseg.volume import LPS_TO_RAS, Volume

_SPACE_TO_RAS = {
    "left-posterior-superior": LPS_TO_RAS,
    "right-anterior-superior": np.eye(4),
    "left-anterior-superior": np.diag([-1.0, 1.0, 1.0, 1.0]),
}


def nrrd_header_affine(header: dict[str, Any], path: str | Path) -> np.ndarray:
    """The RAS affine of a NRRD header (space directions + space origin)."""
    space = str(header.get("space", "left-posterior-superior")).lower()
    space = {"lps": "left-posterior-superior", "ras": "right-anterior-superior"}.get(space, space)
    if space not in _SPACE_TO_RAS:
        raise LimbsegError(f"unsupported NRRD space {space!r}", path)
    dirs = header.get("space directions")
    if dirs is None:
        raise LimbsegError("NRRD header has no 'space directions'", path)
    dirs = [d for d in dirs if d is not None and not (isinstance(d, float) and np.isnan(d))]
    dirs = np.array([np.asarray(d, dtype=float) for d in dirs if not np.all(np.isnan(np.asarray(d, float)))])
    if dirs.shape != (3, 3):
        raise LimbsegError(f"expected 3 spatial axes, found space directions {dirs.shape}", path)
    affine = np.eye(4)
    affine[:3, :3] = dirs.T
    affine[:3, 3] = np.asarray(header.get("space origin", [0, 0, 0]), dtype=float)
    return _SPACE_TO_RAS[space] @ affine


def read_nrrd(path: str | Path) -> Volume:
    """Read a 3D NRRD image (attached data, or a detached data file in the header's folder)."""
    path = Path(path)
    with reading(path, "NRRD file"):  # pynrrd raises many types for corrupt files
        return _read(path)


def _read(path: Path) -> Volume:
    header = nrrd.read_header(str(path))
    sizes = tuple(int(s) for s in header.get("sizes", ()))
    dtype = np.dtype(header.get("type", "uint8")) if str(header.get("type", "")).isidentifier() else np.dtype("f8")
    check_image_size(sizes, max(dtype.itemsize, 1), path)
    _check_data_size(header, path, int(np.prod(sizes)) * max(dtype.itemsize, 1))
    affine = nrrd_header_affine(header, path)
    data, _ = nrrd.read(str(path))
    if data.ndim == 4 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 3:
        raise LimbsegError(f"expected a 3D image, found shape {data.shape}", path)
    return Volume(np.asarray(data), affine, {"source": path.name})


def lps_header(volume: Volume) -> dict[str, Any]:
    """pynrrd header fields describing the volume's grid in LPS."""
    lps = LPS_TO_RAS @ volume.affine
    return {
        "space": "left-posterior-superior",
        "space directions": lps[:3, :3].T.tolist(),
        "space origin": lps[:3, 3].tolist(),
        "kinds": ["domain", "domain", "domain"],
    }


def write_nrrd(volume: Volume, path: str | Path, extra: dict[str, Any] | None = None) -> None:
    header = {**lps_header(volume), "encoding": "gzip", **(extra or {})}
    array = volume.array.astype(np.uint8) if volume.array.dtype == np.bool_ else volume.array
    with atomic_path(path) as tmp:
        nrrd.write(str(tmp), np.ascontiguousarray(array), header, index_order="F")


def _check_data_size(header: dict[str, Any], path: Path, nbytes: int) -> None:
    """Refuse, before pynrrd allocates ``nbytes``, data that cannot be there: a detached data file outside
    the header's folder (or not a regular file), or raw/compressed data too short for the declared sizes."""
    name = header.get("data file", header.get("datafile"))
    if name is not None:
        if not isinstance(name, str) or name.upper().startswith("LIST") or "%" in name:
            raise LimbsegError("NRRD data file lists are not supported", path)
        data_path = (path.parent / name).resolve()
        if not data_path.is_relative_to(path.parent.resolve()) or not data_path.is_file():
            raise LimbsegError(f"NRRD data file {name!r} is not a file next to the header", path)
        available = data_path.stat().st_size
    else:
        with path.open("rb") as fh:
            head = fh.read(1 << 16)
        end = head.find(b"\n\n")
        available = path.stat().st_size - (end + 2 if end >= 0 else len(head))
    available -= max(int(header.get("byte skip", 0) or 0), 0)
    encoding = str(header.get("encoding", "raw")).lower()
    room = available if encoding == "raw" else available * MAX_GZIP_RATIO if encoding in ("gzip", "gz") else None
    if room is not None and nbytes > room:
        raise LimbsegError(f"truncated NRRD data: the header declares {nbytes} bytes, the file holds {available}", path)
