"""benchmarks/compare_models.py decides four things; each is tested on a case whose answer is known:

* which variants can run offline (ImageNet weights present in the local Hugging Face cache or not), with the
  real check pointed at a cache folder made in the test;
* the numbers of the table (mean ± SD over validation subjects, per bone and of each subject's mean), on
  hand-made per-subject scores and against the run's own metrics.csv;
* that every variant used the same subject split (a run with another split is refused);
* whether a finished run is reused or refused (other options), and which variant names exist.

Two variants train for one epoch on the tiny 3-subject dataset of tests/training.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import shutil
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


@pytest.fixture(scope="module")
def hf_cache(tmp_path_factory):
    """An empty Hugging Face hub cache for the whole module: no ImageNet weights, whatever this machine has."""
    from huggingface_hub import constants

    cache = tmp_path_factory.mktemp("hf-hub")
    mp = pytest.MonkeyPatch()
    mp.setattr(constants, "HF_HUB_CACHE", str(cache))
    yield cache
    mp.undo()


def _argv(dataset: Path, out: Path, variants: str) -> list[str]:
    return ["--dataset", str(dataset), "--out", str(out / "runs"), "--variants", variants, "--epochs", "1",
            "--image-size", "64", "--max-slices-per-epoch", "8", "--batch-size", "8", "--device", "cpu",
            "--threads", "1", "--doc", str(out / "experiments.md"), "--figure", str(out / "img" / "exp.png")]


@pytest.fixture(scope="module")
def compared(cmp, tiny_dataset, tmp_path_factory, hf_cache):  # noqa: F811 - pytest fixture injection
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("cmp")
    doc = out / "experiments.md"
    doc.write_text("# Comparisons\n\nintro kept\n\n<!-- experiments:begin -->\nold\n<!-- experiments:end -->\n\ntail\n")
    results = cmp.main(_argv(tiny_dataset, out, "mobilenet_v2,unet2d,resnet34-imagenet"))
    yield out, results
    shutil.rmtree(out, ignore_errors=True)  # two runs' checkpoints and weights: 200 MB


def test_imagenet_check_reads_the_local_cache(cmp, hf_cache):
    from limbseg.models.factory import imagenet_cache_candidates

    assert not cmp.imagenet_available("resnet34")  # the empty cache
    (path,) = imagenet_cache_candidates("resnet34")
    assert Path(path).is_relative_to(hf_cache)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"weights")
    try:
        assert cmp.imagenet_available("resnet34") and not cmp.imagenet_available("resnet50")
    finally:
        shutil.rmtree(hf_cache / path.relative_to(hf_cache).parts[0])
    assert not cmp.imagenet_available("resnet34")


def test_variant_without_offline_weights_is_listed_not_trained(compared):
    out, results = compared
    assert results["resnet34-imagenet"] == "not available offline"
    assert not (out / "runs" / "resnet34-imagenet").exists()
    text = (out / "experiments.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| resnet34-imagenet |"))
    assert "not available offline" in row and not re.search(NUM, row)


def test_table_numbers_on_known_scores(cmp):
    results = {
        "resnet34": {"per_case": {"c1": {"tibia": 0.9, "femur": 0.8}, "c2": {"tibia": 0.5, "femur": 0.8}},
                     "time_s": 30.0, "params": 2_500_000},
        "unet2d": {"per_case": {"c1": {"tibia": 0.4, "femur": 0.6}}, "time_s": 150.0, "params": 1_000_000},
        "resnet34-imagenet": "not available offline",
    }
    md, bones = cmp.table(results)
    rows = {line.split("|")[1].strip(): line for line in md.splitlines()[2:]}
    assert bones == ["tibia", "femur"] and md.splitlines()[0].split("|")[3:6] == [" tibia ", " femur ", " mean "]
    # tibia (0.9, 0.5): 0.700 ± 0.283 (SD with n - 1); femur (0.8, 0.8): 0.800 ± 0.000;
    # subject means 0.85 and 0.65: 0.750 ± 0.141
    assert re.findall(NUM, rows["resnet34"]) == [("0.700", "0.283"), ("0.800", "0.000"), ("0.750", "0.141")]
    assert rows["resnet34"].endswith("| 2 | 30.0 s | 2.50 M |")
    assert re.findall(NUM, rows["unet2d"]) == [("0.400", "0.000"), ("0.600", "0.000"), ("0.500", "0.000")]
    assert rows["unet2d"].endswith("| 1 | 2.5 min | 1.00 M |")
    assert "not available offline" in rows["resnet34-imagenet"]


def test_written_table_matches_the_runs_metrics(compared):
    out, results = compared
    text = (out / "experiments.md").read_text()
    assert text.startswith("# Comparisons\n\nintro kept") and text.rstrip().endswith("tail")
    assert "\nold\n" not in text and text.count("<!-- experiments:begin -->") == 1
    for name in ("mobilenet_v2", "unet2d"):
        with open(out / "runs" / name / "metrics.csv", newline="") as fh:
            scores: dict[str, list[float]] = {}
            for r in csv.DictReader(fh):
                scores.setdefault(r["structure"], []).append(float(r["dice"]))
        row = next(line for line in text.splitlines() if line.startswith(f"| {name} |"))
        means = [float(m) for m, _ in re.findall(NUM, row)]
        expected = [sum(v) / len(v) for v in (scores[b] for b in ("tibia", "femur", "fibula", "pelvis"))]
        assert means[:4] == pytest.approx(expected, abs=5e-4), (name, row)
        n_val = len(json.loads((out / "runs" / name / "split.json").read_text())["folds"][0]["val"])
        assert f"| {n_val} |" in row
    assert results["unet2d"]["params"] < results["mobilenet_v2"]["params"]
    assert (out / "img" / "exp.png").read_bytes()[:4] == b"\x89PNG" and "](img/exp.png)" in text
    assert "Command: `.venv/bin/python benchmarks/compare_models.py --dataset" in text


def test_same_split_for_every_variant(compared):
    out, _ = compared
    splits = [json.loads((out / "runs" / n / "split.json").read_text()) for n in ("mobilenet_v2", "unet2d")]
    assert splits[0] == splits[1] and splits[0]["mode"] == "holdout"
    assert not set(splits[0]["folds"][0]["val"]) & set(splits[0]["folds"][0]["train"])


def test_a_run_with_another_split_is_refused(cmp, compared, tiny_dataset, tmp_path):  # noqa: F811
    out, _ = compared
    shutil.copytree(out / "runs", tmp_path / "runs")
    split_file = tmp_path / "runs" / "unet2d" / "split.json"
    split = json.loads(split_file.read_text())
    fold = split["folds"][0]
    fold["train"], fold["val"] = fold["train"][1:] + fold["val"], fold["train"][:1]  # another subject held out
    split_file.write_text(json.dumps(split))
    with pytest.raises(LimbsegError, match="different subject splits"):
        cmp.main(_argv(tiny_dataset, tmp_path, "mobilenet_v2,unet2d"))
    assert not (tmp_path / "experiments.md").exists()


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
