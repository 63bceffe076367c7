"""End-to-end training on 3 tiny subjects: LOOCV files, fine-tuning, resume, CLI, splits, augmentation."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch

from limbseg.cli import main
from limbseg.errors import LimbsegError
from limbseg.models.bundle import load_bundle
from limbseg.training.augment import augment_slice
from limbseg.training.data import prepare_case, read_dataset
from limbseg.training.folds import make_splits
from limbseg.training.options import TrainOptions
from limbseg.training.run import train

RUN_FILES = {"split.json", "history.csv", "curves.png", "metrics.csv", "summary.md", "summary.json", "boxplot.png",
             "model", "fold0", "fold1", "fold2"}


def _opts(**kw) -> TrainOptions:
    base = {"folds": "loo", "epochs": 1, "image_size": 64, "batch_size": 8, "encoder": "mobilenet_v2",
            "device": "cpu", "max_slices_per_epoch": 8}
    return TrainOptions(**{**base, **kw})


@pytest.fixture(scope="module")
def loo_run(tiny_dataset, tmp_path_factory):
    torch.set_num_threads(1)
    run_dir = tmp_path_factory.mktemp("run") / "R"
    yield train(tiny_dataset, run_dir, _opts())
    shutil.rmtree(run_dir.parent, ignore_errors=True)  # three folds' checkpoints: 470 MB


def test_loocv_writes_all_run_files(loo_run):
    run_dir = loo_run.run_dir
    assert RUN_FILES <= {p.name for p in run_dir.iterdir()}
    split = json.loads((run_dir / "split.json").read_text())
    assert split["mode"] == "loo" and [f["val"] for f in split["folds"]] == [["case000"], ["case001"], ["case002"]]
    for f in split["folds"]:
        assert not set(f["val"]) & set(f["train"])
        assert (run_dir / f"fold{f['fold']}" / "checkpoint.pt").is_file()
        assert len(load_bundle(run_dir / f"fold{f['fold']}" / "model").state_dicts) == 1
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert len(rows) == 3 * 4 and {r["structure"] for r in rows} == {"tibia", "femur", "fibula", "pelvis"}
    assert all(0.0 <= float(r["dice"]) <= 1.0 for r in rows)
    hist = list(csv.DictReader(open(run_dir / "history.csv")))
    assert [int(h["fold"]) for h in hist] == [0, 1, 2]
    ensemble = load_bundle(run_dir / "model")
    assert len(ensemble.state_dicts) == 3 and ensemble.preprocessing["tile"] == [64, 64]
    assert ensemble.config["training"]["options"]["folds"] == "loo"
    assert (run_dir / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "| tibia |" in (run_dir / "summary.md").read_text()


def test_finetuning_reloads_bundle_every_fold(loo_run, tiny_dataset, tmp_path, monkeypatch):
    loaded = []
    import limbseg.training.run as run_mod

    real = run_mod._build

    def spy(arch, init_state, options):
        model = real(arch, init_state, options)
        loaded.append(model.state_dict()["encoder.features.0.0.weight"].clone())
        return model

    monkeypatch.setattr(run_mod, "_build", spy)
    src = load_bundle(loo_run.fold_bundles[0])
    res = train(tiny_dataset, tmp_path / "FT", _opts(init_from=str(loo_run.fold_bundles[0]), folds=2))
    first = src.state_dicts[0]["encoder.features.0.0.weight"]
    assert len(loaded) == 2 and all(torch.equal(t, first) for t in loaded)
    assert load_bundle(res.bundle).architecture == src.architecture


def test_fine_tuning_keeps_the_locator(tiny_dataset, loo_run, tmp_path):
    """A fine network trained --init-from a bundle with a coarse 3D stage is saved with that stage (weights and
    model.json entry), so a continued model is complete for segment without a hand-made copy."""
    from tests.conftest import add_tiny_locator

    from limbseg.models.bundle import read_locator

    source, net = add_tiny_locator(loo_run.fold_bundles[0], tmp_path / "with-locator", prior_weight=[1.0, 0.0, 0.0, 0.0])
    res = train(tiny_dataset, tmp_path / "FT", _opts(init_from=str(source), folds=None, val_fraction=0.34, epochs=1))
    for bundle in (res.bundle, *res.fold_bundles):
        carried = read_locator(bundle)
        assert carried is not None and carried.config["prior_weight"] == [1.0, 0.0, 0.0, 0.0]
        for k, v in net.state_dict().items():
            torch.testing.assert_close(carried.network.state_dict()[k], v)


def test_resume_continues_from_checkpoint(tiny_dataset, tmp_path):
    opts = _opts(folds=None, val_fraction=0.34, epochs=1)
    train(tiny_dataset, tmp_path / "R", opts)
    ck = torch.load(tmp_path / "R" / "fold0" / "checkpoint.pt", weights_only=True)
    assert ck["epoch"] == 1 and not ck["finished"] and set(ck["best_state"]) == set(ck["model"])
    res = train(tiny_dataset, tmp_path / "R", _opts(folds=None, val_fraction=0.34, epochs=2, resume=True))
    assert [h["epoch"] for h in res.history] == [1, 2]


def test_resume_of_a_completed_fold_only_exports(tiny_dataset, tmp_path, monkeypatch):
    import limbseg.training.run as run_mod

    train(tiny_dataset, tmp_path / "R", _opts(folds=None, val_fraction=0.34, epochs=1))
    monkeypatch.setattr(run_mod, "prepare_case", lambda *a, **k: pytest.fail("training data prepared again"))
    res = train(tiny_dataset, tmp_path / "R", _opts(folds=None, val_fraction=0.34, epochs=1, resume=True))
    ck = torch.load(tmp_path / "R" / "fold0" / "checkpoint.pt", weights_only=True)
    assert [h["epoch"] for h in res.history] == [1]
    saved = load_bundle(res.bundle).state_dicts[0]
    assert all(torch.equal(saved[k], v.float()) for k, v in ck["best_state"].items() if v.is_floating_point())


def test_cli_train_and_bad_options(tiny_dataset, tmp_path, capsys):
    rc = main(["train", str(tiny_dataset), "-o", str(tmp_path / "C"), "--folds", "2", "--epochs", "1",
               "--image-size", "64", "--batch-size", "8", "--encoder", "resnet34", "--encoder-weights", "none",
               "--max-slices-per-epoch", "4", "--device", "cpu", "--no-augment"])
    assert rc == 0 and (tmp_path / "C" / "model" / "model.json").is_file()
    assert main(["train", str(tiny_dataset), "-o", str(tmp_path / "X"), "--image-size", "50"]) == 2
    assert main(["train", str(tmp_path), "-o", str(tmp_path / "X")]) == 2
    assert "dataset.json is missing" in capsys.readouterr().err


def test_subject_level_splits():
    cases = {"a1": "A", "a2": "A", "b1": "B", "c1": "C", "d1": "D"}
    for folds in (2, "loo", None):
        split = make_splits(cases, folds, seed=3)
        for f in split["folds"]:
            assert {cases[c] for c in f["val"]}.isdisjoint({cases[c] for c in f["train"]})
        if folds is not None:
            assert sorted(c for f in split["folds"] for c in f["val"]) == sorted(cases)
    assert make_splits(cases, 2, seed=3) == make_splits(cases, 2, seed=3)
    with pytest.raises(LimbsegError):
        make_splits({"a": "A"}, "loo")
    with pytest.raises(LimbsegError):
        make_splits(cases, 9)


def test_training_input_is_what_segment_feeds_the_network(tiny_dataset):
    """One path: the training case's slices equal Predictor.prepare on the same region and window."""
    from limbseg.io import read_image
    from limbseg.segmentation.predict import Predictor
    from limbseg.segmentation.region import find_region
    from limbseg.training.run import _preprocessing

    cases, _, _ = read_dataset(tiny_dataset)
    pre = _preprocessing(_opts(neighbour_mm=6.0))
    pc = prepare_case(cases[0], preprocessing=pre)
    image = read_image(cases[0].image)
    region = find_region(image, whole_scan_fallback=True)
    predictor = Predictor([torch.nn.Identity()], pre, "cpu")
    inputs, canon = predictor.prepare(region.crop(image), region.window)
    ks = np.arange(pc.labels.shape[0])
    assert pc.offset == pytest.approx(1.5)  # 6 mm neighbours on 4 mm slices
    np.testing.assert_allclose(pc.inputs(ks, "2.5d"), inputs, atol=1e-3)  # float16 cache
    assert pc.labels.shape == (canon.shape[2], canon.shape[0], canon.shape[1])
    assert set(np.unique(pc.labels)) == {0, 1, 2, 3, 4} and set(pc.foreground) == {1, 2, 3, 4}
    for value, pos in pc.foreground.items():
        assert np.all(pc.labels[tuple(pos.T)] == value)


def test_augment_keeps_shapes_and_labels():
    rng = np.random.default_rng(0)
    x = rng.random((3, 64, 64)).astype(np.float32)
    y = np.zeros((64, 64), np.uint8)
    y[20:40, 20:40] = 2
    for seed in range(10):
        xa, ya = augment_slice(x, y, np.random.default_rng(seed))
        assert xa.shape == x.shape and ya.shape == y.shape and xa.dtype == np.float32
        assert set(np.unique(ya)) <= {0, 2} and 0 <= xa.min() and xa.max() <= 1
    a1 = augment_slice(x, y, np.random.default_rng(5))
    a2 = augment_slice(x, y, np.random.default_rng(5))
    assert np.array_equal(a1[0], a2[0])


def test_gui_train_service_runs_the_real_training(tiny_dataset, tmp_path):
    from limbseg.gui.services import Services

    seen = []
    result = Services().train(tiny_dataset, tmp_path / "G", {"encoder": "mobilenet_v2", "epochs": 1, "image_size": 64,
                                                             "max_slices_per_epoch": 8, "device": "cpu"},
                              lambda *args: seen.append(args))
    assert (result.bundle / "model.json").is_file() and seen


def test_torchrun_data_parallel_on_cpu(tiny_dataset, tmp_path):
    """Two processes under torchrun (Gloo on CPU): one run folder, written by rank 0, that records both."""
    import os
    import subprocess
    import sys

    run_dir = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "limbseg",
           "train", str(tiny_dataset), "-o", str(run_dir), "--epochs", "2", "--image-size", "64", "--batch-size", "4",
           "--encoder", "mobilenet_v2", "--encoder-weights", "none", "--device", "cpu", "--max-slices-per-epoch", "16",
           "--lr-schedule", "cosine", "--time-limit", "60"]  # the clock and the stop decision come from rank 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    card = json.loads((run_dir / "model" / "model.json").read_text())
    assert card["training"]["hardware"]["processes"] == 2
    rows = list(csv.DictReader(open(run_dir / "history.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    rank1 = torch.load(run_dir / "rank1" / "fold0" / "checkpoint.pt", weights_only=True)
    rank0 = torch.load(run_dir / "fold0" / "checkpoint.pt", weights_only=True)
    weights = [k for k in rank0["model"] if "running_" not in k and "num_batches" not in k]  # BN buffers are per rank
    assert weights and all(torch.equal(rank0["model"][k], rank1["model"][k]) for k in weights)  # same lr on all ranks
    assert (run_dir / "summary.json").is_file()
    assert not (run_dir / "rank1" / "model").exists()  # only rank 0 writes bundles and reports


def test_time_limit_ends_the_fold_and_cosine_follows_the_time():
    from limbseg.training.loop import lr_factor, out_of_time, run_progress

    opts = _opts(epochs=100, lr_schedule="cosine", time_limit_min=1.0)
    assert run_progress(opts, 10, 0.0) == pytest.approx(0.1)  # epochs ahead of the clock
    assert run_progress(opts, 10, 30.0) == pytest.approx(0.5)  # half the minute used
    assert lr_factor(opts, 0, 0.0) == pytest.approx(1.0)
    assert lr_factor(opts, 10, 30.0) == pytest.approx(0.505)
    assert lr_factor(opts, 10, 90.0) == pytest.approx(0.01)  # past the limit: the floor, never below
    assert out_of_time(opts, 50.0, 11.0) and not out_of_time(opts, 50.0, 9.0)
    assert not out_of_time(_opts(), 1e9, 1e9)  # no limit
    study = _opts(epochs=100, lr=1e-4, time_limit_min=1.0)  # the study's linear decay ignores the clock
    assert lr_factor(study, 10, 59.0) == pytest.approx(1 - 1e-6 * 10 / 1e-4)
    with pytest.raises(LimbsegError, match="time-limit"):
        _opts(time_limit_min=0).validate()


def test_time_limited_run_stops_early_and_anneals(tiny_dataset, tmp_path):
    res = train(tiny_dataset, tmp_path / "T", _opts(folds=None, val_fraction=0.34, epochs=50, lr_schedule="cosine",
                                                   time_limit_min=1e-6))
    assert [h["epoch"] for h in res.history] == [1]  # the first epoch already used up the budget
    ck = torch.load(tmp_path / "T" / "fold0" / "checkpoint.pt", weights_only=True)
    assert ck["finished"] and ck["epoch"] == 1
    assert load_bundle(res.bundle).config["training"]["options"]["time_limit_min"] == 1e-6


def test_cases_prepared_in_worker_processes_match_serial(tiny_dataset):
    from functools import partial

    from limbseg.training.run import _map_cases

    cases, _, _ = read_dataset(tiny_dataset)
    prepare = partial(prepare_case, preprocessing={"spacing_mm": 1.875, "channels": "2.5d"})
    serial, parallel = _map_cases(prepare, cases, 0), _map_cases(prepare, cases, 2)
    assert [c.case_id for c in parallel] == [c.case_id for c in cases]
    for a, b in zip(serial, parallel, strict=True):
        assert np.array_equal(a.image, b.image) and np.array_equal(a.labels, b.labels)


def test_augment_keeps_image_and_labels_aligned(monkeypatch):
    """Rotation, scaling and flips move the image and the labels together (intensity changes off)."""
    import limbseg.training.augment as aug

    monkeypatch.setattr(aug, "P", {**{k: 0.0 for k in aug.P}, "flip": 1.0, "affine": 1.0})
    y = np.zeros((64, 64), np.uint8)
    y[10:30, 14:50] = 2  # asymmetric shapes: a wrong flip or rotation direction shows
    y[40:56, 8:20] = 3
    x = np.repeat((y / 4.0).astype(np.float32)[None], 3, axis=0)
    for seed in range(8):
        xa, ya = augment_slice(x, y, np.random.default_rng(seed))
        assert (ya == 2).sum() > 400 and not np.array_equal(ya, y)
        from_image = np.rint(xa[1] * 4).astype(np.uint8)  # the label each image pixel was moved with
        interior = ndimage_interior(ya)
        assert np.mean(from_image[interior] == ya[interior]) > 0.99


def ndimage_interior(labels: np.ndarray) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood has one label (interpolation blurs the image at edges)."""
    from scipy import ndimage

    return ndimage.maximum_filter(labels, 3) == ndimage.minimum_filter(labels, 3)
