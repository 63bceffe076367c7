"""User-facing errors.

Anything the user can fix (a bad path, a corrupt file, an incompatible model) raises
:class:`LimbsegError` with a one-line message that names the file and the problem.
The CLI prints it on one line and exits with code 2; other exceptions are bugs.
"""

from __future__ import annotations

from pathlib import Path


class LimbsegError(Exception):
    """An error caused by the input or the environment, reported to the user in one line."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = str(path) if path is not None else None
        super().__init__(f"{path}: {message}" if path is not None else message)
