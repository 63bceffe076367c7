"""Fixtures for the export tests; the phantoms live in segment_phantoms.py (shared with tests/pipeline)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from segment_phantoms import make_phantom  # noqa: E402


@pytest.fixture
def phantom():
    return make_phantom()
