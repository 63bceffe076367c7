"""Writing measurements: CSV, JSON, 3D Slicer markups per side, a cohort table and a QC picture.

Files (in the output folder):

- ``measurements.csv``: one row per side and measurement, then the ``right-left`` differences;
  columns :data:`CSV_COLUMNS`; landmarks as ``name x y z`` (RAS mm) separated by ``;``.
- ``measurements.json``: the same rows with the landmark coordinates as lists, the definitions,
  units and how the sides were found.
- ``landmarks_<side>.mrk.json``: the side's landmarks as a 3D Slicer markups point list (Slicer's
  markups schema 1.0.3, in LPS as Slicer expects: LPS = (-x, -y, z) of RAS).
- ``qc/measurements.png``: the axes drawn on the bones, front and top views (when drawn).
- ``cohort_measurements.csv`` (:func:`write_cohort`): one row per subject, one column per
  measurement and side.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from limbseg.io.atomic import atomic_path
from limbseg.measure.api import MeasureResult
from limbseg.measure.definitions import MEASUREMENTS

CSV_COLUMNS = ["case", "side", "measurement", "value", "unit", "status", "reason", "landmarks_ras_mm"]
MARKUPS_SCHEMA = ("https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/"
                  "Resources/Schema/markups-schema-v1.0.3.json#")
SIDE_COLOURS = {"left": [0.2, 0.6, 1.0], "right": [1.0, 0.4, 0.2]}


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def _landmark_text(landmarks: dict[str, list[float]]) -> str:
    return "; ".join(f"{k} {v[0]:.2f} {v[1]:.2f} {v[2]:.2f}" for k, v in landmarks.items())


def markups(result: MeasureResult, side: str) -> dict[str, Any]:
    """A 3D Slicer markups document (point list, LPS mm) of one side's landmarks."""
    points = []
    for n, (name, ras) in enumerate(result.landmarks.get(side, {}).items(), start=1):
        points.append({"id": str(n), "label": f"{name}_{side[0].upper()}", "description": f"{side} {name}",
                       "associatedNodeID": "", "position": [-float(ras[0]), -float(ras[1]), float(ras[2])],
                       "orientation": [-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0],
                       "selected": True, "locked": True, "visibility": True, "positionStatus": "defined"})
    return {"@schema": MARKUPS_SCHEMA, "markups": [{
        "type": "Fiducial", "coordinateSystem": "LPS", "coordinateUnits": "mm", "locked": True,
        "labelFormat": "%N-%d", "name": f"limbseg landmarks {side}", "controlPoints": points,
        "measurements": [], "display": {"visibility": True, "opacity": 1.0, "color": SIDE_COLOURS[side],
                                        "selectedColor": SIDE_COLOURS[side], "glyphType": "Sphere3D",
                                        "glyphScale": 2.0, "pointLabelsVisibility": True, "textScale": 2.0}}]}


def write_measurements(result: MeasureResult, directory: str | Path, *, qc: bool = True) -> list[Path]:
    """Write ``measurements.csv``, ``measurements.json``, ``landmarks_<side>.mrk.json`` and (with
    ``qc`` and matplotlib) ``qc/measurements.png`` into ``directory``; each file atomically.
    Returns the paths written."""
    directory = Path(directory)
    files = [directory / "measurements.csv", directory / "measurements.json"]
    with atomic_path(files[0]) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for r in result.rows:
            writer.writerow([result.case or "", r["side"], r["measurement"], _fmt(r["value"]), r["unit"],
                             r["status"], r["reason"], _landmark_text(r["landmarks"])])
    with atomic_path(files[1]) as tmp:
        tmp.write_text(json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")
    for side in ("left", "right"):
        if result.landmarks.get(side):
            path = directory / f"landmarks_{side}.mrk.json"
            with atomic_path(path) as tmp:
                tmp.write_text(json.dumps(markups(result, side), indent=2) + "\n", encoding="utf-8")
            files.append(path)
    if qc and result.points:
        from limbseg.measure.qc import draw_axes

        files.append(draw_axes(result, directory / "qc" / "measurements.png"))
    return files


def write_cohort(results: Sequence[MeasureResult], path: str | Path) -> Path:
    """One row per subject: ``case`` then ``<measurement>_<side>`` (left, right, right-left), values
    rounded to 0.01 (empty when incomplete), and ``implausible``: the values marked so (``<measurement>_<side>``,
    separated by spaces; :mod:`limbseg.measure.plausibility`)."""
    path = Path(path)
    sides = ("left", "right", "right-left")
    header = ["case"] + [f"{m.name}_{s.replace('-', '_minus_')}_{m.unit}" for m in MEASUREMENTS for s in sides] + ["implausible"]
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for res in results:
            values = {(r["measurement"], r["side"]): r["value"] for r in res.rows}
            flagged = " ".join(f"{r['measurement']}_{r['side'].replace('-', '_minus_')}" for r in res.rows
                               if r["status"] == "implausible")
            writer.writerow([res.case or ""] + [_fmt(values.get((m.name, s))) for m in MEASUREMENTS for s in sides]
                            + [flagged])
    return path
