"""The cohort tables: ``cohort_statistics.csv`` and ``failures.csv``.

``cohort_statistics.csv`` has one row per subject, side and structure, gathered from each complete subject's
``statistics.csv`` and ``measurements.csv``: ``subject``, the manifest's other columns, ``structure``,
``side`` (``left``, ``right``, ``unknown``, or ``right-left`` for the differences), ``voxels``,
``volume_cm3``, ``length_mm`` (the bone's long-axis extent), ``touches_edge``, then one column per
measurement (``<name>_<unit>``, e.g. ``femoral_anteversion_deg``), filled on the row of the bone the
measurement belongs to (:data:`MEASUREMENT_BONE`) and empty elsewhere or when it could not be measured.
Values are copied as the subject's files wrote them (volumes cm³ and lengths mm to 4 decimals,
measurements to 2).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from limbseg.cohort.subjects import Subject
from limbseg.io.atomic import atomic_path
from limbseg.measure.definitions import MEASUREMENTS

STATISTICS_FILE = "cohort_statistics.csv"
FAILURES_FILE = "failures.csv"
STAT_COLUMNS = ["structure", "side", "voxels", "volume_cm3", "length_mm", "touches_edge"]
MEASUREMENT_COLUMNS = [f"{m.name}_{m.unit}" for m in MEASUREMENTS]
#: The structure whose rows carry each measurement: the first bone it needs.
MEASUREMENT_BONE = {m.name: m.bones[0] for m in MEASUREMENTS}
FAILURE_COLUMNS = ["subject", "scan", "error"]


def extra_columns(subjects: list[Subject]) -> dict[str, str]:
    """The manifest's own columns in order of appearance: table column -> manifest column (a name that the
    table uses already gets the prefix ``manifest_``)."""
    taken = {"subject", *STAT_COLUMNS, *MEASUREMENT_COLUMNS}
    names = dict.fromkeys(k for s in subjects for k in s.extra)
    return {(f"manifest_{n}" if n in taken else n): n for n in names}


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _measurements(folder: Path) -> dict[tuple[str, str], dict[str, str]]:
    """(side, structure) -> {measurement column: value} from the subject's ``measurements.csv``."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    for r in _read_csv(folder / "measurements.csv"):
        bone = MEASUREMENT_BONE.get(r.get("measurement", ""))
        if bone is not None and r.get("value"):
            out.setdefault((r["side"], bone), {})[f"{r['measurement']}_{r['unit']}"] = r["value"]
    return out


def subject_rows(subject: Subject, folder: Path, extras: dict[str, str]) -> list[dict[str, str]]:
    """The subject's rows of ``cohort_statistics.csv`` (see the module docstring); ``extras`` as from
    :func:`extra_columns`."""
    base = {"subject": subject.id, **{column: subject.extra.get(key, "") for column, key in extras.items()}}
    measured = _measurements(folder)
    rows = []
    for r in _read_csv(folder / "statistics.csv"):
        row = {**base, **{c: r.get(c, "") for c in STAT_COLUMNS}}
        if r.get("side") == "right-left":
            row.update(voxels="", touches_edge="", volume_cm3=r.get("volume_diff_cm3", ""),
                       length_mm=r.get("length_diff_mm", ""))
        row.update({c: "" for c in MEASUREMENT_COLUMNS})
        row.update(measured.get((row["side"], row["structure"]), {}))
        rows.append(row)
    return rows


def statistics_text(rows: list[dict[str, str]], extras: dict[str, str]) -> str:
    """``cohort_statistics.csv`` as text."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, ["subject", *extras, *STAT_COLUMNS, *MEASUREMENT_COLUMNS], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def failures_text(failures: list[dict[str, Any]]) -> str:
    """``failures.csv`` as text: subject, scan, the one-line error (header only when nothing failed)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, FAILURE_COLUMNS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(failures)
    return buffer.getvalue()


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` atomically unless it holds exactly that already; True when written."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return True


def as_number(text: str | None) -> float | None:
    """A table cell as a float (None when empty or not a number)."""
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None
