"""Morphometrics on phantoms of known geometry at the study's 0.94 x 0.94 x 3 mm grid."""

from __future__ import annotations

import numpy as np
import pytest

from limbseg.measure import measure_labels
from limbseg.measure.definitions import MEASUREMENTS
from limbseg.volume import LabelMap
from tests.measure.conftest import LEGS
from tests.measure.phantom import expected, phantom

TOLERANCE = {"mm": 2.0, "deg": 3.0}
ANGLES = [m.name for m in MEASUREMENTS if m.unit == "deg"]


@pytest.mark.parametrize("leg", LEGS, ids=lambda leg: leg.side)
def test_recovers_known_lengths_and_angles(legs_result, leg):
    truth = expected(leg)
    for m in MEASUREMENTS:
        got = legs_result.value(leg.side, m.name)
        assert got is not None, m.name
        assert abs(got - truth[m.name]) <= TOLERANCE[m.unit], (m.name, got, truth[m.name])


def test_differences_are_right_minus_left(legs_result):
    for m in MEASUREMENTS:
        diff = legs_result.value("right-left", m.name)
        assert diff == pytest.approx(legs_result.value("right", m.name) - legs_result.value("left", m.name))
    assert legs_result.info["midline_from"] == "between the two femur bones"
    assert abs(legs_result.info["midline_ras_x_mm"]) < 3.0


def test_mirroring_swaps_left_and_right(legs_labels, legs_result):
    mirrored = LabelMap(np.ascontiguousarray(legs_labels.array[::-1]), legs_labels.affine.copy())
    res = measure_labels(mirrored)
    for m in MEASUREMENTS:
        for a, b in (("left", "right"), ("right", "left")):
            tol = 0.75 if m.unit == "mm" else 0.75
            assert res.value(a, m.name) == pytest.approx(legs_result.value(b, m.name), abs=tol), (m.name, a)


def test_rotation_about_the_superior_axis_changes_no_angle(legs_result):
    res = measure_labels(phantom(LEGS, rotation_deg=10.0))
    for side in ("left", "right"):
        for name in ANGLES:
            assert abs(res.value(side, name) - legs_result.value(side, name)) <= 1.0, (side, name)


def test_cut_and_missing_bones_are_incomplete_with_a_reason():
    labels = phantom(LEGS, z_range=(-501.5, -1.5))  # the field of view stops above the ankles
    cut = labels.array.copy()
    cut[cut.shape[0] // 2:][cut[cut.shape[0] // 2:] == 3] = 0  # no fibula on one side (i > half: left)
    res = measure_labels(LabelMap(cut, labels.affine))
    for side in ("left", "right"):
        assert res.value(side, "femur_length") is not None
        assert res.value(side, "femoral_anteversion") is not None
        for name in ("tibia_length", "leg_length", "tibial_torsion", "mechanical_femorotibial_angle"):
            row = next(r for r in res.rows if r["side"] == side and r["measurement"] == name)
            assert row["value"] is None and row["status"] == "incomplete"
            assert "touches the edge of the field of view (inferior)" in row["reason"] or "no fibula" in row["reason"]
    assert "no fibula on the left side" in next(
        r["reason"] for r in res.rows if r["side"] == "left" and r["measurement"] == "fibula_length")
    assert res.value("right-left", "tibia_length") is None


def test_empty_label_map_gives_only_incomplete_rows():
    res = measure_labels(LabelMap(np.zeros((20, 20, 10), np.uint8), np.eye(4)))
    assert all(r["status"] == "incomplete" and r["reason"] for r in res.rows)
