"""The measurements, defined once from landmarks (RAS mm) of one leg.

Both the label-map measurement and the virtual cohort's truth call :func:`compute`, so the two
share every definition; they differ only in how the landmarks are found. Conventions (see
``docs/measurements.md`` for the figure and the sources, Schock et al. 2021, Carman et al. 2023):

- Lengths are in mm between landmarks (3D distances unless stated).
- Angles are in degrees and use only the bone's own axes, never the scan's.
- The medial direction of a frame comes from the bone pair (posterior condylar or malleolar line);
  the anterior direction is ``medial x superior`` on the right leg and ``superior x medial`` on
  the left (RAS), so the same anatomy gives the same sign on both sides.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from limbseg.measure.geometry import angle_deg, anterior_of, perpendicular, signed_angle_deg, unit

Landmarks = dict[str, np.ndarray]


@dataclass(frozen=True)
class Measurement:
    """One measurement: ``name``, ``unit`` ('mm' or 'deg'), the ``bones`` it needs (all fully in
    the field of view), the ``landmarks`` it is computed from, and a one-line ``definition``."""

    name: str
    unit: str
    bones: tuple[str, ...]
    landmarks: tuple[str, ...]
    definition: str
    function: Callable[[Landmarks, str], float]


def _dist(a: str, b: str) -> Callable[[Landmarks, str], float]:
    return lambda lm, side: float(np.linalg.norm(lm[a] - lm[b]))


def _femur_max_length(lm: Landmarks, side: str) -> float:
    up = unit(lm["femoral_head_centre"] - lm["knee_centre"])
    return float((lm["femur_proximal"] - lm["femur_distal"]) @ up)


def _femur_frame(lm: Landmarks, side: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(superior, medial, anterior) of the femur: mechanical axis and posterior condylar line."""
    up = unit(lm["femoral_head_centre"] - lm["knee_centre"])
    medial = unit(perpendicular(lm["posterior_medial_condyle"] - lm["posterior_lateral_condyle"], up))
    return up, medial, anterior_of(medial, up, side)


def _anteversion(lm: Landmarks, side: str) -> float:
    up, medial, anterior = _femur_frame(lm, side)
    neck = lm["femoral_head_centre"] - lm["neck_centre"]
    pcl = lm["posterior_medial_condyle"] - lm["posterior_lateral_condyle"]
    return signed_angle_deg(perpendicular(pcl, up), perpendicular(neck, up), medial, anterior)


def _neck_shaft(lm: Landmarks, side: str) -> float:
    return angle_deg(lm["femoral_head_centre"] - lm["neck_centre"], lm["shaft_distal"] - lm["shaft_proximal"])


def _femorotibial(lm: Landmarks, side: str) -> float:
    up, medial, _ = _femur_frame(lm, side)
    tibial = lm["ankle_centre"] - lm["plateau_centre"]  # distal along the tibia
    return float(np.degrees(np.arctan2(tibial @ medial, -(tibial @ up))))


def _tibial_torsion(lm: Landmarks, side: str) -> float:
    up = unit(lm["plateau_centre"] - lm["ankle_centre"])
    proximal = perpendicular(lm["posterior_medial_plateau"] - lm["posterior_lateral_plateau"], up)
    distal = perpendicular(lm["medial_malleolus"] - lm["lateral_malleolus"], up)
    medial = unit(proximal)
    return signed_angle_deg(proximal, distal, medial, anterior_of(medial, up, side))


MEASUREMENTS: tuple[Measurement, ...] = (
    Measurement("femur_length", "mm", ("femur",), ("femoral_head_centre", "knee_centre"),
                "femoral head centre to knee centre (midpoint of the most distal points of the condyles)",
                _dist("femoral_head_centre", "knee_centre")),
    Measurement("femur_max_length", "mm", ("femur",), ("femur_proximal", "femur_distal", "femoral_head_centre",
                                                         "knee_centre"),
                "extent of the femur along its mechanical axis (top of the head to the lowest condyle)",
                _femur_max_length),
    Measurement("tibia_length", "mm", ("tibia", "fibula"), ("plateau_centre", "ankle_centre"),
                "tibial plateau centre to ankle centre (midpoint of the malleolar tips)",
                _dist("plateau_centre", "ankle_centre")),
    Measurement("fibula_length", "mm", ("fibula",), ("fibula_proximal", "fibula_distal"),
                "most proximal to most distal point of the fibula along its long axis",
                _dist("fibula_proximal", "fibula_distal")),
    Measurement("leg_length", "mm", ("femur", "tibia", "fibula"), ("femoral_head_centre", "ankle_centre"),
                "functional leg length: femoral head centre to ankle centre",
                _dist("femoral_head_centre", "ankle_centre")),
    Measurement("femoral_anteversion", "deg", ("femur",),
                ("femoral_head_centre", "neck_centre", "posterior_medial_condyle", "posterior_lateral_condyle",
                 "knee_centre"),
                "neck axis against the posterior condylar line, seen along the mechanical axis; "
                "+ = neck turned anteriorly", _anteversion),
    Measurement("neck_shaft_angle", "deg", ("femur",),
                ("femoral_head_centre", "neck_centre", "shaft_proximal", "shaft_distal"),
                "3D angle between the neck axis (towards the head) and the shaft axis (towards the knee)",
                _neck_shaft),
    Measurement("mechanical_femorotibial_angle", "deg", ("femur", "tibia", "fibula"),
                ("femoral_head_centre", "knee_centre", "plateau_centre", "ankle_centre",
                 "posterior_medial_condyle", "posterior_lateral_condyle"),
                "femoral against tibial mechanical axis in the femur's frontal plane; + = varus, - = valgus",
                _femorotibial),
    Measurement("tibial_torsion", "deg", ("tibia", "fibula"),
                ("posterior_medial_plateau", "posterior_lateral_plateau", "medial_malleolus", "lateral_malleolus",
                 "plateau_centre", "ankle_centre"),
                "transmalleolar line (malleolar centres) against the posterior plateau line, seen along the tibial mechanical axis; "
                "+ = external", _tibial_torsion),
)
BY_NAME = {m.name: m for m in MEASUREMENTS}


def compute(landmarks: Landmarks, side: str, missing: dict[str, str] | None = None) -> list[dict]:
    """One record per measurement: ``name, unit, value, status ('ok' / 'incomplete'; ``measure_labels`` may
    then mark a value 'implausible'), reason,
    landmarks`` (name -> RAS mm list). ``missing`` maps a bone to why it cannot be used."""
    missing = missing or {}
    rows = []
    for m in MEASUREMENTS:
        reasons = [missing[b] for b in m.bones if b in missing]
        absent = [n for n in m.landmarks if n not in landmarks]
        if not reasons and absent:
            reasons = [f"landmarks not found: {', '.join(absent)}"]
        value = None if reasons else float(m.function(landmarks, side))
        if value is not None and not np.isfinite(value):
            value, reasons = None, ["the landmarks are degenerate"]
        rows.append({"measurement": m.name, "unit": m.unit, "value": value,
                     "status": "ok" if value is not None else "incomplete", "reason": "; ".join(reasons),
                     "landmarks": {n: [round(float(c), 3) for c in landmarks[n]] for n in m.landmarks
                                   if n in landmarks}})
    return rows
