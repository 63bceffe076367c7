"""``measure_labels``: morphometrics of both legs from a label map (the Python API behind
``limbseg measure`` and the measurements of ``limbseg segment``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from limbseg.measure import definitions
from limbseg.measure.labelmap import SIDES
from limbseg.volume import LabelMap

COORDINATES = "RAS mm (x = patient right, y = anterior, z = superior)"


@dataclass
class MeasureResult:
    """Measurements of one subject.

    ``rows``: one dict per side and measurement (``side, measurement, unit, value, status, reason,
    landmarks``), then one per measurement with ``side = 'right-left'`` (the difference).
    ``landmarks[side]``: every landmark found, name -> RAS mm (3,). ``info``: midline, notes ...
    ``points[side][bone]``: a subsample of the bone's surface (RAS mm, (N, 3)) for pictures; not saved.
    """

    case: str | None
    rows: list[dict[str, Any]]
    landmarks: dict[str, dict[str, np.ndarray]]
    info: dict[str, Any] = field(default_factory=dict)
    points: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def value(self, side: str, name: str) -> float | None:
        """The value of one measurement (None when incomplete)."""
        for r in self.rows:
            if r["side"] == side and r["measurement"] == name:
                return r["value"]
        raise KeyError(f"{side} {name}")

    def status(self, side: str, name: str) -> str:
        """``'ok'``, ``'incomplete'`` or ``'implausible'`` (:mod:`limbseg.measure.plausibility`)."""
        for r in self.rows:
            if r["side"] == side and r["measurement"] == name:
                return str(r["status"])
        raise KeyError(f"{side} {name}")

    def to_json(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "coordinates": COORDINATES,
            "units": {"length": "mm", "angle": "deg"},
            "definitions": {m.name: {"unit": m.unit, "definition": m.definition, "bones": list(m.bones)}
                            for m in definitions.MEASUREMENTS},
            "info": self.info,
            "measurements": self.rows,
            "landmarks": {s: {k: [round(float(c), 3) for c in v] for k, v in lm.items()}
                          for s, lm in self.landmarks.items()},
        }


def differences(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Right minus left for every measurement; incomplete when either side is."""
    out = []
    for m in definitions.MEASUREMENTS:
        side = {r["side"]: r for r in rows if r["measurement"] == m.name}
        left, right = side.get("left"), side.get("right")
        ok = left is not None and right is not None and left["value"] is not None and right["value"] is not None
        reason = "" if ok else "; ".join(f"{s}: {r['reason']}" for s, r in (("left", left), ("right", right))
                                         if r is not None and r["value"] is None)
        out.append({"side": "right-left", "measurement": m.name, "unit": m.unit,
                    "value": float(right["value"] - left["value"]) if ok else None,  # type: ignore[index]
                    "status": "ok" if ok else "incomplete", "reason": reason, "landmarks": {}})
    return out


def assemble(case: str | None, landmarks: dict[str, dict[str, np.ndarray]], missing: dict[str, dict[str, str]],
             info: dict[str, Any]) -> MeasureResult:
    """Measurements of both sides from their landmarks (and the bones that are missing or cut)."""
    rows: list[dict[str, Any]] = []
    for side in SIDES:
        for r in definitions.compute(landmarks.get(side, {}), side, missing.get(side, {})):
            rows.append({"side": side, **r})
    return MeasureResult(case, rows + differences(rows), landmarks, info)


def measure_labels(labels: LabelMap, *, case: str | None = None, midline_x: float | None = None) -> MeasureResult:
    """Measure both legs of a label map.

    Args:
        labels: uint8 label map (i, j, k) with its RAS affine; the scheme must name ``femur``,
            ``tibia`` and ``fibula`` (others are ignored).
        case: a name for the subject, copied into the result.
        midline_x: RAS x (mm) of the body midline; default: estimated (see
            :func:`limbseg.measure.labelmap.estimate_midline`).
    Returns:
        a :class:`MeasureResult`; a bone absent from a side, or touching the edge of the field of
        view, makes the measurements that need it ``incomplete`` with the reason; a value outside
        children's proportions (:mod:`limbseg.measure.plausibility`) is kept but marked ``implausible``.
    """
    from limbseg.measure.detect import leg_landmarks
    from limbseg.measure.labelmap import leg_surfaces
    from limbseg.measure.plausibility import flag_implausible

    legs = leg_surfaces(labels, midline_x)
    landmarks: dict[str, dict[str, np.ndarray]] = {}
    extra: dict[str, dict[str, float]] = {}
    for side in SIDES:
        m = legs.meshes[side]
        landmarks[side], extra[side] = leg_landmarks(m.get("femur"), m.get("tibia"), m.get("fibula"), side)
    info = {"source": "label map", "midline_ras_x_mm": round(legs.midline_x, 3), "midline_from": legs.midline_source,
            "sides": "from RAS x against the midline; RAS +x = patient right",
            "spacing_mm": [round(s, 4) for s in labels.spacing], "shape": list(labels.shape),
            "bones_missing_or_cut": legs.missing, "notes": legs.notes,
            "extra": {s: {k: round(v, 3) for k, v in e.items()} for s, e in extra.items()}}
    result = assemble(case, landmarks, legs.missing, info)
    result.info["implausible"] = flag_implausible(result.rows)
    result.points = {s: {b: subsample(np.asarray(m.vertices)) for b, m in legs.meshes[s].items()} for s in SIDES}
    return result


def subsample(points: np.ndarray, n: int = 4000) -> np.ndarray:
    """At most ``n`` evenly strided rows of ``points``."""
    return points[:: max(1, len(points) // n)]
