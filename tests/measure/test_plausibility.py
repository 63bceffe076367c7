"""Plausibility checks: measurements on a wrong bone are marked implausible (value kept, reason given)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from limbseg.measure import measure_labels
from limbseg.measure.definitions import MEASUREMENTS
from limbseg.measure.plausibility import flag_implausible
from limbseg.volume import LabelMap

#: A plausible child's leg (virtual cohort medians).
CHILD = {"femur_length": 350.0, "femur_max_length": 370.0, "tibia_length": 308.0, "fibula_length": 299.0,
         "leg_length": 670.0, "femoral_anteversion": 16.0, "neck_shaft_angle": 133.0,
         "mechanical_femorotibial_angle": -4.0, "tibial_torsion": 40.0}


def _rows(left: dict[str, float | None], right: dict[str, float | None]) -> list[dict]:
    rows = []
    for side, values in (("left", left), ("right", right)):
        for m in MEASUREMENTS:
            v = values.get(m.name)
            rows.append({"side": side, "measurement": m.name, "unit": m.unit, "value": v,
                         "status": "ok" if v is not None else "incomplete",
                         "reason": "" if v is not None else "no tibia on the left side", "landmarks": {}})
    from limbseg.measure.api import differences

    return rows + differences(rows)


def _status(rows: list[dict], side: str, name: str) -> tuple[str, str]:
    r = next(r for r in rows if r["side"] == side and r["measurement"] == name)
    return r["status"], r["reason"]


def test_a_plausible_child_is_not_flagged():
    rows = _rows(CHILD, {**CHILD, "femur_length": 0.95 * CHILD["femur_length"]})  # 5 % shorter right femur
    assert flag_implausible(rows) == 0
    assert all(r["status"] == "ok" for r in rows)


def test_a_short_fibula_is_flagged_on_its_side_only():
    rows = _rows({**CHILD, "fibula_length": 180.0}, CHILD)
    assert flag_implausible(rows) == 3  # left fibula and tibia length (their ratio), fibula left-right 50 %
    status, reason = _status(rows, "left", "fibula_length")
    assert status == "implausible" and "fibula length / tibia length = 0.58" in reason
    assert next(r for r in rows if r["side"] == "left" and r["measurement"] == "fibula_length")["value"] == 180.0
    assert _status(rows, "right", "fibula_length")[0] == "implausible"  # 50 % shorter than the left: both shown
    assert "differ by" in _status(rows, "right", "fibula_length")[1]
    assert _status(rows, "right", "tibia_length")[0] == "ok"
    assert _status(rows, "left", "femur_length")[0] == "ok"
    assert _status(rows, "right-left", "fibula_length") == ("implausible", "implausible: left and right side implausible; check the segmentation")


@pytest.mark.parametrize(("name", "value"), [("femoral_anteversion", 120.0), ("neck_shaft_angle", 178.0),
                                             ("mechanical_femorotibial_angle", -31.0), ("tibial_torsion", -60.0)])
def test_angles_beyond_any_child_are_flagged(name, value):
    rows = _rows({**CHILD, name: value}, CHILD)
    assert flag_implausible(rows) == 1
    assert _status(rows, "left", name)[0] == "implausible" and "outside" in _status(rows, "left", name)[1]


def test_a_femur_shorter_than_its_tibia_flags_the_lengths_that_use_it():
    rows = _rows({**CHILD, "femur_length": 290.0, "femur_max_length": 305.0}, CHILD)
    flag_implausible(rows)
    for name in ("femur_length", "femur_max_length", "tibia_length", "leg_length"):
        assert _status(rows, "left", name)[0] == "implausible"
    assert _status(rows, "left", "fibula_length")[0] == "ok"
    assert _status(rows, "right", "femur_length")[0] == "ok"


def test_incomplete_values_stay_incomplete():
    rows = _rows({**CHILD, "tibia_length": None, "fibula_length": 150.0}, CHILD)
    flag_implausible(rows)
    assert _status(rows, "left", "tibia_length") == ("incomplete", "no tibia on the left side")
    assert _status(rows, "right-left", "tibia_length")[0] == "incomplete"


def test_a_fibula_missing_its_distal_half_is_flagged_in_the_outputs(tmp_path, legs_labels):
    """A label map whose left fibula lost its distal half (a segmentation error that leaves the bone inside
    the field of view): its length is marked implausible in measurements.csv and the cohort table."""
    from limbseg.measure.output import write_cohort, write_measurements

    arr = legs_labels.array.copy()
    left = np.zeros(arr.shape, bool)
    left[arr.shape[0] // 2:] = True  # i above half: the left leg
    ks = np.flatnonzero((arr == 3).any(axis=(0, 1)))
    cut = left & (arr == 3)
    cut[..., ks.min() + (ks.max() - ks.min()) // 2:] = False
    arr[cut] = 0
    res = measure_labels(LabelMap(arr, legs_labels.affine), case="cut")
    assert res.status("left", "fibula_length") == "implausible" and res.value("left", "fibula_length") > 0
    # the ankle centre uses the lateral malleolus, so the left tibia length is wrong too (234 mm, not 308)
    assert res.status("left", "tibia_length") == "implausible"
    assert res.status("right", "femur_length") == "ok" and res.status("left", "femoral_anteversion") == "ok"
    clean = measure_labels(legs_labels, case="whole")
    assert clean.info["implausible"] == 0
    write_measurements(res, tmp_path / "cut", qc=False)
    rows = list(csv.DictReader(open(tmp_path / "cut" / "measurements.csv", encoding="utf-8")))
    fib = next(r for r in rows if r["side"] == "left" and r["measurement"] == "fibula_length")
    assert fib["status"] == "implausible" and "check the segmentation" in fib["reason"] and float(fib["value"]) > 0
    table = list(csv.DictReader(open(write_cohort([res, clean], tmp_path / "cohort.csv"), encoding="utf-8")))
    assert "fibula_length_left" in table[0]["implausible"].split() and table[1]["implausible"] == ""
