"""Shared small virtual subject (4 mm pixels, 8 mm slices: a few seconds)."""

from __future__ import annotations

import pytest

SMALL = {"pixel": 4.0, "slice_thickness": 8.0}


@pytest.fixture(scope="session")
def small_subject():
    from limbseg.synth.cohort import synthesize_subject

    return synthesize_subject(3, **SMALL)


@pytest.fixture(scope="session")
def distractor_subject():
    """The same subject as ``small_subject`` simulated with distractors (seed 3: no arms)."""
    from limbseg.synth.cohort import synthesize_subject

    return synthesize_subject(3, **SMALL, distractors=True)
