"""Size limits checked before allocating memory or extracting archives (documented in docs/io.md)."""

from __future__ import annotations

from pathlib import Path

from limbseg.errors import LimbsegError

#: Largest image accepted, in voxels (2048^3 / 4: a whole-body scan at 0.5 mm is far below).
MAX_VOXELS = 2048 * 2048 * 512
#: Largest image accepted, in bytes once decoded.
MAX_BYTES = 8 * 1024**3
#: Archive limits: number of entries, total uncompressed size, and compression ratio.
MAX_ARCHIVE_ENTRIES = 20_000
MAX_ARCHIVE_BYTES = 8 * 1024**3
MAX_ARCHIVE_RATIO = 200.0
#: Most a gzip/zlib stream can expand (deflate's theoretical limit is 1032:1); bounds what a compressed
#: file can hold before its declared size is allocated.
MAX_GZIP_RATIO = 1100


def check_image_size(shape: tuple[int, ...], itemsize: int, path: str | Path) -> None:
    """Refuse, before allocating, an image whose header declares an absurd size."""
    if any(int(s) <= 0 for s in shape):
        raise LimbsegError(f"header declares an empty or negative size {tuple(shape)}", path)
    n = 1
    for s in shape:
        n *= int(s)
    if n > MAX_VOXELS or n * itemsize > MAX_BYTES:
        raise LimbsegError(
            f"header declares {tuple(int(s) for s in shape)} voxels ({n * itemsize / 1e9:.1f} GB), "
            f"over the limit of {MAX_VOXELS} voxels / {MAX_BYTES / 1e9:.0f} GB",
            path,
        )
