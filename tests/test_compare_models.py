"""benchmarks/compare_models.py: 2 variants, 1 epoch, on the tiny 3-subject dataset of tests/training."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
import torch

from limbseg.errors import LimbsegError
from tests.training.conftest import tiny_dataset  # noqa: F401 - the shared session fixture

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "compare_models.py"
NUM = r"(\d\.\d{3}) ± (\d\.\d{3})"


def _load_script():
    spec = importlib.util.spec_from_file_location("compare_models", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cmp():
    return _load_script()


def _argv(dataset: Path, out: Path, variants: str) -> list[str]:
    return ["--dataset", str(dataset), "--out", str(out / "runs"), "--variants", variants, "--epochs", "1",
            "--image-size", "64", "--max-slices-per-epoch", "8", "--batch-size", "8", "--device", "cpu",
            "--threads", "1", "--doc", str(out / "experiments.md"), "--figure", str(out / "img" / "exp.png")]


@pytest.fixture(scope="module")
def compared(cmp, tiny_dataset, tmp_path_factory):  # noqa: F811 - pytest fixture injection
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("cmp")
    doc = out / "experiments.md"
    doc.write_text("# Comparisons\n\nintro kept\n\n<!-- experiments:begin -->\nold\n<!-- experiments:end -->\n\ntail\n")
    mp = pytest.MonkeyPatch()
    mp.setattr(cmp, "imagenet_available", lambda encoder: False)  # never train it, whatever the local cache has
    try:
        results = cmp.main(_argv(tiny_dataset, out, "mobilenet_v2,unet2d,resnet34-imagenet"))
    finally:
        mp.undo()
    return out, results


def test_table_rows_have_numbers(compared):
    out, results = compared
    text = (out / "experiments.md").read_text()
    assert text.startswith("# Comparisons\n\nintro kept") and text.rstrip().endswith("tail")
    assert "\nold\n" not in text and text.count("<!-- experiments:begin -->") == 1
    header = next(line for line in text.splitlines() if line.startswith("| variant |"))
    assert header.split("|")[3:8] == [" tibia ", " femur ", " fibula ", " pelvis ", " mean "]
    for name in ("mobilenet_v2", "unet2d"):
        row = next(line for line in text.splitlines() if line.startswith(f"| {name} |"))
        pairs = re.findall(NUM, row)
        assert len(pairs) == 5  # four bones + mean
        assert all(0.0 <= float(m) <= 1.0 and float(sd) >= 0.0 for m, sd in pairs)
        assert re.search(r"\| 1 \| \d+\.\d s \| \d+\.\d\d M \|$", row)  # n subjects, train time, parameters
    assert "| resnet34-imagenet |" in text and "not available offline" in text
    assert results["resnet34-imagenet"] == "not available offline"
    assert results["unet2d"]["params"] < results["mobilenet_v2"]["params"]
    assert (out / "img" / "exp.png").read_bytes()[:4] == b"\x89PNG" and "](img/exp.png)" in text
    assert "Command: `.venv/bin/python benchmarks/compare_models.py --dataset" in text


def test_same_split_for_every_variant(compared):
    out, _ = compared
    splits = [json.loads((out / "runs" / n / "split.json").read_text()) for n in ("mobilenet_v2", "unet2d")]
    assert splits[0] == splits[1] and splits[0]["mode"] == "holdout"
    assert not set(splits[0]["folds"][0]["val"]) & set(splits[0]["folds"][0]["train"])
    assert not (out / "runs" / "resnet34-imagenet").exists()


def test_rerun_reuses_and_refuses_other_options(cmp, compared, tiny_dataset):  # noqa: F811
    out, _ = compared
    weights = out / "runs" / "unet2d" / "model" / "weights.safetensors"
    before = weights.stat().st_mtime_ns
    cmp.main(_argv(tiny_dataset, out, "unet2d"))
    assert weights.stat().st_mtime_ns == before  # reused, not retrained
    with pytest.raises(LimbsegError, match="other options"):
        cmp.main([*_argv(tiny_dataset, out, "unet2d"), "--epochs", "2"])  # argparse: the last one wins


def test_bad_variant_names(cmp, tiny_dataset, tmp_path):  # noqa: F811
    with pytest.raises(LimbsegError, match="unknown variant"):
        cmp.main(_argv(tiny_dataset, tmp_path, "resnet34,resnet99"))
    with pytest.raises(LimbsegError, match="none given"):
        cmp.main(_argv(tiny_dataset, tmp_path, " , "))
    assert not (tmp_path / "runs").exists() and not (tmp_path / "experiments.md").exists()
