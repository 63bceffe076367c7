"""``train()``: all folds of a run, volume-level evaluation, bundles and reports.

Run folder (``RUN_DIR``)::

    split.json                  subject-level split (reused by --resume)
    fold<k>/checkpoint.pt       resumable state, written every epoch
    fold<k>/history.csv         that fold's epochs
    fold<k>/model/              that fold's bundle (best validation mean DSC)
    model/                      the bundle to use: all folds as an ensemble (or the single fold's model)
    history.csv, curves.png     all folds' epochs and learning curves
    metrics.csv, summary.json, summary.md, boxplot.png
                                per-subject, per-bone volume-level metrics of the validation subjects
"""

from __future__ import annotations

import functools
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from limbseg.errors import LimbsegError
from limbseg.labels import LabelScheme
from limbseg.training import distributed
from limbseg.training import folds as folds_mod
from limbseg.training.data import Case, prepare_case, read_dataset
from limbseg.training.options import TrainOptions

Progress = Callable[[float, str, dict], None]


@dataclass
class TrainResult:
    """Where a run's outputs are and what it measured."""

    run_dir: Path
    bundle: Path
    fold_bundles: list[Path]
    summary: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)


def _preprocessing(options: TrainOptions, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The bundle's ``preprocessing``: spacing and channels from ``base`` (a bundle being fine-tuned, whose
    network is built for them) or the options; tile, 2.5D distance and normalisation always this run's."""
    from limbseg.segmentation.region import WINDOW_METHOD

    pre = {"spacing_mm": options.spacing_mm, "channels": options.channels, **(base or {})}
    return {**pre, "tile": [options.image_size, options.image_size], "neighbour_mm": options.neighbour_mm,
            "normalisation": {"method": WINDOW_METHOD, "lower": 0.5, "upper": 99.5}}


def _initial_state(options: TrainOptions, scheme: LabelScheme):
    """(architecture, preprocessing, state dict or None) — from --init-from or the options."""
    from limbseg.models.factory import architecture

    if options.init_from is None:
        arch = architecture(options.arch, options.encoder, 3, scheme.num_classes, options.decoder_channels)
        return arch, _preprocessing(options), None
    from limbseg.models.bundle import load_bundle

    bundle = load_bundle(options.init_from)
    if bundle.scheme.to_dataset_labels() != scheme.to_dataset_labels():
        raise LimbsegError(f"the model's labels {bundle.scheme.to_dataset_labels()} differ from the dataset's "
                           f"{scheme.to_dataset_labels()}", options.init_from)
    base = {k: bundle.preprocessing[k] for k in ("spacing_mm", "channels") if k in bundle.preprocessing}
    return bundle.architecture, _preprocessing(options, base), bundle.state_dicts[0]


def _build(arch: dict[str, Any], init_state, options: TrainOptions) -> torch.nn.Module:
    """A fresh model for one fold: re-initialised (or re-loaded from --init-from) every fold."""
    from limbseg.models.factory import build_model, set_encoder_frozen

    weights = None if init_state is not None else options.encoder_weights
    model = build_model(arch, weights)
    if init_state is not None:
        model.load_state_dict(init_state)
    set_encoder_frozen(model, options.freeze_encoder)
    return model


def _split(cases: list[Case], run_dir: Path, options: TrainOptions) -> dict[str, Any]:
    path = run_dir / "split.json"
    if options.resume and path.is_file():
        split = folds_mod.load_split(path)
        known = {c.case_id for c in cases}
        if any(cid not in known for f in split["folds"] for cid in f["train"] + f["val"]):
            raise LimbsegError("split.json names cases that are not in the dataset; cannot resume", path)
        return split
    split = folds_mod.make_splits({c.case_id: c.subject for c in cases}, options.folds,
                                  val_fraction=options.val_fraction, seed=options.seed)
    folds_mod.save_split(split, path)
    return split


def _config(arch, pre, scheme, options, dataset_dir, metrics, time_s, device, folds,
            processes: int = 1) -> dict[str, Any]:
    cmd = " ".join(sys.argv) if Path(sys.argv[0]).name in ("limbseg", "__main__.py") else None
    return {"architecture": arch, "labels": scheme.to_json(), "preprocessing": pre,
            "training": {"command": cmd, "dataset": str(dataset_dir), "options": options.to_json(),
                         "folds": folds, "time_s": round(time_s, 1),
                         "hardware": {"device": str(device), "machine": platform.machine(),
                                      "processes": processes,
                                      "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None}},
            "metrics": metrics}


def _evaluate_fold(model, pre, scheme, val_cases: list[Case], fold: int, device,
                   locator_from: str | None = None) -> list[dict[str, Any]]:
    """Volume-level metrics of the fold's validation cases: each whole scan predicted on its native grid
    through ``segment``'s path (:meth:`limbseg.segmentation.predict.Predictor.predict_scan`: network region, window),
    never on a crop chosen by the truth. ``locator_from``: a bundle whose coarse 3D stage the new model will
    carry (:func:`limbseg.training.locator.carry_locator`); it then finds the region and gives its prior, as in
    ``segment``."""
    from limbseg.evaluation import evaluate_pair
    from limbseg.io import read_image
    from limbseg.models.bundle import read_locator
    from limbseg.segmentation.predict import Predictor
    from limbseg.segmentation.region import find_region
    from limbseg.volume import LabelMap

    predictor = Predictor([model], pre, device, scheme=scheme)
    locator = read_locator(locator_from, device) if locator_from is not None else None
    predictor.use_locator(locator)
    rows = []
    for case in val_cases:
        image, ref = read_image(case.image), LabelMap.from_volume(read_image(case.label), scheme)
        region = find_region(image, whole_scan_fallback=True, normalisation=pre.get("normalisation"),
                             locator=locator)
        pred = predictor.predict_scan(image, region)
        rows += [{"fold": fold, **r} for r in evaluate_pair(pred, ref, case=case.case_id)]
    return rows


def _map_cases(func: Callable[[Case], Any], cases: list[Case], workers: int) -> list[Any]:
    """``[func(c) for c in cases]``, in ``workers`` fresh processes when there are several cases.

    Spawned processes: the parent may already hold a CUDA context, which must not be forked.
    """
    if workers <= 1 or len(cases) <= 1:
        return [func(c) for c in cases]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(min(workers, len(cases)), mp_context=mp.get_context("spawn")) as pool:
        return list(pool.map(func, cases))


def train(dataset_dir: str | Path, run_dir: str | Path, options: TrainOptions,
          progress: Progress | None = None, *, case_cache: dict[Any, Any] | None = None) -> TrainResult:
    """Train every fold, evaluate the held-out subjects, write bundles and reports into ``run_dir``.

    ``case_cache``: a dict shared between calls on the same dataset (model comparisons) so that each case
    is read and prepared once per preprocessing (spacing, channels, margin, normalisation).
    """
    from limbseg.evaluation import summarise, write_report
    from limbseg.models.bundle import save_bundle
    from limbseg.segmentation.predict import resolve_device
    from limbseg.training.locator import carry_locator
    from limbseg.training.loop import completed_fold, train_fold
    from limbseg.training.reports import plot_curves, write_history

    options.validate()
    world = distributed.init_from_env(options.device)
    device = distributed.device_for(world, resolve_device(options.device))
    cases, scheme, _ = read_dataset(dataset_dir)
    run_dir = Path(run_dir) if world.is_main else Path(run_dir) / f"rank{world.rank}"  # see training.distributed
    run_dir.mkdir(parents=True, exist_ok=True)
    split = _split(cases, run_dir, options)
    arch, pre, init_state = _initial_state(options, scheme)
    by_id = {c.case_id: c for c in cases}
    prepared: dict[Any, Any] = case_cache if case_cache is not None else {}
    recipe = (str(Path(dataset_dir).resolve()), json.dumps(pre, sort_keys=True))

    def prepared_cases(ids: list[str]) -> list[Any]:
        """Cases as network inputs, prepared once and only when a fold still needs training."""
        missing = [cid for cid in ids if (cid, recipe) not in prepared]
        prepare = functools.partial(prepare_case, preprocessing=pre)
        for cid, case in zip(missing, _map_cases(prepare, [by_id[c] for c in missing], options.num_workers),
                             strict=True):
            prepared[(cid, recipe)] = case
        return [prepared[(cid, recipe)] for cid in ids]

    n_folds = len(split["folds"])
    rows, history, states, fold_bundles, fold_info = [], [], [], [], []
    t0 = time.perf_counter()
    for f in split["folds"]:
        k = int(f["fold"])
        torch.manual_seed(options.seed + k)  # seeded initial weights: a run is reproducible
        model = _build(arch, init_state, options)

        def fold_progress(frac: float, msg: str, row: dict, k: int = k) -> None:
            if progress:
                progress((k + frac) / n_folds, msg, row)

        res = completed_fold(k, run_dir / f"fold{k}", options) or train_fold(
            model, k, run_dir / f"fold{k}", prepared_cases(f["train"]),
            prepared_cases(f["val"]) if world.is_main else [], options,
            scheme.values, scheme.num_classes, device, fold_progress, world)
        if not world.is_main:
            continue  # rank 0 evaluates and writes the run
        model.load_state_dict(res.best_state)
        fold_rows = _evaluate_fold(model, pre, scheme, [by_id[c] for c in f["val"]], k, device, options.init_from)
        rows += fold_rows
        history += res.history
        states.append(res.best_state)
        info = {"fold": k, "val": f["val"], "best_epoch": res.best_epoch, "best_val_dsc_slices": res.best_dsc,
                "epochs_run": len(res.history)}
        fold_info.append(info)
        cfg = _config(arch, pre, scheme, options, dataset_dir, {**info, "summary": summarise(fold_rows)},
                      res.time_s, device, [info], world.size)
        fold_bundles.append(save_bundle(run_dir / f"fold{k}" / "model", [res.best_state], cfg,
                                        half=options.half_bundle))
        if options.init_from is not None:
            carry_locator(options.init_from, fold_bundles[-1])
    distributed.shutdown(world)
    if not world.is_main:
        return TrainResult(run_dir, run_dir, [], {})
    summary_extra = {"folds": fold_info, "split_mode": split["mode"]}
    write_history(history, run_dir / "history.csv")
    plot_curves(history, run_dir / "curves.png")
    summary = write_report(rows, run_dir, title=f"Cross-validation ({split['mode']})", extra=summary_extra)
    members = states if options.ensemble else states[:1]
    cfg = _config(arch, pre, scheme, options, dataset_dir, {"summary": summary, "cross_validation": split["mode"]},
                  time.perf_counter() - t0, device, fold_info, world.size)
    bundle = save_bundle(run_dir / "model", members, cfg, half=options.half_bundle)
    if options.init_from is not None:  # the fine network keeps the coarse 3D stage it was trained beside
        carry_locator(options.init_from, bundle)
    return TrainResult(run_dir, bundle, fold_bundles, summary, rows, history)
