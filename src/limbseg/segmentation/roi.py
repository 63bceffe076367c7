"""Automatic region of interest: where the lower limbs are (pelvis to feet), from the image alone.

The scan is resampled to a coarse canonical axial grid (``COARSE_MM`` = 4 mm voxels; see
:func:`limbseg.data.slices.canonical_axial`), smoothed, and thresholded (Otsu) into a body mask,
closed and hole-filled slice by slice. In each axial slice the body's connected components (after
one erosion, which separates legs that just touch) are examined: below the crotch the two largest
are the two legs (side by side, the smaller at least 35 % of the larger); at and above the pelvis
there is one wide blob (plus arms, much smaller than the trunk). On axial scans two thighs pressed
into one blob also count, when the body's front-to-back depth has two peaks with a valley between.
The longest run of two-leg slices (gaps up to ``MAX_GAP_MM`` bridged, for knees that touch; at
least ``MIN_LEG_RUN_MM`` long) gives the legs; the top of that run is where the legs merge (the
crotch). The region runs from the lowest body slice to the crotch plus ``PELVIS_FRACTION`` (0.4)
of the visible leg length (crotch minus lowest body slice), at least ``PELVIS_MIN_MM`` (200 mm),
enough for the iliac crests; everything higher (abdomen, thorax, head in a whole-body scan) is left
out. The in-plane box is the body's extent over those slices. ``MARGIN_MM`` (10 mm) is added on
every side of the box, above and below included.

All positions are RAS mm: ``z`` superior, ``x`` towards the patient's right (RAS +x = right).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from limbseg.errors import LimbsegError
from limbseg.volume import Volume

COARSE_MM = 4.0  #: in-plane spacing of the detection grid
PELVIS_FRACTION = 0.4  #: pelvis height above the crotch, as a fraction of the visible leg length
PELVIS_MIN_MM = 200.0  #: ... and at least this much
MARGIN_MM = 10.0  #: added on every side of the detected box
MIN_LEG_RUN_MM = 30.0  #: shortest run of two-leg slices accepted as legs
MIN_BLOB_CM2 = 4.0  #: components smaller than this are noise
MAX_GAP_MM = 250.0  #: slices where the legs touch (knees) bridged within a run of leg slices


@dataclass
class ROI:
    """The lower-limb region, in RAS mm.

    Attributes:
        z_mm: (inferior, superior) limits along RAS z.
        x_mm, y_mm: in-plane box limits along RAS x and y (low, high).
        midline_x_mm: RAS x of the body's midline (between the legs); right side is ``x >`` this.
        crotch_z_mm: where the two legs merge (None when the range was given by hand and no legs were seen).
        notes: human-readable remarks (e.g. "legs cut at the bottom of the field").
    """

    z_mm: tuple[float, float]
    x_mm: tuple[float, float]
    y_mm: tuple[float, float]
    midline_x_mm: float
    crotch_z_mm: float | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"z_mm": list(self.z_mm), "x_mm": list(self.x_mm), "y_mm": list(self.y_mm),
                "midline_x_mm": self.midline_x_mm, "crotch_z_mm": self.crotch_z_mm, "notes": list(self.notes)}


def coarse_body(volume: Volume) -> tuple[Volume, Volume]:
    """(coarse image, body mask) on the coarse canonical axial grid (``COARSE_MM``; i -> left,
    j -> posterior, k -> superior): the scan resampled (float32) and its body (bool (I, J, K)): Otsu
    threshold of the smoothed image, closed and hole-filled slice by slice."""
    from skimage.filters import threshold_otsu

    from limbseg.data.slices import canonical_axial

    canon = canonical_axial(volume, COARSE_MM, order=1, slice_spacing_mm=COARSE_MM)
    smooth = ndimage.gaussian_filter(canon.array.astype(np.float32), sigma=1.0)
    if float(smooth.max()) <= float(smooth.min()):
        return canon, canon.with_array(np.zeros(canon.shape, bool))
    mask = smooth > threshold_otsu(smooth[:: 2, :: 2, :])
    for k in range(mask.shape[2]):
        if mask[:, :, k].any():
            mask[:, :, k] = ndimage.binary_fill_holes(ndimage.binary_closing(mask[:, :, k], iterations=2))
    return canon, canon.with_array(mask)


def body_mask(volume: Volume) -> Volume:
    """Coarse canonical axial body mask (bool (I, J, K); see :func:`coarse_body`)."""
    return coarse_body(volume)[1]


def _slice_profile(mask2d: np.ndarray, x_mm: np.ndarray, min_px: int, touching: bool = True
                   ) -> tuple[bool, float | None]:
    """(two legs?, midline x between them) for one coarse axial slice."""
    lab, n = ndimage.label(ndimage.binary_erosion(mask2d))  # separates legs that just touch
    if n < 2:
        return _touching_legs(mask2d, x_mm, min_px) if touching else (False, None)
    sizes = np.bincount(lab.ravel())[1:]
    order = np.argsort(sizes)[::-1]
    a, b = sizes[order[0]], sizes[order[1]]
    if b < min_px or b < 0.35 * a:
        return False, None
    xa, xb = (float(x_mm[lab == order[n] + 1].mean()) for n in (0, 1))
    widths = [float(np.ptp(x_mm[lab == order[n] + 1])) for n in (0, 1)]
    if abs(xa - xb) < 0.5 * max(widths):  # one above the other, not side by side
        return False, None
    return True, (xa + xb) / 2


def _touching_legs(mask2d: np.ndarray, x_mm: np.ndarray, min_px: int) -> tuple[bool, float | None]:
    """Two thighs pressed together: the body's front-to-back depth (pixels per x column) has two
    peaks and, between them, a valley under 80 % of the smaller peak (at the pelvis the depth is
    largest in the middle)."""
    depth = mask2d.sum(axis=1).astype(float)
    if mask2d.sum() < 2 * min_px or depth.max() <= 0:
        return False, None
    cols = np.flatnonzero(depth)
    centre = int(round(np.average(np.arange(depth.size), weights=depth)))
    if not cols[0] < centre < cols[-1]:
        return False, None
    a = int(np.argmax(depth[:centre]))
    b = centre + int(np.argmax(depth[centre:]))
    if b - a < 3:
        return False, None
    valley = a + int(np.argmin(depth[a:b + 1]))
    if depth[valley] >= 0.8 * min(depth[a], depth[b]):
        return False, None
    return True, float(x_mm[valley, 0])


def _longest_run(flags: np.ndarray, max_gap: int = 2) -> tuple[int, int] | None:
    """(first, last) index of the longest run of True, bridging gaps of up to ``max_gap``."""
    idx = np.flatnonzero(flags)
    if idx.size == 0:
        return None
    breaks = np.flatnonzero(np.diff(idx) > max_gap + 1)
    starts = np.r_[idx[0], idx[breaks + 1]]
    ends = np.r_[idx[breaks], idx[-1]]
    best = int(np.argmax(ends - starts))
    return int(starts[best]), int(ends[best])


def find_roi(volume: Volume, *, start_mm: float | None = None, end_mm: float | None = None,
             body: Volume | None = None) -> ROI:
    """Find the lower-limb region of a scan (see the module docstring).

    Args:
        volume: the scan, any orientation.
        start_mm, end_mm: optional hand-set limits along RAS z (inferior, superior); either one
            overrides the detected limit.
        body: the scan's :func:`body_mask`, when already computed.
    Raises:
        LimbsegError: when no run of two-leg slices (at least ``MIN_LEG_RUN_MM``) is seen and not both
            ``start_mm`` and ``end_mm`` are given.
    """
    body = body_mask(volume) if body is None else body
    mask, aff = body.array, body.affine
    x_mm = aff[0, 0] * np.arange(mask.shape[0])[:, None] + aff[0, 3] + np.zeros(mask.shape[:2])
    z_mm = aff[2, 2] * np.arange(mask.shape[2]) + aff[2, 3]
    min_px = int(MIN_BLOB_CM2 * 100 / COARSE_MM**2)
    # Thighs pressed together are recognised on axial acquisitions only: on an oblique whole-body
    # phantom the depth-valley rule also fired in the trunk (known limitation, see docs/segment.md).
    from limbseg.data.slices import is_axial

    touching = is_axial(volume)
    profile = [_slice_profile(mask[:, :, k], x_mm, min_px, touching) for k in range(mask.shape[2])]
    dz = abs(aff[2, 2])
    run = _longest_run(np.array([p[0] for p in profile]), max_gap=int(MAX_GAP_MM / dz))
    notes: list[str] = []
    if run is None or (run[1] - run[0] + 1) * dz < MIN_LEG_RUN_MM:
        if start_mm is None or end_mm is None:
            raise LimbsegError("no lower limb found (no two separate legs in any axial slice); "
                               "set the range by hand with --roi-start/--roi-end (mm)", volume.meta.get("source"))
        return _manual_roi(body, start_mm, end_mm)
    k0, k1 = run
    midline = float(np.median([p[1] for p in profile[k0:k1 + 1] if p[1] is not None]))
    has_body = np.flatnonzero(mask.any(axis=(0, 1)))
    k_bottom = int(has_body[0]) if has_body[0] < k0 else k0
    if k_bottom == 0:
        notes.append("the legs reach the bottom of the field: distal bones may be cut")
    crotch = float(z_mm[k1])
    leg_len = crotch - float(z_mm[k_bottom])
    top = crotch + max(PELVIS_FRACTION * leg_len, PELVIS_MIN_MM)
    if k1 >= mask.shape[2] - 2:
        notes.append("the legs reach the top of the field: no pelvis in the scan")
    elif top > z_mm[-1]:
        notes.append("the pelvis may be cut at the top of the field")
    z_lo = float(z_mm[k_bottom]) - MARGIN_MM if start_mm is None else float(start_mm)
    z_hi = top + MARGIN_MM if end_mm is None else float(end_mm)
    return _box(body, z_lo, z_hi, midline, crotch, notes)


def _box(body: Volume, z_lo: float, z_hi: float, midline: float, crotch: float | None, notes: list[str]) -> ROI:
    """In-plane body extent over the slices within [z_lo, z_hi], plus the margin."""
    aff, mask = body.affine, body.array
    z_mm = aff[2, 2] * np.arange(mask.shape[2]) + aff[2, 3]
    sel = (z_mm >= z_lo - COARSE_MM) & (z_mm <= z_hi + COARSE_MM)
    proj = mask[:, :, sel].any(axis=2) if sel.any() else mask.any(axis=2)
    if not proj.any():
        proj = np.ones(mask.shape[:2], bool)
    ii, jj = np.nonzero(proj)
    xs = aff[0, 0] * np.array([ii.min(), ii.max()]) + aff[0, 3]
    ys = aff[1, 1] * np.array([jj.min(), jj.max()]) + aff[1, 3]
    return ROI(
        z_mm=(min(z_lo, z_hi), max(z_lo, z_hi)),
        x_mm=(float(xs.min()) - MARGIN_MM, float(xs.max()) + MARGIN_MM),
        y_mm=(float(ys.min()) - MARGIN_MM, float(ys.max()) + MARGIN_MM),
        midline_x_mm=midline, crotch_z_mm=crotch, notes=notes,
    )


def _manual_roi(body: Volume, start_mm: float, end_mm: float) -> ROI:
    mask, aff = body.array, body.affine
    cols = np.flatnonzero(mask.any(axis=(1, 2)))
    midline = float(aff[0, 0] * cols.mean() + aff[0, 3]) if cols.size else float(aff[0, 3])
    return _box(body, float(start_mm), float(end_mm), midline, None, ["range set by hand"])


def crop_to_roi(volume: Volume, roi: ROI) -> tuple[Volume, tuple[slice, slice, slice]]:
    """The native-grid sub-volume that covers the ROI box (any orientation).

    Returns:
        (cropped volume with its own affine, index slices of the crop in the full array).
    Raises:
        LimbsegError: when the ROI does not overlap the scan.
    """
    corners = np.array([[x, y, z] for x in roi.x_mm for y in roi.y_mm for z in roi.z_mm])
    ijk = volume.ras_to_index(corners)
    lo = np.clip(np.floor(ijk.min(axis=0)).astype(int), 0, np.array(volume.shape))
    hi = np.clip(np.ceil(ijk.max(axis=0)).astype(int) + 1, 0, np.array(volume.shape))
    if np.any(hi - lo < 1):
        raise LimbsegError(f"the region {roi.z_mm[0]:.0f}..{roi.z_mm[1]:.0f} mm lies outside the scan",
                           volume.meta.get("source"))
    sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    return volume.crop(lo, hi), sl  # type: ignore[return-value]
