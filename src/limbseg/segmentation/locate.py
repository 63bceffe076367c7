"""Locate: a small 3D network that sees the whole scan at 6 mm and outputs the bones coarsely.

The fine 2.5D network sees a few millimetres of the leg at a time and cannot tell where along the leg it
is (a proximal femur can look like a tibia plateau). The locator sees the whole field of view in 3D, in
patient coordinates, whatever the acquisition's orientation; as the nnU-Net cascade and TotalSegmentator
do, its coarse output then

* gives the region the fine network runs on: the box around the bones it finds, plus a margin
  (:meth:`Location.roi`), instead of a body-shape heuristic that needs two legs in an axial slice;
* is a prior on the fine network's probabilities (:mod:`limbseg.segmentation.combine`).

Input (one definition for training and segmentation, :func:`locator_input`): the scan averaged over
blocks of about ``spacing_mm`` (so the noise of a 0.3 mm and of a 2 mm scan look alike), resampled
trilinearly onto the canonical axial grid (:func:`coarse_grid`; i -> patient left, j -> posterior,
k -> superior) at ``spacing_mm`` on all three axes, and normalised to [0, 1] by the 0.5/99.5 percentiles
inside the visible body (Otsu threshold; :func:`normalise_visible`). Output: softmax over the label
scheme's classes (unsided: background, tibia, femur, fibula, pelvis).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from limbseg.volume import LabelMap, Volume

SPACING_MM = 6.0  #: the locator's grid spacing (all three axes)
MULTIPLE = 8  #: inputs are padded to multiples of this (three poolings)
MARGIN_MM = 15.0  #: added around the bones the locator finds to make the fine network's region
MIN_BONE_ML = 2.0  #: bone components smaller than this (on the coarse grid) are noise


def coarse_grid(volume: Volume, spacing_mm: float = SPACING_MM) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and RAS affine of the canonical axial grid over ``volume`` at ``spacing_mm`` on every axis."""
    from limbseg.data.slices import CANONICAL_DIRECTIONS

    corners = np.array([[a, b, c] for a in (0, volume.shape[0] - 1) for b in (0, volume.shape[1] - 1)
                        for c in (0, volume.shape[2] - 1)], dtype=float)
    ras = volume.index_to_ras(corners)
    lo, hi = ras.min(axis=0), ras.max(axis=0)
    affine = np.eye(4)
    affine[:3, :3] = CANONICAL_DIRECTIONS * spacing_mm
    affine[:3, 3] = [hi[0], hi[1], lo[2]]
    shape = tuple(int(np.floor((hi[n] - lo[n]) / spacing_mm + 1e-3)) + 1 for n in range(3))
    return shape, affine  # type: ignore[return-value]


def block_mean(array: np.ndarray, affine: np.ndarray, target_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Average ``array`` over blocks of ``round(target_mm / spacing)`` voxels per axis (float32, new affine).

    Edge voxels that do not fill a whole block are dropped (at most one block's width of the scan).
    """
    spacing = np.linalg.norm(np.asarray(affine, dtype=float)[:3, :3], axis=0)
    factors = [max(1, int(round(target_mm / s))) for s in spacing]
    a = np.asarray(array, dtype=np.float32)
    if factors == [1, 1, 1]:
        return a, np.asarray(affine, dtype=float)
    n = [max(1, s // f) for s, f in zip(a.shape, factors, strict=True)]
    factors = [min(f, s) for f, s in zip(factors, a.shape, strict=True)]
    a = a[: n[0] * factors[0], : n[1] * factors[1], : n[2] * factors[2]]
    a = a.reshape(n[0], factors[0], n[1], factors[1], n[2], factors[2]).mean(axis=(1, 3, 5), dtype=np.float32)
    out = np.asarray(affine, dtype=float).copy()
    out[:3, :3] = affine[:3, :3] * np.asarray(factors, dtype=float)
    # the centre of block 0 is the mean of its voxel centres
    out[:3, 3] = affine[:3, :3] @ ((np.asarray(factors, dtype=float) - 1) / 2) + affine[:3, 3]
    return a, out


def coarse_image(volume: Volume, spacing_mm: float = SPACING_MM) -> Volume:
    """The scan's raw intensities on the locator's grid (float32; 0 outside the scan)."""
    from limbseg.data.slices import resample_array

    shape, affine = coarse_grid(volume, spacing_mm)
    reduced, reduced_affine = block_mean(volume.array, volume.affine, spacing_mm)
    out = resample_array(reduced, reduced_affine, affine, shape, order=1)
    return Volume(out.astype(np.float32, copy=False), affine, {"source": volume.meta.get("source")})


def coarse_labels(labels: LabelMap, image: Volume, n_classes: int) -> np.ndarray:
    """Labels on the grid of ``image`` (a :func:`coarse_image`): the class with the largest voxel fraction.

    Each class's mask is block-averaged like the image and resampled trilinearly, so a thin fibula
    keeps its voxels where it fills a good part of a coarse voxel.
    """
    from limbseg.data.slices import resample_array

    spacing = float(np.abs(image.affine[0, 0]))
    fractions = []
    for c in range(1, n_classes):
        mask, affine = block_mean(labels.array == c, labels.affine, spacing)
        fractions.append(resample_array(mask, affine, image.affine, image.shape, order=1, cval=0.0))
    bones = np.stack(fractions) if fractions else np.zeros((0, *image.shape), np.float32)
    background = 1.0 - bones.sum(axis=0)
    # a bone that fills 40 % of a coarse voxel wins it (1.5 x 0.4 = 0.6 > 0.6 background): thin bones stay whole
    scores = np.concatenate([background[None], 1.5 * bones])
    out = np.argmax(scores, axis=0).astype(np.uint8)
    return out


def normalise_visible(array: np.ndarray, visible: np.ndarray | None = None,
                      lower: float = 0.5, upper: float = 99.5) -> np.ndarray:
    """[0, 1] float32: ``array`` scaled by the percentiles of its body voxels (Otsu) inside ``visible``.

    Voxels outside ``visible`` (the field of view) are 0. One definition for training and segmentation.
    """
    from skimage.filters import threshold_otsu

    a = np.asarray(array, dtype=np.float32)
    values = a[visible] if visible is not None else a.ravel()
    out = np.zeros_like(a)
    if values.size < 10 or float(values.max()) <= float(values.min()):
        return out
    body = values[values > threshold_otsu(values[:: max(1, values.size // 200_000)])]
    if body.size < 10:
        body = values
    lo, hi = (float(v) for v in np.percentile(body, [lower, upper]))
    if hi <= lo:
        return out
    out = np.clip((a - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
    if visible is not None:
        out[~visible] = 0.0
    return out


def locator_input(volume: Volume, spacing_mm: float = SPACING_MM) -> Volume:
    """What the locator is given for a scan: :func:`coarse_image`, normalised over the field of view."""
    image = coarse_image(volume, spacing_mm)
    visible = _field_of_view(volume, image)
    return image.with_array(normalise_visible(image.array, visible))


def _field_of_view(volume: Volume, grid: Volume) -> np.ndarray:
    """Which voxels of ``grid`` lie inside the scan (True inside)."""
    from limbseg.data.slices import resample_array

    inside = resample_array(np.ones((2, 2, 2), np.float32), _corner_affine(volume), grid.affine, grid.shape,
                            order=1, cval=0.0)
    return inside > 0.5


def _corner_affine(volume: Volume) -> np.ndarray:
    """Affine of a 2x2x2 grid whose voxels sit on the scan's corner voxel centres."""
    a = np.asarray(volume.affine, dtype=float).copy()
    a[:3, :3] = a[:3, :3] * (np.asarray(volume.shape, dtype=float) - 1).clip(min=1)
    return a


def build_network(architecture: dict[str, Any]) -> Any:
    """The locator network (:class:`limbseg.models.locator_net.LocatorNet`) from its ``architecture`` dict."""
    from limbseg.models.locator_net import LocatorNet

    return LocatorNet(in_channels=int(architecture.get("in_channels", 1)),
                      classes=int(architecture["classes"]),
                      features=tuple(int(f) for f in architecture.get("features", (8, 16, 32, 64))))


@dataclass
class Location:
    """The locator's output for one scan.

    Attributes:
        probs: softmax (C, I, J, K) float32 on ``grid`` (classes by label value).
        grid: the locator's canonical grid (its array is the network input).
        names: structure names by label value 1..C-1.
    """

    probs: np.ndarray
    grid: Volume
    names: tuple[str, ...]

    def bones(self, min_ml: float = MIN_BONE_ML) -> np.ndarray:
        """Boolean (I, J, K): where a bone class wins, without components smaller than ``min_ml``."""
        from scipy import ndimage

        mask = np.argmax(self.probs, axis=0) > 0
        lab, count = ndimage.label(mask)
        if count == 0:
            return mask
        sizes = np.bincount(lab.ravel()) * float(self.grid.voxel_volume_mm3) / 1000.0
        keep = sizes >= min_ml
        keep[0] = False
        return keep[lab]

    def found(self, name: str, min_ml: float = MIN_BONE_ML) -> bool:
        """Whether the locator sees at least ``min_ml`` of structure ``name``."""
        value = self.names.index(name) + 1
        voxels = int((np.argmax(self.probs, axis=0) == value).sum())
        return voxels * float(self.grid.voxel_volume_mm3) / 1000.0 >= min_ml

    def box_mm(self, margin_mm: float = MARGIN_MM) -> tuple[np.ndarray, np.ndarray] | None:
        """(low, high) RAS corners of the box around the bones plus ``margin_mm``; None when none found."""
        mask = self.bones()
        if not mask.any():
            return None
        idx = np.argwhere(mask).astype(float)
        ras = self.grid.index_to_ras(np.array([idx.min(axis=0), idx.max(axis=0)]))
        half = np.abs(self.grid.affine[:3, :3]).sum(axis=1) / 2  # half a voxel on each axis
        return ras.min(axis=0) - half - margin_mm, ras.max(axis=0) + half + margin_mm


class Locator:
    """A trained locator network with its settings (``model.json`` ``locator`` entry of a bundle)."""

    def __init__(self, network: Any, config: dict[str, Any], names: tuple[str, ...], device: Any = "cpu") -> None:
        self.network = network.eval()
        self.config = dict(config)
        self.names = tuple(names)
        self.device = device

    @property
    def spacing_mm(self) -> float:
        return float(self.config.get("spacing_mm", SPACING_MM))

    def locate(self, volume: Volume) -> Location:
        """Run the locator over the whole scan ``volume``."""
        grid = locator_input(volume, self.spacing_mm)
        return Location(predict_volume(self.network, grid.array, self.device), grid, self.names)


def predict_volume(network: Any, array: np.ndarray, device: Any = "cpu") -> np.ndarray:
    """Softmax (C, I, J, K) float32 of ``network`` on one normalised volume (padded internally)."""
    import torch

    pad = [(-n) % MULTIPLE for n in array.shape]
    x = np.pad(array, [(0, p) for p in pad])
    with torch.inference_mode():
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None, None].to(device)
        probs = torch.softmax(network(t).float(), dim=1)[0].cpu().numpy()
    i, j, k = array.shape
    return np.ascontiguousarray(probs[:, :i, :j, :k])
