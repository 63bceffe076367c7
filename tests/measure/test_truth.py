"""The virtual cohort's truth measurements, and measure on a truth label map against them."""

from __future__ import annotations

import json

import pytest

from limbseg.measure import measure_labels
from limbseg.measure.definitions import MEASUREMENTS


def test_truth_label_map_of_a_small_child_agrees_with_its_truth():
    from limbseg.synth.truth import skeleton_truth, truth_labels

    labels, sk = truth_labels(1)  # age 5: the study's 0.94 x 0.94 x 3 mm axial grid
    truth, got = skeleton_truth(sk), measure_labels(labels)
    assert labels.spacing == pytest.approx((0.9375, 0.9375, 3.0))
    assert got.info["implausible"] == 0  # a real child's bones are never flagged
    for side in ("left", "right"):
        for m in MEASUREMENTS:
            t, g = truth.value(side, m.name), got.value(side, m.name)
            assert abs(g - t) <= (3.0 if m.unit == "mm" else 4.0), (side, m.name, g, t)
    assert 15 < truth.value("left", "femoral_anteversion") < 35
    assert 120 < truth.value("left", "neck_shaft_angle") < 145


def test_synth_writes_truth_measurements(tmp_path):
    from limbseg.synth.cohort import synthesize_subject, write_subject

    subject = synthesize_subject(3, pixel=6.0, slice_thickness=10.0)
    write_subject(subject, tmp_path)
    doc = json.loads((tmp_path / "subjects" / "virtual_00003" / "truth" / "measurements.json").read_text())
    assert doc["case"] == "virtual_00003" and doc["info"]["source"].startswith("virtual cohort truth")
    rows = [r for r in doc["measurements"] if r["side"] != "right-left"]
    assert len(rows) == 2 * len(MEASUREMENTS) and all(r["status"] == "ok" for r in rows)
    assert set(doc["landmarks"]["left"]) >= {"femoral_head_centre", "knee_centre", "ankle_centre"}
