"""Volume prediction with a trained 2D network: Volume -> class probabilities -> LabelMap.

:class:`Predictor` is the one place that runs a network on a scan; training's validation and
``limbseg segment`` both use it so a model always sees scans exactly as in training:

1. :func:`limbseg.segmentation.region.network_volume` resamples the scan (or its ROI crop) to the model's in-plane
   spacing on an axial grid and maps intensities to [0, 1] by the whole scan's body window;
2. each axial slice becomes a 3-channel input (``"repeat"`` or ``"2.5d"`` at ``neighbour_mm``), padded to a multiple
   of 32 and run through every model (a fold ensemble is averaged, softmax probabilities);
3. probabilities are resampled back onto the scan's native grid (same shape and affine).

Public, stable signatures (the segment pipeline builds ROI cropping, test-time augmentation and
ensembling on top of them; extend by adding keyword arguments with defaults):

* ``Predictor(bundle_or_models, preprocessing=None, device="auto", *, scheme=None, batch_size=16, crop_to_body=True)``
* ``Predictor.predict_probabilities(volume, *, tta=False) -> (C, I, J, K) float32`` on the native grid
* ``Predictor.predict(volume, *, tta=False) -> LabelMap`` on the native grid
* ``Predictor.canonical_probabilities(volume) -> (probs (C, I', J', K'), canonical Volume)``
* ``Predictor.predict_slices(inputs (N, 3, H, W)) -> (N, C, H, W)`` float32 probabilities
* ``resolve_device("auto"|"cpu"|"cuda"|"mps") -> torch.device``
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from limbseg.data.slices import neighbour_offset, resample_array, stack_channels, to_native
from limbseg.errors import LimbsegError
from limbseg.labels import DEFAULT_SCHEME, LabelScheme, nonzero_box
from limbseg.volume import LabelMap, Volume

Progress = Callable[[float, str], None]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then Apple MPS, then CPU; an explicit device must be available."""
    name = str(device)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise LimbsegError(f"device {name!r} requested but CUDA is not available (use --device cpu or auto)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise LimbsegError("device 'mps' requested but Apple MPS is not available (use --device cpu or auto)")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise LimbsegError(f"unknown device {name!r} (use auto, cpu, cuda, cuda:N or mps)") from exc


def pad_to_multiple(x: torch.Tensor, multiple: int = 32) -> tuple[torch.Tensor, tuple[int, int]]:
    """Zero-pad the last two axes of (N, C, H, W) up to multiples of ``multiple``; returns (padded, (H, W))."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = torch.nn.functional.pad(x, (0, pw, 0, ph))
    return x, (h, w)


BODY_THRESHOLD = 0.1  # normalised intensity above which a pixel counts as body when cropping a batch
BODY_MARGIN_PX = 16  # kept around each body part (30 mm at the default 1.875 mm pixel)
BODY_SPECK_FRACTION = 0.01  # body components smaller than this fraction of the largest are noise
PART_MIN_FRACTION = 0.05  # a body part with less of the batch's body pixels joins its nearest neighbour


@dataclass(frozen=True)
class Tile:
    """Where one crop of a batch goes through the network and what of its output is kept.

    ``run`` (rows, cols) is the crop fed to the network; ``keep`` (inside ``run``) is the region
    whose probabilities are written back. The ``keep`` regions of one batch never overlap; pixels
    outside all of them are background.
    """

    run: tuple[slice, slice]
    keep: tuple[slice, slice]

    def keep_in_run(self) -> tuple[slice, slice]:
        """``keep`` in the coordinates of the ``run`` crop."""
        return tuple(slice(k.start - r.start, k.stop - r.start) for k, r in zip(self.keep, self.run, strict=True))  # type: ignore[return-value]


def _grow(keep: slice, size: int, n: int) -> slice:
    """A window of ``size`` (at most ``n``) centred on ``keep`` and shifted to lie inside [0, n)."""
    size = min(size, n)
    lo = max(0, min(keep.start - (size - (keep.stop - keep.start)) // 2, n - size))
    return slice(lo, lo + size)


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _parts(rows_hit: np.ndarray, mass: np.ndarray) -> list[list[int]]:
    """Runs of body rows separated by empty rows, as [first, last]; small runs join their nearest neighbour."""
    edges = np.flatnonzero(np.diff(np.r_[0, rows_hit.astype(np.int8), 0]))
    parts = [[int(a), int(b) - 1] for a, b in zip(edges[::2], edges[1::2], strict=True)]
    total = float(mass.sum())
    while len(parts) > 1:
        weights = [float(mass[a:b + 1].sum()) for a, b in parts]
        small = int(np.argmin(weights))
        if weights[small] >= PART_MIN_FRACTION * total:
            break
        gaps = [parts[small][0] - parts[small - 1][1] if small > 0 else np.inf,
                parts[small + 1][0] - parts[small][1] if small + 1 < len(parts) else np.inf]
        other = small - 1 if gaps[0] <= gaps[1] else small + 1
        a, b = sorted((small, other))
        parts[a:b + 1] = [[parts[a][0], parts[b][1]]]
    return parts


def _body_mask(slices: np.ndarray) -> np.ndarray:
    """(H, W) body pixels of a stack of slices: above threshold after a per-slice 3x3 opening (drops noise),
    in any slice, without the specks (components under 1 % of the largest) that survive in a few slices."""
    fg = ndimage.binary_opening(slices > BODY_THRESHOLD, np.ones((1, 3, 3), bool)).any(axis=0)
    lab, count = ndimage.label(fg)
    if count > 1:
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        fg = (sizes >= BODY_SPECK_FRACTION * sizes.max())[lab]
    return fg


def body_tiles(x: np.ndarray, multiple: int = 32, margin: int = BODY_MARGIN_PX) -> list[Tile]:
    """The crops of a batch (N, 3, H, W) that hold the body, all of one size (a multiple of ``multiple``).

    Body pixels are those above :data:`BODY_THRESHOLD` in the centre channel of any slice of the
    batch, without noise (:func:`_body_mask`). Along the left-right axis (rows, canonical ``i``)
    the body splits into parts at empty rows (the two legs below the pelvis; arms beside a trunk);
    each part gets a tile around its extent plus ``margin``, and the tiles of neighbouring parts
    meet half-way across the gap. One box around the whole body is used instead when that runs
    fewer pixels. Each tile is grown to the common size, a multiple of ``multiple`` (or the whole
    image axis), centred on its part. An empty batch gives one tile of one grid cell.
    """
    height, width = x.shape[-2:]
    fg = _body_mask(x[:, x.shape[1] // 2])
    if not fg.any():
        cell = (slice(0, min(multiple, height)), slice(0, min(multiple, width)))
        return [Tile(cell, cell)]
    mass = fg.sum(axis=1)
    parts = _parts(mass > 0, mass)
    keeps = []
    for n, (a, b) in enumerate(parts):
        lo = a - margin if n == 0 else (parts[n - 1][1] + a + 1) // 2
        hi = b + 1 + margin if n == len(parts) - 1 else (b + parts[n + 1][0] + 1) // 2
        lo, hi = max(0, lo, a - margin), min(height, hi, b + 1 + margin)
        cols = np.flatnonzero(fg[a:b + 1].any(axis=0))
        keeps.append((slice(lo, hi), slice(max(0, int(cols[0]) - margin), min(width, int(cols[-1]) + 1 + margin))))
    whole = (slice(keeps[0][0].start, keeps[-1][0].stop),
             slice(min(k[1].start for k in keeps), max(k[1].stop for k in keeps)))

    def sized(boxes: list[tuple[slice, slice]]) -> tuple[int, int]:
        return (min(height, _round_up(max(r.stop - r.start for r, _ in boxes), multiple)),
                min(width, _round_up(max(c.stop - c.start for _, c in boxes), multiple)))

    h, w = sized(keeps)
    hw, ww = sized([whole])
    if len(keeps) * _round_up(h, multiple) * _round_up(w, multiple) >= _round_up(hw, multiple) * _round_up(ww, multiple):
        keeps, (h, w) = [whole], (hw, ww)
    return [Tile((_grow(r, h, height), _grow(c, w, width)), (r, c)) for r, c in keeps]


class Predictor:
    """Run one model or a fold ensemble over whole volumes, slice by slice.

    Args:
        bundle_or_models: a :class:`~limbseg.models.bundle.ModelBundle`, or a list of networks
            (then ``preprocessing`` is required).
        preprocessing: the bundle's ``preprocessing`` dict (``spacing_mm``, ``channels``,
            ``normalisation``); defaults to the bundle's.
        device: ``"auto"`` (CUDA > MPS > CPU), ``"cpu"``, ``"cuda"``, ``"mps"``.
        scheme: label scheme of the outputs (defaults to the bundle's, else the study's).
        batch_size: slices per forward pass.
        crop_to_body: run each batch only on the in-plane tiles that hold the body (:func:`body_tiles`);
            pixels outside are background. Saves up to half the compute on legs-only slices.
    """

    def __init__(self, bundle_or_models: Any, preprocessing: dict[str, Any] | None = None,
                 device: str | torch.device = "auto", *, scheme: LabelScheme | None = None,
                 batch_size: int = 16, crop_to_body: bool = True) -> None:
        self.device = resolve_device(device)
        if isinstance(bundle_or_models, (list, tuple, nn.Module)):
            models = [bundle_or_models] if isinstance(bundle_or_models, nn.Module) else list(bundle_or_models)
            self.models = [m.to(self.device).eval() for m in models]
            self.scheme = scheme or DEFAULT_SCHEME
            self.locator = None
            self.prior_weight = 0.0
        else:
            self.models = bundle_or_models.build_models(self.device)
            self.scheme = scheme or bundle_or_models.scheme
            self.use_locator(bundle_or_models.build_locator(self.device))
            preprocessing = preprocessing or bundle_or_models.preprocessing
        if not self.models:
            raise ValueError("no models to predict with")
        # NHWC convolutions are 1.3-1.7x faster on CPU (oneDNN) and no slower on GPU; results are unchanged
        self.models = [m.to(memory_format=torch.channels_last) for m in self.models]
        if preprocessing is None:
            raise ValueError("preprocessing is required when passing bare models")
        self.preprocessing = dict(preprocessing)
        self.batch_size = int(batch_size)
        self.crop_to_body = bool(crop_to_body)

    def use_locator(self, locator: Any) -> None:
        """Find regions with ``locator`` (a :class:`limbseg.segmentation.locate.Locator`, or None: none) and
        apply its prior with the weight its config gives (``prior_weight``: one number or one per bone)."""
        self.locator = locator
        weight = locator.config.get("prior_weight", 1.0) if locator is not None else 0.0
        self.prior_weight = [float(w) for w in weight] if isinstance(weight, list) else float(weight)

    @property
    def spacing_mm(self) -> float:
        return float(self.preprocessing["spacing_mm"])

    def prepare(self, volume: Volume, window: tuple[float, float] | None = None) -> tuple[np.ndarray, Volume]:
        """Canonical, normalised inputs: ((K, 3, I', J') float32, canonical float32 Volume).

        ``window``: the whole scan's intensity window (:func:`limbseg.segmentation.region.body_window`) when
        ``volume`` is a crop of it; without it, ``volume`` is taken to be the whole scan.
        """
        from limbseg.segmentation.region import WINDOW_METHOD, body_window, network_volume

        norm = self.preprocessing.get("normalisation", {})
        if window is None and norm.get("method") == WINDOW_METHOD:
            window = body_window(volume, float(norm.get("lower", 0.5)), float(norm.get("upper", 99.5)))
        canon = network_volume(volume, self.preprocessing, window)
        offset = neighbour_offset(self.preprocessing, abs(float(canon.affine[2, 2])))
        return stack_channels(canon.array, self.preprocessing.get("channels", "2.5d"), offset), canon

    def predict_scan(self, image: Volume, region: Any = None, progress: Progress | None = None, *,
                     tta: bool = False) -> LabelMap:
        """Labels of a whole scan, predicted inside its network region (:func:`limbseg.segmentation.region.find_region`,
        found here when not given) and background elsewhere: what ``limbseg segment``, training's
        evaluation and the accuracy benchmark all run."""
        from limbseg.segmentation.region import find_region

        if region is None:
            region = find_region(image, normalisation=self.preprocessing.get("normalisation"), locator=self.locator)
        array = np.zeros(image.shape, dtype=np.uint8)
        array[region.index] = self.predict(region.crop(image), progress, tta=tta, window=region.window,
                                           location=getattr(region, "location", None)).array
        meta = {k: v for k, v in image.meta.items() if k != "canonical"}
        return LabelMap(array, image.affine.copy(), meta, scheme=self.scheme)

    @torch.inference_mode()
    def predict_slices(self, inputs: np.ndarray | torch.Tensor, progress: Progress | None = None) -> np.ndarray:
        """Softmax probabilities averaged over the models.

        Args:
            inputs: float32 (N, 3, H, W), any H, W (padded internally to multiples of 32).
        Returns:
            float32 (N, C, H, W).
        """
        x_all = np.asarray(inputs, dtype=np.float32)
        n, _, height, width = x_all.shape
        out: np.ndarray | None = None
        amp = self.device.type == "cuda"
        whole = (slice(0, height), slice(0, width))
        full = [Tile(whole, whole)]
        for start in range(0, n, self.batch_size):
            batch = x_all[start:start + self.batch_size]
            tiles = body_tiles(batch) if self.crop_to_body else full
            crops = np.concatenate([batch[:, :, t.run[0], t.run[1]] for t in tiles])
            x, (h, w) = pad_to_multiple(torch.from_numpy(np.ascontiguousarray(crops)).to(self.device))
            x = x.contiguous(memory_format=torch.channels_last)
            acc = None
            for model in self.models:
                with torch.autocast("cuda", enabled=amp):
                    p = torch.softmax(model(x).float(), dim=1)
                acc = p if acc is None else acc + p
            probs = (acc / len(self.models))[..., :h, :w].cpu().numpy()
            if out is None:
                out = np.zeros((n, probs.shape[1], height, width), dtype=np.float32)
                out[:, 0] = 1.0  # outside the body tiles: background
            for m, tile in enumerate(tiles):
                rows, cols = tile.keep_in_run()
                out[start:start + len(batch), :, tile.keep[0], tile.keep[1]] = probs[m * len(batch):(m + 1) * len(batch), :, rows, cols]
            if progress:
                progress(min(1.0, (start + len(batch)) / n), "segmenting slices")
        if out is None:
            raise ValueError("no slices to predict")
        return out

    def slice_probabilities(self, volume: Volume, progress: Progress | None = None, *, tta: bool = False,
                            window: tuple[float, float] | None = None,
                            location: Any = None) -> tuple[np.ndarray, Volume]:
        """Probabilities per canonical slice: ((K, C, I', J') float32, canonical Volume).

        With ``tta`` the slices are also run mirrored left-right (canonical axis ``i``) and the two
        probability maps averaged (labels carry no side, so the mirror is a valid view). With ``location``
        (the locator's output for the whole scan) its prior is applied (:mod:`limbseg.segmentation.combine`,
        weight :attr:`prior_weight`).
        """
        inputs, canon = self.prepare(volume, window)
        probs = self.predict_slices(inputs, progress)  # (K, C, I, J)
        if tta:
            mirrored = self.predict_slices(np.ascontiguousarray(inputs[:, :, ::-1, :]))
            probs = 0.5 * (probs + mirrored[:, :, ::-1, :])
        if location is not None and np.max(self.prior_weight) > 0:
            from limbseg.segmentation.combine import apply_prior, prior_on_grid

            probs = apply_prior(probs, prior_on_grid(location, canon), self.prior_weight)
        return probs, canon

    def canonical_probabilities(self, volume: Volume, progress: Progress | None = None, *, tta: bool = False,
                                window: tuple[float, float] | None = None) -> tuple[np.ndarray, Volume]:
        """Probabilities on the canonical grid: ((C, I', J', K') float32, canonical Volume)."""
        probs, canon = self.slice_probabilities(volume, progress, tta=tta, window=window)
        return np.ascontiguousarray(np.transpose(probs, (1, 2, 3, 0))), canon

    def _native_channels(self, volume: Volume, progress: Progress | None, tta: bool,
                         window: tuple[float, float] | None) -> Iterator[np.ndarray]:
        probs, canon = self.canonical_probabilities(volume, progress, tta=tta, window=window)
        for c in range(probs.shape[0]):
            yield to_native(probs[c], canon.affine, volume, order=1, cval=1.0 if c == 0 else 0.0)

    def predict_probabilities(self, volume: Volume, progress: Progress | None = None, *, tta: bool = False,
                              window: tuple[float, float] | None = None) -> np.ndarray:
        """Class probabilities on the input's native grid: float32 (C, I, J, K); classes by label value."""
        return np.stack(list(self._native_channels(volume, progress, tta, window))).astype(np.float32, copy=False)

    def predict(self, volume: Volume, progress: Progress | None = None, *, tta: bool = False,
                window: tuple[float, float] | None = None, location: Any = None) -> LabelMap:
        """Label map (uint8) on the native grid (same shape and affine): the argmax of the probabilities
        resampled trilinearly to the native grid (:func:`native_argmax`). ``window``: see :meth:`prepare`;
        ``location``: see :meth:`slice_probabilities`."""
        probs, canon = self.slice_probabilities(volume, progress, tta=tta, window=window, location=location)
        labels = native_argmax(probs, canon.affine, volume)
        meta = {k: v for k, v in volume.meta.items() if k != "canonical"}
        return LabelMap(labels, volume.affine.copy(), meta, scheme=self.scheme)


def _shift(affine: np.ndarray, lo: Sequence[int]) -> np.ndarray:
    """The affine of a sub-grid that starts at voxel ``lo``."""
    out = affine.copy()
    out[:3, 3] = affine[:3, :3] @ np.asarray(lo, dtype=float) + affine[:3, 3]
    return out


def native_argmax(probs: np.ndarray, canonical_affine: np.ndarray, native: Volume) -> np.ndarray:
    """argmax over classes of the probabilities resampled (trilinear) to the native grid, as uint8 labels.

    Args:
        probs: (K, C, I, J) per canonical slice, softmax (they sum to 1 over C).
        canonical_affine: RAS affine of the canonical (I, J, K) grid.
        native: the grid to label (shape and affine).

    Equal to resampling every class over the whole native grid and taking the argmax, but computed only
    where a class can win: a class's interpolated probability is a convex combination of its values at
    the 8 surrounding canonical voxels, and a winner has at least ``1 / C``; so class ``c`` is resampled
    only in the native box that maps into the box of canonical voxels where it reaches ``1 / C``, grown
    by one voxel. Outside every foreground box each foreground class is below ``1 / C`` and background
    (above ``1 / C``) wins; background is resampled in the box around all of them. Ties go to the lower
    label, as ``numpy.argmax``.
    """
    n_classes = probs.shape[1]
    canon_shape = (probs.shape[2], probs.shape[3], probs.shape[0])
    to_index = np.linalg.inv(native.affine) @ canonical_affine  # canonical index -> native index
    boxes: dict[int, list[tuple[int, int]]] = {}
    for c in range(1, n_classes):
        box = nonzero_box(probs[:, c] >= 1.0 / n_classes)  # (K, I, J) order
        if box is not None:
            k, i, j = box
            boxes[c] = [(max(0, b.start - 1), min(n, b.stop + 1)) for b, n in zip((i, j, k), canon_shape, strict=True)]
    labels = np.zeros(native.shape, dtype=np.uint8)
    if not boxes:
        return labels
    boxes[0] = [(min(b[a][0] for b in boxes.values()), max(b[a][1] for b in boxes.values())) for a in range(3)]

    def native_box(box: list[tuple[int, int]]) -> list[tuple[int, int]] | None:
        ends = [(lo, hi - 1) for lo, hi in box]  # first and last voxel on each axis
        corners = np.array([[i, j, k, 1.0] for i in ends[0] for j in ends[1] for k in ends[2]])
        idx = (to_index @ corners.T)[:3]
        lo = np.maximum(np.floor(idx.min(axis=1) - 1e-6).astype(int), 0)
        hi = np.minimum(np.ceil(idx.max(axis=1) + 1e-6).astype(int) + 1, native.shape)
        return None if np.any(hi <= lo) else list(zip(lo.tolist(), hi.tolist(), strict=True))

    def resampled(c: int, box: list[tuple[int, int]], target: list[tuple[int, int]]) -> np.ndarray:
        (i0, i1), (j0, j1), (k0, k1) = box
        crop = np.ascontiguousarray(np.transpose(probs[k0:k1, c, i0:i1, j0:j1], (1, 2, 0)))
        shape = tuple(hi - lo for lo, hi in target)
        return resample_array(crop, _shift(canonical_affine, [b[0] for b in box]),
                              _shift(native.affine, [t[0] for t in target]), shape, order=1,
                              cval=1.0 if c == 0 else 0.0)

    outer = native_box(boxes[0])
    if outer is None:
        return labels
    best = resampled(0, boxes[0], outer)
    sub = np.zeros(best.shape, dtype=np.uint8)
    for c in range(1, n_classes):
        target = native_box(boxes[c]) if c in boxes else None
        if target is None:
            continue
        target = [(max(t[0], o[0]), min(t[1], o[1])) for t, o in zip(target, outer, strict=True)]
        if any(hi <= lo for lo, hi in target):
            continue
        p = resampled(c, boxes[c], target)
        region = tuple(slice(t[0] - o[0], t[1] - o[0]) for t, o in zip(target, outer, strict=True))
        better = p > best[region]
        sub[region][better] = c
        best[region] = np.where(better, p, best[region])
    labels[tuple(slice(lo, hi) for lo, hi in outer)] = sub
    return labels
