"""``limbseg demo`` on a coarse virtual subject with a tiny random model (the shipped model is not needed)."""

from __future__ import annotations

import json

import nibabel as nib
import pytest

from limbseg.cli import main

pytestmark = pytest.mark.slow


def test_demo_runs_and_reports(tmp_path, capsys):
    import torch

    from limbseg.labels import DEFAULT_SCHEME
    from limbseg.models.bundle import save_bundle
    from limbseg.models.factory import build_model

    torch.manual_seed(0)
    arch = {"arch": "unet2d", "in_channels": 3, "classes": 5, "features": [4, 4, 8, 8, 16, 4]}
    bundle = save_bundle(tmp_path / "tiny", [build_model(arch)], {
        "architecture": arch, "labels": DEFAULT_SCHEME.to_json(),
        "preprocessing": {"spacing_mm": 7.5, "tile": [64, 64], "channels": "repeat",
                          "normalisation": {"method": "percentile", "lower": 0.5, "upper": 99.5}}})
    out = tmp_path / "demo"
    rc = main(["demo", "-o", str(out), "--seed", "3", "--model", str(bundle), "--device", "cpu",
               "--pixel", "3.75", "--slice-thickness", "6"])
    text = capsys.readouterr().out
    assert rc == 0
    for bone in ("tibia", "femur", "fibula", "pelvis"):
        assert bone in text
    assert "QC pictures" in text and "segmentation" in text
    doc = json.loads((out / "evaluation.json").read_text())
    assert [r["structure"] for r in doc["rows"]] == ["tibia", "femur", "fibula", "pelvis"]
    assert all(0.0 <= r["dice"] <= 1.0 for r in doc["rows"])
    truth = nib.load(str(out / "truth" / "labels.nii.gz"))
    pred = nib.load(str(out / "segmentation" / "labels.nii.gz"))
    assert truth.shape == pred.shape and (truth.affine == pred.affine).all()
    assert (out / "segmentation" / "segmentation.dcm").is_file()


def test_demo_without_model_fails_cleanly(tmp_path, capsys):
    rc = main(["demo", "-o", str(tmp_path / "demo"), "--model", str(tmp_path / "none")])
    assert rc == 2 and "no such model" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()
