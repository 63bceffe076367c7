"""Shared fixtures for the I/O tests: tiny seeded volumes."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def stored() -> np.ndarray:
    """Stored DICOM values, shape (16, 12, 8) (i, j, k), uint16, seeded."""
    return np.random.default_rng(0).integers(0, 4000, size=(16, 12, 8)).astype(np.uint16)
