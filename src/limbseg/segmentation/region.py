"""What the fine network sees of a scan: the region it runs on and the intensity window, one definition.

``limbseg segment``, training, validation and evaluation all call :func:`find_region` on the whole
scan and :func:`network_volume` on its crop, so a model is trained on exactly the kind of input it is
later given (same region, same normalisation, same channels):

* region: the automatic lower-limb ROI (:mod:`limbseg.segmentation.roi`), cropped on the native grid; for
  training data where no ROI is found (``whole_scan_fallback``), the whole scan;
* intensity window: the 0.5 and 99.5 percentiles of the scan inside its body mask (the coarse 4 mm grid
  of the ROI finder: Otsu threshold, holes filled), computed once over the **whole scan**, so neither
  the crop nor the air (and its noise) around the body moves it (:func:`body_window`);
* network volume: the crop on its canonical axial grid at the bundle's spacing, normalised by the window
  to [0, 1]; the 2.5D channels are taken from it at ``neighbour_mm`` (:func:`limbseg.data.slices.slice_channels`).

Bundles whose ``normalisation.method`` is ``"percentile"`` (made before the window existed) are normalised
as they were trained: percentiles of the crop's voxels above 1 % of its maximum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from limbseg.data.slices import canonical_axial, normalise
from limbseg.errors import LimbsegError
from limbseg.segmentation import roi as roi_mod
from limbseg.volume import Volume

BODY_MARGIN_MM = 8.0  #: added around the body's in-plane extent (two coarse voxels)
WINDOW_METHOD = "body-percentile"  #: ``normalisation.method`` of bundles normalised by :func:`body_window`


@dataclass
class Region:
    """Where the network runs on a scan and how its intensities are scaled.

    Attributes:
        index: native-grid index slices (i, j, k) of the crop in the scan.
        window: (lo, hi) intensity window of the whole scan (:func:`body_window`).
        roi: the detected ROI, or None when the whole scan is used.
    """

    index: tuple[slice, slice, slice]
    window: tuple[float, float]
    roi: roi_mod.ROI | None
    location: Any = None  #: the locator's output for the whole scan (bundles with a coarse 3D stage)

    def crop(self, volume: Volume) -> Volume:
        """The sub-volume of ``volume`` (the scan, or labels on its grid) that the network runs on."""
        lo = [s.start for s in self.index]
        hi = [s.stop for s in self.index]
        return volume.crop(lo, hi)


def body_window(volume: Volume, lower: float = 0.5, upper: float = 99.5,
                coarse: tuple[Volume, Volume] | None = None) -> tuple[float, float]:
    """(lo, hi): the ``lower``/``upper`` percentiles of the scan's intensities inside its body mask.

    Computed on the coarse canonical grid of :func:`limbseg.segmentation.roi.coarse_body` (pass its result as
    ``coarse`` when already computed). Falls back to all voxels when the body holds fewer than 100.
    """
    image, body = coarse if coarse is not None else roi_mod.coarse_body(volume)
    values = image.array[body.array]
    if values.size < 100:
        values = image.array.ravel()
    lo, hi = np.percentile(values.astype(np.float32), [lower, upper])
    return float(lo), float(hi)


def find_region(volume: Volume, *, start_mm: float | None = None, end_mm: float | None = None,
                whole_scan_fallback: bool = False, normalisation: dict[str, Any] | None = None,
                locator: Any = None) -> Region:
    """The network's region of ``volume`` (the whole scan) and its intensity window.

    With a ``locator`` (:class:`limbseg.segmentation.locate.Locator`, bundles with a coarse 3D stage) the
    region is the box around the bones it finds plus a margin (any field of view: whole body, one leg,
    one knee); without one, or with ``start_mm``/``end_mm`` given by hand, the body-shape heuristic of
    :mod:`limbseg.segmentation.roi` (which needs both legs in view).

    Raises:
        LimbsegError: no lower limb found (and no fallback), or the region lies outside the scan.
    """
    norm = normalisation or {}
    coarse = roi_mod.coarse_body(volume)
    window = body_window(volume, float(norm.get("lower", 0.5)), float(norm.get("upper", 99.5)), coarse)
    location = locator.locate(volume) if locator is not None else None
    try:
        if location is not None and start_mm is None and end_mm is None:
            roi = body_width(roi_from_location(location), coarse[1])
            try:  # where the body-shape heuristic also sees two legs, the region covers both boxes
                roi = union_roi(roi, roi_mod.find_roi(volume, body=coarse[1]))
            except LimbsegError:
                pass  # one leg, one knee, a cut field of view: the locator's box alone
        else:
            roi = roi_mod.find_roi(volume, start_mm=start_mm, end_mm=end_mm, body=coarse[1])
    except LimbsegError:
        if not whole_scan_fallback:
            raise
        whole = tuple(slice(0, n) for n in volume.shape)
        return Region(whole, window, None, location)  # type: ignore[arg-type]
    _, index = roi_mod.crop_to_roi(volume, roi)
    return Region(index, window, roi, location)


def union_roi(located: roi_mod.ROI, heuristic: roi_mod.ROI) -> roi_mod.ROI:
    """The box covering both ROIs, with the heuristic's midline and crotch (it saw two legs).

    A safety net while the locator misses bones a whole-body scan shows (the pelvis, docs/model-card.md):
    on scans where the heuristic works, the region is never smaller than it was before the locator.
    """
    def span(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
        return (min(a[0], b[0]), max(a[1], b[1]))

    return roi_mod.ROI(span(located.z_mm, heuristic.z_mm), span(located.x_mm, heuristic.x_mm),
                       span(located.y_mm, heuristic.y_mm), heuristic.midline_x_mm, heuristic.crotch_z_mm,
                       [*located.notes, "and the body-shape ROI (two legs seen)", *heuristic.notes])


def body_width(roi: roi_mod.ROI, body: Volume, margin_mm: float = BODY_MARGIN_MM) -> roi_mod.ROI:
    """The ROI widened in-plane to the body it crosses (``body``: the coarse body mask of
    :func:`limbseg.segmentation.roi.coarse_body`), from the ROI's first to its last slice.

    The locator's box decides which slices the fine network runs on; in-plane its box is too tight where it
    misses a bone (its fibula and pelvis are weak): a thin fibula 1 cm outside the tibia's box was lost in
    one-leg scans. The fine network runs on the body's tiles only (:func:`limbseg.segmentation.predict.body_tiles`), so
    the wider box costs little.
    """
    mask = body.array
    centres = body.index_to_ras(np.stack([np.zeros(mask.shape[2]), np.zeros(mask.shape[2]),
                                          np.arange(mask.shape[2])], axis=1).astype(float))[:, 2]
    ks = np.flatnonzero((centres >= roi.z_mm[0]) & (centres <= roi.z_mm[1]))
    if ks.size == 0 or not mask[:, :, ks].any():
        return roi
    idx = np.argwhere(mask[:, :, ks]).astype(float)
    idx[:, 2] += ks[0]
    corners = body.index_to_ras(np.array([idx.min(axis=0), idx.max(axis=0)]))
    half = np.abs(body.affine[:3, :3]).sum(axis=1) / 2  # the voxels' outer edges
    lo, hi = corners.min(axis=0) - half - margin_mm, corners.max(axis=0) + half + margin_mm
    x = (min(roi.x_mm[0], float(lo[0])), max(roi.x_mm[1], float(hi[0])))
    y = (min(roi.y_mm[0], float(lo[1])), max(roi.y_mm[1], float(hi[1])))
    return roi_mod.ROI(roi.z_mm, x, y, roi.midline_x_mm, roi.crotch_z_mm, [*roi.notes, "as wide as the body"])


def roi_from_location(location: Any) -> roi_mod.ROI:
    """The ROI around the bones the locator found (plus its margin), with a midline hint.

    The midline is the pelvis's centre in x when the pelvis is in view, else the centre of the bones in x
    (between the legs when both are in view; sides are decided from the bones, :mod:`limbseg.segmentation.sides`).

    Raises:
        LimbsegError: the locator found no bone.
    """
    box = location.box_mm()
    if box is None:
        raise LimbsegError("no lower-limb bone found in the scan (the 3D locator saw none)",
                           location.grid.meta.get("source"))
    lo, hi = box
    labels = np.argmax(location.probs, axis=0) * location.bones()
    pelvis = location.names.index("pelvis") + 1 if "pelvis" in location.names else -1
    pick = labels == pelvis if location.found("pelvis") else labels > 0
    midline = float(location.grid.index_to_ras(np.argwhere(pick).astype(float))[:, 0].mean())
    notes = ["region from the 3D locator's bones + margin"]
    return roi_mod.ROI((float(lo[2]), float(hi[2])), (float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1])),
                       midline, None, notes)


def network_volume(crop: Volume, preprocessing: dict[str, Any], window: tuple[float, float] | None) -> Volume:
    """The crop on its canonical axial grid at ``preprocessing["spacing_mm"]``, normalised to [0, 1] (float32).

    ``window`` is required for bundles normalised by the body window (:data:`WINDOW_METHOD`); for older
    bundles (``"percentile"``) it is ignored and the crop's own percentiles are used.
    """
    canon = canonical_axial(crop, float(preprocessing["spacing_mm"]), order=1)
    norm = preprocessing.get("normalisation", {})
    if norm.get("method") == WINDOW_METHOD:
        if window is None:
            raise ValueError("this model normalises by the whole scan's body window: pass window=")
        arr = normalise(canon.array, window=window)
    else:
        arr = normalise(canon.array, float(norm.get("lower", 0.5)), float(norm.get("upper", 99.5)))
    return canon.with_array(arr)
