"""Fixtures for the pipeline tests; the phantoms live in tests/export/segment_phantoms.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "export"))

from segment_phantoms import make_phantom  # noqa: E402


@pytest.fixture
def phantom():
    return make_phantom()
