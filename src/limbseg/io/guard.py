"""The one place where exceptions of file parsers become :class:`~limbseg.errors.LimbsegError`.

Third-party readers (pydicom, nibabel, pynrrd, SimpleITK, trimesh, safetensors, json, csv) raise
dozens of exception types for corrupt or hostile files: ``NotImplementedError`` for an unknown DICOM
value representation, ``struct.error`` for a short header, ``IndexError`` in a face list, ``zlib.error``
and so on. Reading code runs inside :func:`reading`, which turns any of them into one
``LimbsegError`` naming the file and the problem; the original exception stays attached as
``__cause__`` (``--debug`` shows it). A ``LimbsegError`` raised inside passes through unchanged,
and ``BaseException`` (KeyboardInterrupt, SystemExit) is never caught.

Use it at the entry points that read user files (``read_image``, ``list_series``, ``read_mesh``, and
per DICOM file so that the message names the slice), not around single library calls.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from limbseg.errors import LimbsegError

log = logging.getLogger(__name__)

#: Longest part of a parser's message kept in the one-line error.
MAX_DETAIL = 160


def describe(exc: BaseException) -> str:
    """``Type: first line of the message`` (shortened), e.g. ``NotImplementedError: Unknown VR``."""
    text = str(exc).strip().splitlines()
    detail = "".join(c if c.isprintable() else "?" for c in text[0].strip()) if text else ""  # bytes of the file
    if len(detail) > MAX_DETAIL:
        detail = detail[:MAX_DETAIL - 3] + "..."
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


@contextlib.contextmanager
def reading(path: str | Path, what: str = "file") -> Iterator[None]:
    """Run a block that reads ``path``; parser exceptions become ``LimbsegError(path)``.

    Args:
        path: the file or folder named in the error.
        what: what it was read as, e.g. ``"DICOM file"``, ``"NIfTI file"``, ``"mesh"``.
    """
    try:
        yield
    except LimbsegError:
        raise
    except MemoryError as exc:
        raise LimbsegError(f"not enough memory to read this {what}", path) from exc
    except Exception as exc:  # noqa: BLE001 - the contract: every parser failure is a user error
        log.debug("reading %s failed", path, exc_info=True)
        raise LimbsegError(f"truncated or corrupt {what} ({describe(exc)})", path) from exc
