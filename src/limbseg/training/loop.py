"""Train one fold: loss, optimiser, validation, early stopping, checkpoints, resume.

The recipe: Adam, learning rate decaying linearly by ``lr_decay_per_epoch`` (1e-6) each epoch (the
study's) or cosine, cross-entropy + batch Dice on the foreground classes (:func:`make_loss`), early stopping when the
validation loss has not improved for ``patience`` epochs, best weights by validation mean DSC.
With ``time_limit_min`` a fold also ends before an epoch that would overrun that many minutes, and the
cosine schedule follows the fraction of the time used (so a time-bounded run still anneals).
``FOLD_DIR/checkpoint.pt`` (weights, optimiser, epoch, RNG, history, best weights;
mixed-precision scaler; tensors and plain types only, read back with ``weights_only=True``) is written atomically every
epoch, and ``FOLD_DIR/history.csv`` gets one row per epoch.
"""

from __future__ import annotations

import copy
import csv
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from limbseg.errors import LimbsegError
from limbseg.io.atomic import atomic_path
from limbseg.segmentation.predict import pad_to_multiple
from limbseg.training import distributed
from limbseg.training.data import PreparedCase, TileDataset
from limbseg.training.distributed import World
from limbseg.training.options import TrainOptions

Progress = Callable[[float, str, dict], None]


@dataclass
class FoldResult:
    """The outcome of one fold: best weights (CPU float32), per-epoch history, timings."""

    fold: int
    best_state: dict[str, torch.Tensor]
    best_epoch: int
    best_dsc: float
    history: list[dict[str, Any]] = field(default_factory=list)
    time_s: float = 0.0


def make_loss(name: str, num_classes: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Loss on logits (B, C, H, W) and integer targets (B, 1, H, W).

    ``"dicece"`` (the default; nnU-Net's recipe): cross-entropy + soft Dice over the **whole batch** on the
    **foreground classes** only, so a tile without pelvis does not reward predicting no pelvis.
    ``"dicefocal"``: the study's Dice + focal loss as MONAI computes it by default, kept for comparison: Dice
    per tile and class with background included, and a focal term on per-class sigmoids (MONAI's
    ``DiceFocalLoss`` does not pass ``softmax`` on to its focal half). ``"dice"``, ``"ce"``: one term only
    (Dice as in ``"dicece"``).
    """
    if name == "ce":
        ce = nn.CrossEntropyLoss()
        return lambda logits, target: ce(logits, target[:, 0])
    from monai.losses import DiceCELoss, DiceFocalLoss, DiceLoss

    if name == "dice":
        return DiceLoss(include_background=False, to_onehot_y=True, softmax=True, batch=True)
    if name == "dicefocal":
        return DiceFocalLoss(to_onehot_y=True, softmax=True)
    return DiceCELoss(include_background=False, to_onehot_y=True, softmax=True, batch=True)


def lr_factor(options: TrainOptions, epoch: int, elapsed_s: float = 0.0) -> float:
    """Learning-rate multiplier for ``epoch`` (0-based): the study's linear decay, or cosine; never below 1 %.

    The cosine follows the run's progress: the larger of ``epoch / epochs`` and, with a time limit, the
    fraction of ``time_limit_min`` already used.
    """
    floor = 0.01
    if options.lr_schedule == "cosine":
        return floor + (1 - floor) * 0.5 * (1 + float(np.cos(np.pi * run_progress(options, epoch, elapsed_s))))
    return max(1.0 - options.lr_decay_per_epoch * epoch / options.lr, floor)


def run_progress(options: TrainOptions, epoch: int, elapsed_s: float) -> float:
    """Fraction of the run done, in [0, 1]: by epochs, or by time when the time limit comes first."""
    done = epoch / options.epochs
    if options.time_limit_min:
        done = max(done, elapsed_s / (60.0 * options.time_limit_min))
    return min(done, 1.0)


def out_of_time(options: TrainOptions, elapsed_s: float, last_epoch_s: float) -> bool:
    """True when another epoch as long as the last one would end past the time limit."""
    return bool(options.time_limit_min) and elapsed_s + last_epoch_s > 60.0 * float(options.time_limit_min)


def _dice_counts(pred: np.ndarray, ref: np.ndarray, values: list[int]) -> np.ndarray:
    """(n_structures, 3): intersection, |pred|, |ref| per structure."""
    return np.array([[np.sum((pred == v) & (ref == v)), np.sum(pred == v), np.sum(ref == v)] for v in values])


@torch.no_grad()
def validate(model: nn.Module, cases: list[PreparedCase], loss_fn, values: list[int], device: torch.device,
             batch_size: int, stride: int = 1, channels: str = "2.5d") -> dict[str, Any]:
    """Validation loss (mean over slices) and DSC per case, on whole slices of each case's network region
    (what ``segment`` runs the network on), padded to multiples of 32.

    ``stride`` > 1 validates on every n-th slice only (their 2.5D neighbours still come from the full volume).
    """
    model.eval()
    losses, per_case, n = [], [], 0
    for case in cases:
        counts = np.zeros((len(values), 3))
        ks = np.arange(0, case.labels.shape[0], stride)
        n += len(ks)
        for s in range(0, len(ks), batch_size):
            batch_ks = ks[s:s + batch_size]
            x, (h, w) = pad_to_multiple(torch.from_numpy(case.inputs(batch_ks, channels)).to(device))
            ref = case.labels[batch_ks]
            y, _ = pad_to_multiple(torch.from_numpy(ref.astype(np.int64))[:, None].to(device))
            with torch.autocast("cuda", enabled=device.type == "cuda"):
                logits = model(x).float()
            losses.append(float(loss_fn(logits, y)) * x.shape[0])
            pred = logits.argmax(1)[:, :h, :w].cpu().numpy()
            counts += _dice_counts(pred, ref, values)
        inter, sp, sr = counts.T
        dsc = np.where(sp + sr > 0, 2 * inter / np.maximum(sp + sr, 1), np.nan)
        per_case.append(dsc)
    dsc = np.nanmean(np.array(per_case), axis=0) if per_case else np.full(len(values), np.nan)
    case_means = [float(np.nanmean(d)) for d in per_case if np.isfinite(d).any()]
    return {"val_loss": sum(losses) / max(n, 1), "val_dsc": float(np.mean(case_means)) if case_means else 0.0,
            "per_class": [float(v) for v in dsc]}


def _write_history(rows: list[dict[str, Any]], path: Path) -> None:
    if not rows:
        return
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}


def _load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means an unusable checkpoint
        raise LimbsegError(f"cannot resume from this checkpoint ({type(exc).__name__}); delete it to restart",
                           path) from exc


def train_fold(model: nn.Module, fold: int, fold_dir: Path, train_cases: list[PreparedCase],
               val_cases: list[PreparedCase], options: TrainOptions, values: list[int], num_classes: int,
               device: torch.device, progress: Progress | None = None, world: World | None = None) -> FoldResult:
    """Train ``model`` (already initialised) on one fold and return its best weights.

    With several processes (``world``, see :mod:`limbseg.training.distributed`) the model is wrapped in DDP,
    each rank trains on its share of the tiles, and rank 0's validation decides for all.
    """
    from tqdm.auto import tqdm

    world = world or World()

    fold_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = fold_dir / "checkpoint.pt"
    torch.manual_seed(options.seed + fold)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(params, lr=options.lr)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    loss_fn = make_loss(options.loss, num_classes)
    data = TileDataset(train_cases, options.image_size, augment=options.augment, channels=options.channels,
                       seed=options.seed + 1000 * fold, max_slices=options.max_slices_per_epoch,
                       foreground_fraction=options.foreground_fraction)
    state = {"epoch": 0, "best_dsc": -1.0, "best_epoch": -1, "best_loss": float("inf"), "bad_epochs": 0,
             "history": [], "finished": False}
    best_state = _cpu_state(model)
    if options.resume and ckpt_path.is_file():
        ckpt = _load_checkpoint(ckpt_path)
        model.load_state_dict(ckpt["model"])
        optimiser.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        torch.set_rng_state(ckpt["torch_rng"])
        best_state = ckpt["best_state"]
        state = {k: ckpt[k] for k in state}
    start = time.perf_counter() - (state["history"][-1]["time_s"] if state["history"] else 0.0)
    net = distributed.wrap(model, world, device)
    share = distributed.sampler(data, world, seed=options.seed + 1000 * fold)
    for epoch in range(state["epoch"], options.epochs):
        if state["finished"]:
            break
        epoch_start = time.perf_counter()
        elapsed = distributed.broadcast(epoch_start - start, world)  # every rank follows rank 0's clock
        lr = options.lr * lr_factor(options, epoch, elapsed)
        for group in optimiser.param_groups:
            group["lr"] = lr
        data.set_epoch(epoch)
        gen = torch.Generator().manual_seed(options.seed * 7919 + epoch * 31 + fold)
        if share is not None:
            share.set_epoch(epoch)
        n_tiles = len(data) // world.size
        loader = torch.utils.data.DataLoader(data, batch_size=options.batch_size, shuffle=share is None,
                                             sampler=share, generator=gen, num_workers=options.num_workers,
                                             drop_last=n_tiles > options.batch_size,
                                             pin_memory=device.type == "cuda")
        net.train()
        total, seen = 0.0, 0
        bar = tqdm(loader, desc=f"fold {fold} epoch {epoch + 1}/{options.epochs}", leave=False, unit="batch",
                   disable=not world.is_main)
        for x, y in bar:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            optimiser.zero_grad(set_to_none=True)
            with torch.autocast("cuda", enabled=device.type == "cuda"):
                loss = loss_fn(net(x).float(), y)
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            total += float(loss.detach()) * x.shape[0]
            seen += x.shape[0]
            bar.set_postfix(loss=f"{total / seen:.4f}")
        bar.close()
        val = validate(model, val_cases, loss_fn, values, device, options.batch_size,
                       options.val_slice_stride, options.channels) if world.is_main else None
        val = distributed.broadcast(val, world)
        total, seen = distributed.sum_over_ranks([total, seen], world, device)  # the loss over every rank's tiles
        row = {"fold": fold, "epoch": epoch + 1, "lr": lr, "train_loss": total / max(seen, 1),
               "val_loss": val["val_loss"], "val_dsc": val["val_dsc"],
               **{f"val_dsc_{v}": d for v, d in zip(values, val["per_class"], strict=True)},
               "time_s": round(time.perf_counter() - start, 2)}
        state["history"].append(row)
        if val["val_dsc"] > state["best_dsc"]:
            state["best_dsc"], state["best_epoch"] = val["val_dsc"], epoch + 1
            best_state = _cpu_state(model)
        if val["val_loss"] < state["best_loss"] - 1e-6:
            state["best_loss"], state["bad_epochs"] = val["val_loss"], 0
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch + 1
        now = time.perf_counter()
        # early stop (more epochs may resume), or no time for another epoch (rank 0 decides for all)
        no_time = distributed.broadcast(out_of_time(options, now - start, now - epoch_start), world)
        state["finished"] = state["bad_epochs"] >= options.patience or no_time
        _save_checkpoint(ckpt_path, model, optimiser, best_state, state, scaler)
        _write_history(state["history"], fold_dir / "history.csv")
        if progress and world.is_main:
            progress((epoch + 1) / options.epochs, f"fold {fold} epoch {epoch + 1}", row)
    return FoldResult(fold, best_state, int(state["best_epoch"]), float(state["best_dsc"]),
                      copy.deepcopy(state["history"]), time.perf_counter() - start)


def completed_fold(fold: int, fold_dir: Path, options: TrainOptions) -> FoldResult | None:
    """With ``--resume``: the result of a fold whose checkpoint already reached ``options.epochs``
    (or stopped early), so its training data need not be prepared again; else None.

    This is also how an interrupted run is turned into a bundle early: ``--resume --epochs N``
    with N the epochs already done.
    """
    path = fold_dir / "checkpoint.pt"
    if not (options.resume and path.is_file()):
        return None
    ckpt = _load_checkpoint(path)
    if not (ckpt["finished"] or int(ckpt["epoch"]) >= options.epochs):
        return None
    history = list(ckpt["history"])
    return FoldResult(fold, ckpt["best_state"], int(ckpt["best_epoch"]), float(ckpt["best_dsc"]), history,
                      float(history[-1]["time_s"]) if history else 0.0)


def _save_checkpoint(path: Path, model, optimiser, best_state, state: dict[str, Any], scaler=None) -> None:
    payload = {"model": _cpu_state(model), "optimizer": optimiser.state_dict(),
               "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else {},
               "torch_rng": torch.get_rng_state(), "best_state": best_state, **state}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
