"""Training the locator (:mod:`limbseg.segmentation.locate`) on whole scans at 6 mm.

Cases are prepared once (:func:`prepare_locator_case`: the raw coarse image and labels, on the grid that
:func:`~limbseg.segmentation.locate.locator_input` makes for a scan). Each training sample is a fixed-size
crop of a case in which a random **field of view** is kept and the rest set to zero, as in the scans labs
have (:func:`sample_crop`): the whole body, a cut at mid-thigh, one knee, one leg; the crop is then
normalised over that field of view exactly as ``segment`` normalises a scan (so a knee-only scan is
scaled by the knee's own intensities), labels outside it are background, and it is mirrored left-right
at random (labels carry no side). Loss: cross-entropy + batch Dice on the bones (as the fine network).
Validation: whole validation scans through :meth:`~limbseg.segmentation.locate.Locator.locate`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from limbseg.segmentation.locate import SPACING_MM, coarse_image, coarse_labels, normalise_visible
from limbseg.volume import LabelMap

log = logging.getLogger(__name__)


@dataclass
class LocatorOptions:
    """Settings of a locator training run (recorded in the bundle's ``locator.training``)."""

    minutes: float = 30.0
    steps: int | None = None  #: end after this many steps instead (tests: the same on any machine)
    crop: tuple[int, int, int] = (48, 48, 80)
    batch_size: int = 4
    lr: float = 3e-3
    seed: int = 0
    features: tuple[int, ...] = (8, 16, 32, 64)
    spacing_mm: float = SPACING_MM
    full_view_fraction: float = 0.3  #: samples that keep the whole field of view
    one_leg_fraction: float = 0.3  #: samples cut at the legs' midline to one leg
    foreground_fraction: float = 0.5  #: crops centred on a voxel of a random bone in view (rare bones too)
    validate_every_min: float = 5.0
    threads: int = 0  #: torch threads (0: torch's default)
    device: str = "cpu"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class LocatorCase:
    """One prepared case: raw coarse image (float32) and labels (uint8) on the same (I, J, K) grid."""

    case_id: str
    image: np.ndarray
    labels: np.ndarray

    @cached_property
    def bone_voxels(self) -> dict[int, np.ndarray]:
        """Per bone value present: its voxel positions (int (N, 3), at most 4,000, a fixed subsample)."""
        out = {}
        for value in (int(v) for v in np.unique(self.labels) if v > 0):
            where = np.argwhere(self.labels == value)
            out[value] = where[:: max(1, len(where) // 4000)]
        return out

    @cached_property
    def bone_z(self) -> tuple[int, int] | None:
        """(first, last + 1) slice holding bone, or None."""
        ks = np.flatnonzero(self.labels.any(axis=(0, 1)))
        return (int(ks[0]), int(ks[-1]) + 1) if ks.size else None

    @cached_property
    def leg_x(self) -> float | None:
        """Mean i index of the leg bones (tibia, femur, fibula of the default scheme): about the midline."""
        legs = [self.bone_voxels[v] for v in (1, 2, 3) if v in self.bone_voxels]
        return float(np.concatenate(legs)[:, 0].mean()) if legs else None


def prepare_locator_case(case_id: str, image_path: str | Path, labels_path: str | Path, n_classes: int,
                         spacing_mm: float = SPACING_MM) -> LocatorCase:
    """Read a scan and its labels and put both on the locator's grid."""
    from limbseg.io import read_image

    image = read_image(image_path)
    labels = read_image(labels_path)
    grid = coarse_image(image, spacing_mm)
    lab = coarse_labels(LabelMap(np.asarray(labels.array).astype(np.uint8), labels.affine, {}), grid, n_classes)
    return LocatorCase(case_id, grid.array, lab)


def _field_box(case: LocatorCase, rng: np.random.Generator, options: LocatorOptions) -> tuple[slice, slice, slice]:
    """A random field of view of ``case``: whole, cut along z, and/or one leg (voxel box)."""
    shape = case.labels.shape
    full = tuple(slice(0, n) for n in shape)
    if rng.random() < options.full_view_fraction:
        return full  # type: ignore[return-value]
    box = list(full)
    if case.bone_z is not None:  # a z range of 90 mm or more somewhere over the bones
        lo_z, hi_z = case.bone_z
        length = int(rng.integers(min(15, hi_z - lo_z), hi_z - lo_z + 1))
        start = int(rng.integers(max(0, lo_z - 5), max(lo_z - 4, hi_z - length + 1)))
        box[2] = slice(start, min(shape[2], start + max(length, 1)))
    if rng.random() < options.one_leg_fraction and case.leg_x is not None:
        mid = int(round(case.leg_x + rng.normal(0, 2)))
        box[0] = slice(0, mid) if rng.random() < 0.5 else slice(mid, shape[0])
    return tuple(box)  # type: ignore[return-value]


def _bone_voxel(case: LocatorCase, fov: tuple[slice, slice, slice], rng: np.random.Generator) -> np.ndarray | None:
    """A random voxel (i, j, k) of a bone chosen uniformly among those in the field of view (None: none)."""
    inside = {}
    for value, where in case.bone_voxels.items():
        keep = np.all([(where[:, a] >= s.start) & (where[:, a] < s.stop) for a, s in enumerate(fov)], axis=0)
        if keep.any():
            inside[value] = where[keep]
    if not inside:
        return None
    where = list(inside.values())[int(rng.integers(len(inside)))]
    return where[int(rng.integers(len(where)))]


def sample_crop(case: LocatorCase, rng: np.random.Generator, options: LocatorOptions) -> tuple[np.ndarray, np.ndarray]:
    """One training sample: (normalised crop (I, J, K) float32, labels uint8), see the module docstring."""
    shape = case.image.shape
    fov = _field_box(case, rng, options)
    visible = np.zeros(shape, dtype=bool)
    visible[fov] = True
    crop = options.crop
    centre = _bone_voxel(case, fov, rng) if rng.random() < options.foreground_fraction else None
    starts = []
    for a, (n, c, f) in enumerate(zip(shape, crop, fov, strict=True)):  # the crop overlaps the field of view
        if centre is not None:
            starts.append(int(np.clip(centre[a] - c // 2 + rng.integers(-c // 4, c // 4 + 1), 0, max(0, n - c))))
            continue
        lo = min(max(0, f.start - c // 2), max(0, n - c))
        hi = max(lo, min(f.stop - c // 2, n - c))
        starts.append(int(rng.integers(lo, hi + 1)))
    idx = tuple(slice(s, s + c) for s, c in zip(starts, crop, strict=True))
    x = np.zeros(crop, dtype=np.float32)
    y = np.zeros(crop, dtype=np.uint8)
    v = np.zeros(crop, dtype=bool)
    part = tuple(slice(0, s.stop - s.start) for s in (slice(a.start, min(a.stop, n)) for a, n in zip(idx, shape, strict=True)))
    x[part] = case.image[idx]
    y[part] = case.labels[idx]
    v[part] = visible[idx]
    x = normalise_visible(x, v)
    y[~v] = 0
    gamma = float(np.exp(rng.normal(0.0, 0.25)))
    x = np.clip(x, 0, 1) ** gamma * float(rng.uniform(0.85, 1.15))
    x = x + rng.normal(0.0, float(rng.uniform(0.0, 0.05)), x.shape).astype(np.float32) * v
    if rng.random() < 0.5:
        x, y = x[::-1], y[::-1]
    return np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(y)


def _dice_ce(logits: Any, target: Any, n_classes: int) -> Any:
    import torch
    import torch.nn.functional as F  # noqa: N812

    ce = F.cross_entropy(logits, target)
    probs = torch.softmax(logits, dim=1)[:, 1:]
    onehot = F.one_hot(target, n_classes).permute(0, 4, 1, 2, 3)[:, 1:].float()
    dims = (0, 2, 3, 4)
    inter = (probs * onehot).sum(dims)
    dice = (2 * inter + 1e-5) / (probs.sum(dims) + onehot.sum(dims) + 1e-5)
    return ce + (1 - dice).mean()


def coarse_dice(locator: Any, cases: Sequence[LocatorCase], n_classes: int) -> dict[str, float]:
    """Per-class DSC of the locator over whole cases (its input made as for a scan), micro-averaged."""
    from limbseg.segmentation.locate import predict_volume

    inter = np.zeros(n_classes)
    total = np.zeros(n_classes)
    for case in cases:
        x = normalise_visible(case.image, np.ones(case.image.shape, bool))
        pred = np.argmax(predict_volume(locator, x), axis=0)
        for c in range(1, n_classes):
            inter[c] += np.sum((pred == c) & (case.labels == c))
            total[c] += np.sum(pred == c) + np.sum(case.labels == c)
    return {str(c): float(2 * inter[c] / total[c]) if total[c] else float("nan") for c in range(1, n_classes)}


def train_locator(train: Sequence[LocatorCase], val: Sequence[LocatorCase], n_classes: int,
                  options: LocatorOptions, out_dir: str | Path, *, init_state: dict[str, Any] | None = None,
                  progress: Callable[[str], None] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Train for ``options.minutes`` or ``options.steps`` (cosine learning rate to the limit); returns
    (best state, history).

    A checkpoint (``locator-last.pt``) is written every minute and the best validation state
    (``locator-best.pt``) whenever the mean bone DSC improves, in ``out_dir``.
    """
    import torch

    from limbseg.models.locator_net import LocatorNet

    say = progress or log.info
    if options.threads:
        torch.set_num_threads(options.threads)
    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    net = LocatorNet(1, n_classes, options.features).to(options.device)
    if init_state is not None:
        net.load_state_dict(init_state)
    opt = torch.optim.AdamW(net.parameters(), lr=options.lr, weight_decay=1e-4)
    limit = options.minutes * 60.0
    t0 = time.perf_counter()
    history: list[dict[str, Any]] = []
    best, best_state, step, last_ckpt, last_val, losses = -1.0, None, 0, t0, t0, []
    while True:
        elapsed = time.perf_counter() - t0
        fraction = step / options.steps if options.steps else elapsed / limit
        done = fraction >= 1.0
        if done or time.perf_counter() - last_val >= options.validate_every_min * 60:
            net.eval()
            dsc = coarse_dice(net, val, n_classes) if val else {}
            net.train()
            mean = float(np.nanmean(list(dsc.values()))) if dsc else -float(np.mean(losses[-50:] or [0]))
            history.append({"minutes": elapsed / 60, "step": step, "loss": float(np.mean(losses[-50:] or [np.nan])),
                            "val_dsc": dsc, "val_mean": mean})
            say(f"locator {elapsed / 60:.1f} min step {step} loss {history[-1]['loss']:.3f} val {mean:.3f} {dsc}")
            if mean > best:
                best, best_state = mean, {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
                torch.save(best_state, out / "locator-best.pt")
            last_val = time.perf_counter()
            if done:
                break
        for group in opt.param_groups:
            group["lr"] = options.lr * 0.5 * (1 + np.cos(np.pi * min(1.0, fraction)))
        batch = [sample_crop(train[int(rng.integers(len(train)))], rng, options) for _ in range(options.batch_size)]
        x = torch.from_numpy(np.stack([b[0] for b in batch]))[:, None].to(options.device)
        y = torch.from_numpy(np.stack([b[1] for b in batch]).astype(np.int64)).to(options.device)
        loss = _dice_ce(net(x), y, n_classes)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        step += 1
        if time.perf_counter() - last_ckpt >= 60:
            torch.save({"state": net.state_dict(), "step": step, "options": asdict(options)}, out / "locator-last.pt")
            (out / "locator-history.json").write_text(json.dumps(history, indent=1))
            last_ckpt = time.perf_counter()
    (out / "locator-history.json").write_text(json.dumps(history, indent=1))
    return best_state or net.state_dict(), history


LOCATOR_WEIGHTS = "locator.safetensors"


def locator_config(options: LocatorOptions, n_classes: int, history: list[dict[str, Any]],
                   data: dict[str, Any]) -> dict[str, Any]:
    """The bundle's ``model.json`` ``locator`` entry."""
    return {
        "weights": LOCATOR_WEIGHTS,
        "architecture": {"arch": "locator-unet3d", "in_channels": 1, "classes": n_classes,
                         "features": list(options.features)},
        "spacing_mm": options.spacing_mm,
        "input": "block mean + trilinear to the canonical axial grid; 0.5/99.5 percentiles of the body (Otsu) "
                 "in the field of view",
        "training": {"options": {k: v for k, v in asdict(options).items() if k != "extra"} | options.extra,
                     "data": data, "history": history},
    }


def save_locator(bundle_dir: str | Path, state: dict[str, Any], config: dict[str, Any],
                 source_bundle: str | Path) -> Path:
    """Write a bundle at ``bundle_dir``: ``source_bundle`` (the fine model) with this locator added
    (replacing one it had); atomic, nothing partial."""
    import shutil

    from safetensors.torch import save_file

    from limbseg.io.atomic import atomic_dir

    src = Path(source_bundle)
    cfg = json.loads((src / "model.json").read_text(encoding="utf-8"))
    cfg["locator"] = config
    with atomic_dir(Path(bundle_dir)) as tmp:
        for f in src.iterdir():
            if f.is_file() and f.name not in ("model.json", LOCATOR_WEIGHTS):
                shutil.copy2(f, tmp / f.name)
        tensors = {k: v.detach().cpu().float().contiguous().clone() for k, v in state.items()
                   if v.is_floating_point()}
        tensors |= {k: v.detach().cpu().contiguous().clone() for k, v in state.items() if not v.is_floating_point()}
        save_file(tensors, str(tmp / LOCATOR_WEIGHTS), metadata={"format": "pt"})
        (tmp / "model.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    return Path(bundle_dir)


def carry_locator(source_bundle: str | Path, bundle: str | Path) -> bool:
    """Give ``bundle`` (a fine network trained ``--init-from source_bundle``) the source's coarse 3D stage:
    its weights and its ``model.json`` ``locator`` entry (stages and history included), unchanged. The two
    stages are trained separately, so a new fine network keeps the locator it was trained beside.

    Returns False (and changes nothing) when the source has no locator.
    """
    from limbseg.models.bundle import read_locator

    locator = read_locator(source_bundle)
    if locator is None:
        return False
    save_locator(bundle, locator.network.state_dict(), locator.config, bundle)
    return True


def prepare_locator_cases(dataset_dirs: Sequence[str | Path], spacing_mm: float = SPACING_MM,
                          workers: int = 1, cache: str | Path | None = None) -> tuple[list[LocatorCase], Any]:
    """Every case of the datasets on the locator's grid (read from / written to ``cache`` .npz if given)."""
    from limbseg.training.data import read_dataset

    cases, scheme = [], None
    for d in dataset_dirs:
        found, scheme, _ = read_dataset(d)
        cases.extend(found)
    n_classes = scheme.num_classes
    if cache is not None and Path(cache).is_file():
        with np.load(cache) as z:
            ids = [str(i) for i in z["ids"]]
            if ids == [c.case_id for c in cases]:
                return [LocatorCase(i, z[f"x_{n}"], z[f"y_{n}"]) for n, i in enumerate(ids)], scheme

    args = [(c.case_id, c.image, c.label, n_classes, spacing_mm) for c in cases]
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            prepared = list(pool.map(prepare_locator_case, *zip(*args, strict=True)))
    else:
        prepared = [prepare_locator_case(*a) for a in args]
    if cache is not None:
        arrays = {f"x_{n}": p.image for n, p in enumerate(prepared)} | {f"y_{n}": p.labels for n, p in enumerate(prepared)}
        np.savez(cache, ids=np.array([p.case_id for p in prepared]), **arrays)
    return prepared, scheme


def run_locator(dataset_dir: str | Path, run_dir: str | Path, *, bundle: str | Path, minutes: float,
                val_dataset: str | Path | None = None, val_fraction: float = 0.1, seed: int = 0,
                device: str = "cpu", workers: int = 1, fresh: bool = False, resume: bool = False,
                progress: Callable[[str], None] | None = None) -> Path:
    """``limbseg train --stage locator``: train the coarse 3D stage and write ``RUN_DIR/bundle``.

    The new bundle is ``bundle`` (its fine model unchanged) with the locator added; training continues
    from ``bundle``'s own locator when it has one (``fresh``: start from random weights). Validation
    cases: ``val_dataset``, else ``val_fraction`` of the subjects (seeded); they choose the kept weights.
    ``resume``: continue from ``RUN_DIR/locator-last.pt`` (written every minute) when it exists.
    Prepared cases are cached in ``RUN_DIR/cases-*.npz`` so that a later run starts at once.
    """
    from limbseg.errors import LimbsegError
    from limbseg.models.bundle import load_bundle

    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    source = load_bundle(bundle)
    options = LocatorOptions(minutes=minutes, seed=seed, device=device,
                             threads=0, validate_every_min=max(0.5, min(5.0, minutes / 6)))
    if val_dataset is not None:
        train, scheme = prepare_locator_cases([dataset_dir], options.spacing_mm, workers, run / "cases-train.npz")
        val, _ = prepare_locator_cases([val_dataset], options.spacing_mm, workers, run / "cases-val.npz")
    else:
        cases, scheme = prepare_locator_cases([dataset_dir], options.spacing_mm, workers, run / "cases-train.npz")
        order = np.random.default_rng(seed).permutation(len(cases))
        n_val = max(1, int(round(val_fraction * len(cases)))) if len(cases) > 1 else 0
        val = [cases[i] for i in order[:n_val]]
        train = [cases[i] for i in order[n_val:]]
    if scheme.to_json() != source.scheme.to_json():
        raise LimbsegError("the dataset's labels differ from the bundle's", Path(dataset_dir) / "dataset.json")
    init = None if fresh else source.locator_state
    if init is not None:
        options.features = tuple(source.config["locator"]["architecture"].get("features", options.features))
    if resume and (run / "locator-last.pt").is_file():
        import torch

        checkpoint = torch.load(run / "locator-last.pt", map_location="cpu", weights_only=True)
        init = checkpoint["state"]
        options.features = tuple(checkpoint["options"]["features"])
    state, history = train_locator(train, val, scheme.num_classes, options, run, init_state=init, progress=progress)
    data = {"train": f"{Path(dataset_dir).name}: {len(train)} cases", "validation": [c.case_id for c in val],
            "init": ("checkpoint " + str(run / "locator-last.pt")) if resume and init is not None
            else "bundle's locator" if init is not None else "random"}
    config = locator_config(options, scheme.num_classes, history, data)
    previous = source.config.get("locator", {})
    config["prior_weight"] = previous.get("prior_weight", 1.0)  # kept: chosen on validation subjects
    stages = list(previous.get("stages", [])) + [{"minutes": minutes, "device": device, "data": data,
                                                    "best_val_mean_dsc": max((h["val_mean"] for h in history), default=None)}]
    config["stages"] = stages
    return save_locator(run / "bundle", state, config, bundle)
