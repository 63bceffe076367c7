"""Fixtures for the cohort tests: a tiny seeded model bundle, small body phantoms and a manifest."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "export"))

from segment_phantoms import body_phantom  # noqa: E402

AGES = {"s0": "7.5", "s1": "9", "s2": "11.25"}


@pytest.fixture(scope="session")
def ages() -> dict[str, str]:
    """Subject id -> age in the manifest (the broken scan ``bad`` is 10)."""
    return dict(AGES)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    """The tiny seeded bundle with its head biased to background, so that it finds a few small blobs on both
    sides: seconds per scan, non-empty tables."""
    from tests.conftest import make_tiny_bundle

    return make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny", background_bias=1.5)


@pytest.fixture(scope="session")
def manifest(tmp_path_factory):
    """``manifest.csv`` (subject, scan relative to it, age) of 3 small body phantoms and one broken scan."""
    from limbseg.io import write_image

    root = tmp_path_factory.mktemp("scans")
    (root / "scans").mkdir()
    for n, name in enumerate(AGES):
        write_image(body_phantom(400, 700, seed=n), root / "scans" / f"{name}.nii.gz")
    (root / "scans" / "broken.nii.gz").write_bytes(b"this is not a NIfTI file")
    rows = [f"{name},scans/{name}.nii.gz,{age}" for name, age in AGES.items()] + ["bad,scans/broken.nii.gz,10"]
    path = root / "manifest.csv"
    path.write_text("subject,scan,age\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture(autouse=True)
def _restore_pipeline_switches(monkeypatch):
    """Running subjects in this process turns segment's forked reader off for good (see
    ``limbseg.cohort.worker``): give the other tests their switches back."""
    from limbseg import pipeline

    monkeypatch.setattr(pipeline, "READ_PROCESS", pipeline.READ_PROCESS)
    monkeypatch.setattr(pipeline, "OUTPUT_PROCESS", pipeline.OUTPUT_PROCESS)
