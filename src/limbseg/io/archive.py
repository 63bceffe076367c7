"""Safe extraction of zip archives (DICOM exports, GUI uploads).

Every entry is checked before anything is written: the number of entries, the declared total
size and compression ratio (limits in :mod:`limbseg.io.limits`), names that would land outside
the destination (``../``, absolute paths, drive letters), symbolic links and encrypted entries.
While extracting, the bytes actually written are counted too (headers can lie); on any failure
the files written so far are removed.
"""

from __future__ import annotations

import lzma
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from limbseg.errors import LimbsegError
from limbseg.io import limits

_CHUNK = 1 << 20


def _safe_relative(name: str, zip_path: Path) -> PurePosixPath:
    """The entry's path relative to the destination, or an error when it would escape it."""
    clean = name.replace("\\", "/")
    rel = PurePosixPath(clean)
    if clean.startswith("/") or (len(clean) > 1 and clean[1] == ":") or ".." in rel.parts:
        raise LimbsegError(f"archive entry {name!r} points outside the extraction folder; refused", zip_path)
    return rel


def _check_entries(infos: list[zipfile.ZipInfo], zip_path: Path, max_entries: int, max_bytes: int,
                   max_ratio: float) -> None:
    if len(infos) > max_entries:
        raise LimbsegError(f"archive has {len(infos)} entries, over the limit of {max_entries}", zip_path)
    total = sum(i.file_size for i in infos)
    packed = sum(i.compress_size for i in infos)
    if total > max_bytes:
        raise LimbsegError(f"archive expands to {total / 1e9:.2f} GB, over the limit of "
                           f"{max_bytes / 1e9:.2f} GB", zip_path)
    if total > _CHUNK and total > max_ratio * max(packed, 1):
        raise LimbsegError(f"archive compression ratio {total / max(packed, 1):.0f} is over the limit of "
                           f"{max_ratio:.0f} (zip bomb?)", zip_path)
    for info in infos:
        _safe_relative(info.filename, zip_path)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise LimbsegError(f"archive entry {info.filename!r} is a symbolic link; refused", zip_path)
        if info.flag_bits & 0x1:
            raise LimbsegError(f"archive entry {info.filename!r} is encrypted", zip_path)


def safe_extract(
    zip_path: str | Path,
    dest: str | Path,
    *,
    max_entries: int | None = None,
    max_bytes: int | None = None,
    max_ratio: float | None = None,
) -> list[Path]:
    """Extract a zip archive into ``dest`` (created if needed); return the files written.

    Limits default to :data:`limits.MAX_ARCHIVE_ENTRIES`, :data:`limits.MAX_ARCHIVE_BYTES` and
    :data:`limits.MAX_ARCHIVE_RATIO`. Raises LimbsegError (nothing left behind) when the archive
    is unreadable or breaks a limit or a path rule.
    """
    zip_path, dest = Path(zip_path), Path(dest)
    max_entries = limits.MAX_ARCHIVE_ENTRIES if max_entries is None else max_entries
    max_bytes = limits.MAX_ARCHIVE_BYTES if max_bytes is None else max_bytes
    max_ratio = limits.MAX_ARCHIVE_RATIO if max_ratio is None else max_ratio
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise LimbsegError(f"not a readable zip archive ({exc})", zip_path) from exc
    written: list[Path] = []
    with zf:
        infos = zf.infolist()
        _check_entries(infos, zip_path, max_entries, max_bytes, max_ratio)
        dest.mkdir(parents=True, exist_ok=True)
        root = dest.resolve()
        try:
            budget = max_bytes
            for info in infos:
                target = (root / _safe_relative(info.filename, zip_path)).resolve()
                if not target.is_relative_to(root):
                    raise LimbsegError(f"archive entry {info.filename!r} points outside the folder", zip_path)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                written.append(target)
                budget -= _copy_entry(zf, info, target, budget, zip_path)
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
    return written


def _copy_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: int, zip_path: Path) -> int:
    """Copy one entry, refusing more bytes than declared or than the remaining budget."""
    allowed = min(info.file_size, budget)
    n = 0
    try:
        with zf.open(info) as src, open(target, "wb") as dst:
            while chunk := src.read(_CHUNK):
                n += len(chunk)
                if n > allowed:
                    raise LimbsegError(f"archive entry {info.filename!r} is larger than declared", zip_path)
                dst.write(chunk)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, zlib.error, lzma.LZMAError,
            NotImplementedError, RuntimeError) as exc:
        # zlib.error: corrupt deflate data; NotImplementedError: an unknown compression method;
        # RuntimeError: an encrypted entry
        raise LimbsegError(f"corrupt archive entry {info.filename!r} ({type(exc).__name__}: {exc})",
                           zip_path) from exc
    return n

