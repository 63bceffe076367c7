"""When is a subject done? A completion marker written after its outputs, and checked against them.

:func:`limbseg.pipeline.segment` moves a subject's folder into place only once every file is written.
The cohort then writes ``<subject>/cohort_done.json`` (atomically): the subject's *key* (which scan, its size,
which model and options) and the name and size of every file in the folder. A subject is complete when
the marker exists, its key equals the one asked for now, and every listed file is there with its size;
so a folder without a marker (a run stopped between the folder and the marker), a deleted or truncated
file, a changed scan or a different model or option all make the subject run again.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from limbseg.io.atomic import atomic_path

MARKER = "cohort_done.json"
REQUIRED = ("labels.nii.gz", "labels.json", "statistics.csv")


def input_fingerprint(scan: Path) -> dict[str, int]:
    """Number of files and bytes of a scan (a file, or every file under a DICOM folder); empty if missing.

    Sizes only, no times: copying a cohort to other storage keeps its subjects complete."""
    scan = Path(scan)
    if scan.is_file():
        return {"files": 1, "bytes": scan.stat().st_size}
    files = total = 0
    for root, _, names in os.walk(scan):
        for name in names:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                continue
            files += 1
    return {"files": files, "bytes": total} if files else {}


def output_files(directory: Path) -> dict[str, int]:
    """Every file under ``directory`` but the marker: relative POSIX path -> size in bytes."""
    out = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file() and path.name != MARKER:
            out[path.relative_to(directory).as_posix()] = path.stat().st_size
    return out


def write_marker(directory: Path, key: dict[str, Any], info: dict[str, Any]) -> Path:
    """Record ``directory`` as complete for ``key``; ``info`` (timings, worker ...) is kept beside it."""
    doc = {"key": key, "files": output_files(directory), **info}
    path = directory / MARKER
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def read_marker(directory: Path) -> dict[str, Any] | None:
    """The marker's content, or None when it is missing or unreadable."""
    try:
        doc = json.loads((directory / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def is_complete(directory: Path, key: dict[str, Any]) -> bool:
    """True when ``directory`` holds a finished subject for ``key`` (see the module docstring)."""
    doc = read_marker(directory)
    if doc is None or doc.get("key") != json.loads(json.dumps(key)):
        return False
    files = doc.get("files")
    if not isinstance(files, dict) or not all(name in files for name in REQUIRED):
        return False
    for name, size in files.items():
        try:
            if (directory / name).stat().st_size != size:
                return False
        except OSError:
            return False
    return True


def remove_leftovers(output_dir: Path, subject_id: str) -> None:
    """Remove what a killed run can leave of a subject beside its folder: the temporary ``.<id>.*.partial``
    folder of :func:`~limbseg.io.atomic.atomic_dir` and its ``.<id>.old``."""
    for path in output_dir.glob(f".{subject_id}.*.partial"):
        shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(output_dir / f".{subject_id}.old", ignore_errors=True)


def forget(directory: Path) -> None:
    """Remove a marker that no longer holds (before the subject runs again), so that a failure now
    cannot leave the old folder looking complete."""
    (directory / MARKER).unlink(missing_ok=True)
