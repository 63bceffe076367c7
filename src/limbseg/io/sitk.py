"""SimpleITK bridge (LPS <-> RAS) and MetaImage reading/writing.

SimpleITK arrays are (k, j, i); limbseg arrays are (i, j, k).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from limbseg.errors import LimbsegError
from limbseg.io.atomic import atomic_path
from limbseg.io.guard import reading
from limbseg.io.limits import MAX_GZIP_RATIO, check_image_size
from limbseg.volume import LPS_TO_RAS, Volume


def sitk_to_volume(image: sitk.Image, meta: dict | None = None) -> Volume:
    """Convert a 3D SimpleITK image (LPS) to a Volume (RAS)."""
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError("expected a scalar 3D image")
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction * np.asarray(image.GetSpacing(), dtype=float)
    lps[:3, 3] = image.GetOrigin()
    array = sitk.GetArrayFromImage(image).transpose(2, 1, 0)
    return Volume(np.ascontiguousarray(array), LPS_TO_RAS @ lps, dict(meta or {}))


def volume_to_sitk(volume: Volume) -> sitk.Image:
    """Convert a Volume (RAS) to a SimpleITK image (LPS)."""
    array = volume.array.astype(np.uint8) if volume.array.dtype == np.bool_ else volume.array
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    lps = LPS_TO_RAS @ volume.affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    image.SetSpacing(spacing.tolist())
    image.SetDirection((lps[:3, :3] / spacing).flatten().tolist())
    image.SetOrigin(lps[:3, 3].tolist())
    return image


def read_metaimage(path: str | Path) -> Volume:
    """Read a 3D MetaImage (``.mha``, or ``.mhd`` with its data file in the same folder)."""
    path = Path(path)
    with reading(path, "MetaImage file"):  # ITK's exceptions come as RuntimeError with several lines
        return _read(path)


def _read(path: Path) -> Volume:
    fields, data_start = metaimage_header(path)
    _check_fields(fields, path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    native: list[str] = []
    try:
        with _native_stderr(native):
            reader.ReadImageInformation()
            check_image_size(reader.GetSize(), 8, path)
            _check_data_size(fields, data_start, path, reader.GetSize())
            image = reader.Execute()
    except RuntimeError as exc:  # ITK's own text is a source location; MetaIO said what is wrong on stderr
        if native:
            raise RuntimeError(native[0]) from exc
        raise
    if image.GetDimension() != 3:
        raise LimbsegError(f"expected a 3D image, found {image.GetDimension()}D", path)
    return sitk_to_volume(image, {"source": path.name})


def write_metaimage(volume: Volume, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        sitk.WriteImage(volume_to_sitk(volume), str(tmp), useCompression=True)


#: Bytes per component of MetaImage element types (unknown types count 1: a lower bound).
_MET_BYTES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
              "MET_LONG": 4, "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4, "MET_DOUBLE": 8}


def metaimage_header(path: Path) -> tuple[dict[str, str], int]:
    """The ``Key = Value`` fields of a MetaImage header (keys lower case) and the offset where its data
    starts (after the ``ElementDataFile`` line)."""
    with path.open("rb") as fh:
        head = fh.read(1 << 16)
    fields: dict[str, str] = {}
    at = 0
    for line in head.split(b"\n"):
        at += len(line) + 1
        key, sep, value = line.decode("latin-1").partition("=")
        if not sep:
            continue
        fields[key.strip().lower()] = value.strip()
        if key.strip().lower() == "elementdatafile":
            return fields, at
    raise LimbsegError("not a MetaImage header (no ElementDataFile line)", path)


def _check_fields(fields: dict[str, str], path: Path) -> None:
    """Refuse, before MetaIO parses them, header fields it does not survive: MetaIO keeps dimensions in
    fixed-size arrays and crashed the process (segmentation fault) on ``NDims = 65535``."""
    ndims = fields.get("ndims", "")
    if ndims.strip() != "3":
        raise LimbsegError(f"expected a 3D MetaImage, the header says NDims = {ndims[:40]!r}", path)
    dims = fields.get("dimsize", "").split()
    if len(dims) != 3 or not all(d.isdigit() and int(d) > 0 for d in dims):
        raise LimbsegError(f"DimSize must be three positive integers, found {fields.get('dimsize', '')[:40]!r}", path)
    if fields.get("elementnumberofchannels", "1").strip() != "1":
        raise LimbsegError("only scalar MetaImages (ElementNumberOfChannels = 1) are supported", path)


def _check_data_size(fields: dict[str, str], data_start: int, path: Path, size: tuple[int, ...]) -> None:
    """Refuse, before ITK allocates the image, data that cannot be there: a data file outside the header's
    folder, a file list, or (compressed) data too short for ``DimSize``."""
    name = fields["elementdatafile"]
    if name.upper() == "LOCAL":
        available = path.stat().st_size - data_start
    else:
        data_path = (path.parent / name).resolve()
        if not data_path.is_relative_to(path.parent.resolve()) or not data_path.is_file():
            raise LimbsegError(f"MetaImage data file {name!r} is not a file next to the header", path)
        available = data_path.stat().st_size
    itemsize = _MET_BYTES.get(fields.get("elementtype", "").upper(), 1)
    try:
        channels = max(int(fields.get("elementnumberofchannels", "1")), 1)
    except ValueError:
        channels = 1
    nbytes = int(np.prod([int(s) for s in size])) * itemsize * channels
    compressed = fields.get("compresseddata", "false").lower() == "true"
    if nbytes > available * (MAX_GZIP_RATIO if compressed else 1):
        raise LimbsegError(f"truncated MetaImage data: DimSize needs {nbytes} bytes, the file holds {available}"
                           + (" (compressed)" if compressed else ""), path)


@contextlib.contextmanager
def _native_stderr(lines: list[str]) -> Iterator[None]:
    """Capture what C++ code (MetaIO prints its parse errors with ``std::cerr``) writes to file descriptor 2
    while the block runs, into ``lines``: the CLI promises one error line, and the message is the useful part.
    Process-wide for the duration (other threads' stderr goes there too)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines += [ln.strip() for ln in tmp.read(1 << 16).decode("utf-8", "replace").splitlines() if ln.strip()]
