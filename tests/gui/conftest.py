"""Fixtures of the GUI tests: a tiny scan and fake library calls (the real ones are tested elsewhere)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from limbseg.errors import LimbsegError
from limbseg.io import write_image
from limbseg.labels import DEFAULT_SCHEME
from limbseg.volume import LabelMap, Volume

BASE = "http://127.0.0.1:7860"


def tiny_scan(path: Path) -> Path:
    """A 16x12x8 int16 scan with 2 x 2 x 3 mm voxels (seeded), written as NIfTI."""
    rng = np.random.default_rng(0)
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    affine[:3, 3] = [-16, -12, 0]
    write_image(Volume(rng.integers(0, 400, (16, 12, 8)).astype(np.int16), affine), path)
    return path


def fake_segment(input: Path, output_dir: Path, **kwargs: Any) -> Any:  # noqa: A002
    """Writes the files of a segment output folder the way the pipeline does, with a tibia box."""
    import trimesh

    from limbseg.io import read_image

    if kwargs.get("progress"):
        kwargs["progress"](0.5, "segmenting")
    scan = read_image(input)
    labels = np.zeros(scan.shape, np.uint8)
    labels[4:8, 3:6, 2:6] = 1
    output_dir.mkdir(parents=True)
    write_image(LabelMap(labels, scan.affine), output_dir / "labels.nii.gz")
    (output_dir / "labels.json").write_text(json.dumps(DEFAULT_SCHEME.to_json()))
    stats = [{"structure": "tibia", "side": "left", "volume_cm3": 0.576, "voxels": 48}]
    (output_dir / "statistics.json").write_text(json.dumps(stats))
    (output_dir / "meshes").mkdir()
    box = trimesh.creation.box(extents=(4, 4, 4))
    box.apply_translation((10.0, 20.0, 30.0))  # LPS mm
    (output_dir / "meshes" / "tibia_left.ply").write_bytes(box.export(file_type="ply"))
    return SimpleNamespace(statistics=stats, timings={"total": 0.1}, output_dir=output_dir)


def failing_segment(input: Path, output_dir: Path, **kwargs: Any) -> Any:  # noqa: A002
    raise LimbsegError("no lower limb found in the scan", input)


def fake_series(path: Path) -> list[dict[str, Any]]:
    return [{"series_uid": "1.2.3", "description": "AutoBind WATER", "orientation": "axial", "n_slices": 8},
            {"series_uid": "1.2.4", "description": "localizer", "orientation": "coronal", "n_slices": 3}]


def wait_for(client: Any, job_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """Poll a job until it is done or failed."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {job}")


@pytest.fixture
def scan_file(tmp_path: Path) -> Path:
    return tiny_scan(tmp_path / "scan.nii.gz")
