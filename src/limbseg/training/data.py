"""Training data: read an nnU-Net-layout dataset, prepare cases as slices, sample tiles.

Each case is resampled with :func:`limbseg.data.slices.canonical_axial` to the model's in-plane
spacing (images trilinear, labels nearest), normalised by percentiles and stacked into 3-channel
slices exactly as :class:`limbseg.inference.Predictor` does, then cropped to the labelled limbs'
bounding box plus a margin (in-plane and along the slices). Training samples random
``tile x tile`` crops inside that box (zero-padded when the box is smaller).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from limbseg.data.slices import canonical_axial, normalise, stack_channels
from limbseg.errors import LimbsegError
from limbseg.labels import LabelScheme


@dataclass
class Case:
    """One dataset case: ids and file paths."""

    case_id: str
    subject: str
    image: Path
    label: Path


@dataclass
class PreparedCase:
    """A case as network inputs, cropped to the labelled box.

    ``inputs``: float32 (K, 3, H, W) in [0, 1]; ``labels``: uint8 (K, H, W) label values.
    """

    case_id: str
    inputs: np.ndarray
    labels: np.ndarray


def read_dataset(dataset_dir: str | Path) -> tuple[list[Case], LabelScheme, dict[str, Any]]:
    """Cases, label scheme and dataset.json of ``DIR/{dataset.json, imagesTr, labelsTr}``.

    The subject of a case is ``dataset.json["subjects"][case]`` when given, else the case id.
    """
    root = Path(dataset_dir)
    meta_path = root / "dataset.json"
    if not meta_path.is_file():
        raise LimbsegError("not a dataset: dataset.json is missing (expected nnU-Net v2 layout)", root)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        scheme = LabelScheme.from_json(meta["labels"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise LimbsegError(f"dataset.json is invalid ({type(exc).__name__}: {exc})", meta_path) from exc
    ending = str(meta.get("file_ending", ".nii.gz"))
    subjects = meta.get("subjects", {}) if isinstance(meta.get("subjects"), dict) else {}
    cases = []
    for label in sorted((root / "labelsTr").glob(f"*{ending}")):
        if label.name.startswith("."):
            continue
        cid = label.name[: -len(ending)]
        image = root / "imagesTr" / f"{cid}_0000{ending}"
        if not image.is_file():
            raise LimbsegError(f"labels of case {cid} have no image {image.name}", root / "imagesTr")
        cases.append(Case(cid, str(subjects.get(cid, cid)), image, label))
    if not cases:
        raise LimbsegError(f"no labelled cases in labelsTr/*{ending}", root)
    return cases, scheme, meta


def load_canonical(case: Case, spacing_mm: float):
    """(image, labels) of a case on its canonical axial grid (Volumes), with grid checks."""
    from limbseg.io import read_image

    img, lab = read_image(case.image), read_image(case.label)
    if not img.same_grid(lab, tol_mm=1e-2):
        raise LimbsegError(f"labels do not share the image's grid (shape {lab.shape} vs {img.shape})", case.label)
    if not np.issubdtype(lab.array.dtype, np.integer):
        lab = lab.with_array(np.rint(lab.array).astype(np.uint8))
    return canonical_axial(img, spacing_mm, order=1), canonical_axial(lab, spacing_mm, order=0)


def prepare_case(case: Case, *, spacing_mm: float, channels: str, margin_mm: float = 20.0,
                 normalisation: dict[str, Any] | None = None) -> PreparedCase:
    """Load, resample, normalise, stack and crop one case (see the module docstring)."""
    img, lab = load_canonical(case, spacing_mm)
    norm = normalisation or {}
    arr = normalise(img.array, float(norm.get("lower", 0.5)), float(norm.get("upper", 99.5)))
    inputs = stack_channels(arr, channels)  # (K, 3, I, J)
    labels = np.moveaxis(lab.array.astype(np.uint8), 2, 0)  # (K, I, J)
    fg = np.nonzero(labels)
    if fg[0].size:
        dz = abs(float(img.affine[2, 2])) or 1.0
        margins = (int(np.ceil(margin_mm / dz)), int(np.ceil(margin_mm / spacing_mm)),
                   int(np.ceil(margin_mm / spacing_mm)))
        box = tuple(slice(max(int(c.min()) - m, 0), int(c.max()) + m + 1) for c, m in zip(fg, margins, strict=True))
        inputs, labels = inputs[(box[0], slice(None), box[1], box[2])], labels[box]
    return PreparedCase(case.case_id, np.ascontiguousarray(inputs), np.ascontiguousarray(labels))


def random_tile(inputs: np.ndarray, labels: np.ndarray, tile: int, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray]:
    """A random ``tile x tile`` crop of one slice: inputs (3, H, W), labels (H, W); zero-padded if smaller."""
    _, h, w = inputs.shape
    ph, pw = max(tile - h, 0), max(tile - w, 0)
    if ph or pw:
        top, left = int(rng.integers(0, ph + 1)), int(rng.integers(0, pw + 1))
        inputs = np.pad(inputs, ((0, 0), (top, ph - top), (left, pw - left)))
        labels = np.pad(labels, ((top, ph - top), (left, pw - left)))
        h, w = labels.shape
    y0, x0 = int(rng.integers(0, h - tile + 1)), int(rng.integers(0, w - tile + 1))
    return inputs[:, y0:y0 + tile, x0:x0 + tile], labels[y0:y0 + tile, x0:x0 + tile]


class TileDataset(torch.utils.data.Dataset):
    """Random tiles from the training slices; deterministic given (seed, epoch, index).

    Items: (float32 tensor (3, T, T), int64 tensor (1, T, T) of class indices = label values).
    """

    def __init__(self, cases: list[PreparedCase], tile: int, *, augment: bool, channels: str,
                 seed: int = 0, max_slices: int | None = None) -> None:
        self.cases, self.tile, self.augment, self.channels = cases, tile, augment, channels
        self.seed, self.epoch = seed, 0
        self.all_items = [(c, k) for c, case in enumerate(cases) for k in range(case.inputs.shape[0])]
        if not self.all_items:
            raise LimbsegError("no training slices (all training cases are empty)")
        self.max_slices = max_slices
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Choose this epoch's slices (a seeded subset when ``max_slices`` bounds the epoch)."""
        self.epoch = epoch
        items = self.all_items
        if self.max_slices and len(items) > self.max_slices:
            rng = np.random.default_rng((self.seed, epoch, 7))
            pick = rng.choice(len(items), self.max_slices, replace=False)
            items = [items[i] for i in sorted(pick)]
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        c, k = self.items[index]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        case = self.cases[c]
        x, y = random_tile(case.inputs[k], case.labels[k], self.tile, rng)
        if self.augment:
            from limbseg.training.augment import augment_slice

            x, y = augment_slice(x, y, rng, channels=self.channels)
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), \
            torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))[None]
