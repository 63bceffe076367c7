"""Phantom label maps shared by the measurement tests (built once per session)."""

from __future__ import annotations

import pytest

from tests.measure.phantom import Leg, phantom

RIGHT = Leg("right")
LEFT = Leg("left", neck_shaft_deg=136.0, anteversion_deg=26.0, torsion_deg=32.0, femur_shaft_mm=329.0)
LEGS = (RIGHT, LEFT)


@pytest.fixture(scope="session")
def legs_labels():
    return phantom(LEGS)


@pytest.fixture(scope="session")
def legs_result(legs_labels):
    from limbseg.measure import measure_labels

    return measure_labels(legs_labels, case="phantom")
