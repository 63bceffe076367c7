"""Training data: read an nnU-Net-layout dataset, prepare cases as the network sees them, sample tiles.

Each case goes through the same functions as ``limbseg segment`` (:mod:`limbseg.segmentation.region`): the
network region of the whole scan (the automatic ROI), its canonical axial grid at the model's spacing
(images trilinear, labels nearest), the whole scan's body intensity window, and 2.5D channels at the
bundle's ``neighbour_mm``. Training samples ``tile x tile`` crops from every slice of that region (bone or
not), a third of them centred near a voxel of a randomly chosen class present in the case.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from limbseg.data.slices import slice_channels
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
    """A case as the network sees it (its network region on the canonical grid, see :func:`prepare_case`).

    ``image``: float16 (I, J, K) normalised to [0, 1] (a compact cache: the 2.5D channels are taken from
    it per slice); ``labels``: uint8 (K, I, J) label values; ``offset``: 2.5D neighbour distance in slices;
    ``foreground``: per label value present, (k, i, j) voxel positions (int32 (N, 3)) to centre tiles on.
    """

    case_id: str
    image: np.ndarray
    labels: np.ndarray
    offset: float = 1.0
    foreground: dict[int, np.ndarray] = field(default_factory=dict)

    def inputs(self, ks: np.ndarray | list[int], channels: str) -> np.ndarray:
        """Network inputs of slices ``ks``: float32 (len(ks), 3, I, J)."""
        return slice_channels(self.image, ks, channels, self.offset)  # type: ignore[arg-type]


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


def prepare_case(case: Case, *, preprocessing: dict[str, Any], fg_per_class: int = 20_000) -> PreparedCase:
    """One case as the network sees it in ``limbseg segment`` (:mod:`limbseg.segmentation.region`): the whole
    scan's network region (the automatic ROI; the whole scan when none is found), on the canonical
    grid, normalised by the whole scan's body window; labels cropped and resampled the same way.

    ``fg_per_class``: at most this many voxel positions kept per class for foreground sampling.
    """
    from limbseg.data.slices import canonical_axial, neighbour_offset
    from limbseg.io import read_image
    from limbseg.segmentation.region import find_region, network_volume

    img, lab = read_image(case.image), read_image(case.label)
    if not img.same_grid(lab, tol_mm=1e-2):
        raise LimbsegError(f"labels do not share the image's grid (shape {lab.shape} vs {img.shape})", case.label)
    if not np.issubdtype(lab.array.dtype, np.integer):
        lab = lab.with_array(np.rint(lab.array).astype(np.uint8))
    region = find_region(img, whole_scan_fallback=True, normalisation=preprocessing.get("normalisation"))
    net = network_volume(region.crop(img), preprocessing, region.window)
    labels = canonical_axial(region.crop(lab), float(preprocessing["spacing_mm"]), order=0)
    labels_kij = np.ascontiguousarray(np.moveaxis(labels.array.astype(np.uint8), 2, 0))
    offset = neighbour_offset(preprocessing, abs(float(net.affine[2, 2])))
    return PreparedCase(case.case_id, net.array.astype(np.float16), labels_kij, offset,
                        foreground_positions(labels_kij, fg_per_class))


def foreground_positions(labels_kij: np.ndarray, per_class: int, seed: int = 0) -> dict[int, np.ndarray]:
    """Per label value present: up to ``per_class`` (k, i, j) positions of its voxels (int32 (N, 3))."""
    rng = np.random.default_rng(seed)
    out = {}
    for value in np.unique(labels_kij):
        if value == 0:
            continue
        pos = np.argwhere(labels_kij == value).astype(np.int32)
        if len(pos) > per_class:
            pos = pos[np.sort(rng.choice(len(pos), per_class, replace=False))]
        out[int(value)] = pos
    return out


def tile_at(inputs: np.ndarray, labels: np.ndarray, tile: int, corner: tuple[int, int]
            ) -> tuple[np.ndarray, np.ndarray]:
    """The ``tile x tile`` crop of one slice whose top-left corner is ``corner`` (may lie outside the
    slice: what falls outside is zero, as the zero padding of ``segment``). inputs (3, H, W), labels (H, W)."""
    _, h, w = inputs.shape
    y0, x0 = corner
    out_x = np.zeros((inputs.shape[0], tile, tile), np.float32)
    out_y = np.zeros((tile, tile), labels.dtype)
    sy, sx = slice(max(y0, 0), min(y0 + tile, h)), slice(max(x0, 0), min(x0 + tile, w))
    if sy.stop > sy.start and sx.stop > sx.start:
        dy, dx = slice(sy.start - y0, sy.stop - y0), slice(sx.start - x0, sx.stop - x0)
        out_x[:, dy, dx] = inputs[:, sy, sx]
        out_y[dy, dx] = labels[sy, sx]
    return out_x, out_y


def random_corner(shape: tuple[int, int], tile: int, rng: np.random.Generator,
                  centre: tuple[int, int] | None = None) -> tuple[int, int]:
    """Top-left corner of a tile: uniform over the slice (the tile inside it where it fits, else the slice
    inside the tile), or around ``centre`` (jittered by up to a quarter tile, so the voxel is not always
    in the middle)."""
    if centre is not None:
        jitter = rng.integers(-(tile // 4), tile // 4 + 1, size=2)
        return int(centre[0] - tile // 2 + jitter[0]), int(centre[1] - tile // 2 + jitter[1])
    corner = []
    for n in shape:
        lo, hi = (0, n - tile) if n >= tile else (n - tile, 0)
        corner.append(int(rng.integers(lo, hi + 1)))
    return corner[0], corner[1]


class TileDataset(torch.utils.data.Dataset):
    """Random tiles from the training cases' network regions; deterministic given (seed, epoch, index).

    An epoch has one item per slice of every case (or ``max_slices`` of them, a seeded subset). An item
    is, with probability ``foreground_fraction``, a tile centred near a voxel of a class drawn uniformly
    from those present in the case (so small bones are seen often, nnU-Net's oversampling), otherwise a
    tile at a uniform position in its slice (slices without bone included, as ``segment`` sees them).
    Items: (float32 tensor (3, T, T), int64 tensor (1, T, T) of class indices = label values).
    """

    def __init__(self, cases: list[PreparedCase], tile: int, *, augment: bool, channels: str,
                 seed: int = 0, max_slices: int | None = None, foreground_fraction: float = 1 / 3) -> None:
        self.cases, self.tile, self.augment, self.channels = cases, tile, augment, channels
        self.seed, self.epoch, self.foreground_fraction = seed, 0, float(foreground_fraction)
        self.all_items = [(c, k) for c, case in enumerate(cases) for k in range(case.labels.shape[0])]
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

    def sample(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The un-augmented tile of item ``index``: inputs (3, T, T) float32, labels (T, T)."""
        c, k = self.items[index]
        case = self.cases[c]
        centre = None
        if case.foreground and rng.random() < self.foreground_fraction:
            values = sorted(case.foreground)
            pos = case.foreground[values[int(rng.integers(len(values)))]]
            k, i, j = (int(v) for v in pos[int(rng.integers(len(pos)))])
            centre = (i, j)
        x = slice_channels(case.image, [k], self.channels, case.offset)[0]  # type: ignore[arg-type]
        corner = random_corner(case.labels.shape[1:], self.tile, rng, centre)
        return tile_at(x, case.labels[k], self.tile, corner)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng((self.seed, self.epoch, index))
        x, y = self.sample(index, rng)
        if self.augment:
            from limbseg.training.augment import augment_slice

            x, y = augment_slice(x, y, rng, channels=self.channels)
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), \
            torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))[None]
