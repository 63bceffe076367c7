"""Plausibility checks: a measurement made on a wrong bone is flagged, not passed off as a number.

A label map from ``segment`` can hold a bone that is whole but wrong (a fibula missing its distal half, the
proximal femur labelled tibia). Its measurements then come out as confident numbers tens of millimetres or
degrees off. These checks compare each leg with children's proportions and with the other leg; a
measurement that fails keeps its value but gets ``status = 'implausible'`` and the reason, so a person looks at
the bones before using it.

The limits are deliberately wide: they must never flag a real child, including marked pathology (femoral
anteversion up to 60-70 degrees and coxa valga in cerebral palsy, leg-length differences of several cm). On the
virtual cohort's exact truth (seeds 0-59, ages 5-16, 120 legs) the proportions span femur/tibia 1.09-1.22,
fibula/tibia 0.95-0.98, maximal/head-to-knee femur length 1.05-1.07, left-right length differences up to
9.6 % (median 2 %) and angles within anteversion 3-38, neck-shaft 121-162, femorotibial -7 to -2 and tibial
torsion 25-50 degrees; the limits below leave a wide margin round those and round published paediatric values (femur about
1.2-1.3 times the tibia; fibula nearly as long as the tibia).
"""

from __future__ import annotations

from typing import Any

#: Outside these (unit of the measurement) a value is not a child's bone: a landmark was found on the wrong part.
RANGES: dict[str, tuple[float, float]] = {
    "femur_length": (120.0, 600.0),
    "femur_max_length": (120.0, 650.0),
    "tibia_length": (100.0, 520.0),
    "fibula_length": (100.0, 520.0),
    "leg_length": (220.0, 1100.0),
    "femoral_anteversion": (-40.0, 80.0),
    "neck_shaft_angle": (100.0, 175.0),
    "mechanical_femorotibial_angle": (-25.0, 25.0),
    "tibial_torsion": (-40.0, 80.0),
}

#: (numerator, denominator, lowest, highest, the measurements a failure flags) on one leg.
RATIOS: tuple[tuple[str, str, float, float, tuple[str, ...]], ...] = (
    ("femur_length", "tibia_length", 1.0, 1.45, ("femur_length", "femur_max_length", "tibia_length", "leg_length")),
    ("fibula_length", "tibia_length", 0.85, 1.10, ("fibula_length", "tibia_length")),
    ("femur_max_length", "femur_length", 1.0, 1.15, ("femur_length", "femur_max_length", "leg_length")),
)

#: A length differing between the legs by more than this fraction of their mean is flagged on both sides (a real
#: difference that large, as with a congenital short femur, deserves a look at the bones too).
MAX_SIDE_DIFFERENCE = 0.20
LENGTHS = ("femur_length", "femur_max_length", "tibia_length", "fibula_length", "leg_length")
ADVICE = "check the segmentation"


def flag_implausible(rows: list[dict[str, Any]]) -> int:
    """Mark the measurements that fail a check ``implausible`` (value kept; the reason lists the checks failed,
    then "check the segmentation"), in place; the right-left row of a measurement follows its sides. Values
    already incomplete are left alone. Returns the number of side measurements flagged."""
    by = {(r["side"], r["measurement"]): r for r in rows}
    value = {k: r["value"] for k, r in by.items() if r["status"] == "ok" and r["value"] is not None}
    why: dict[tuple[str, str], list[str]] = {}

    def flag(side: str, name: str, reason: str) -> None:
        if (side, name) in value and reason not in why.setdefault((side, name), []):
            why[side, name].append(reason)

    for (side, name), v in value.items():
        if side != "right-left" and name in RANGES and not RANGES[name][0] <= v <= RANGES[name][1]:
            lo, hi = RANGES[name]
            flag(side, name, f"{v:.1f} {by[side, name]['unit']} is outside {lo:g} to {hi:g}")
    for side in ("left", "right"):
        for num, den, lo, hi, names in RATIOS:
            a, b = value.get((side, num)), value.get((side, den))
            if a is not None and b and not lo <= a / b <= hi:
                for name in names:
                    flag(side, name, f"{num.replace('_', ' ')} / {den.replace('_', ' ')} = {a / b:.2f}, outside "
                                     f"{lo:g} to {hi:g}")
    for name in LENGTHS:
        left, right = value.get(("left", name)), value.get(("right", name))
        if left is not None and right is not None and abs(right - left) > MAX_SIDE_DIFFERENCE * 0.5 * (right + left):
            rel = abs(right - left) / (0.5 * (right + left))
            for side in ("left", "right"):
                flag(side, name, f"left and right differ by {rel:.0%} (more than {MAX_SIDE_DIFFERENCE:.0%})")
    for m in {name for _, name in why}:
        sides = [s for s in ("left", "right") if (s, m) in why]
        flag("right-left", m, f"{' and '.join(sides)} side implausible")
    for key, reasons in why.items():
        row = by[key]
        row["status"] = "implausible"
        row["reason"] = "implausible: " + "; ".join(reasons) + f"; {ADVICE}"
    return sum(1 for side, _ in why if side != "right-left")
