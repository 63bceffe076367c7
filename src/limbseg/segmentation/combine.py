"""Combine: the locator's coarse 3D probabilities as a prior on the fine network's probabilities.

For every bone class ``c`` the fine probability is multiplied by ``(prior_c + floor) ** weight`` and the
classes renormalised (a product of experts; background is left as the fine network has it), where
``prior_c`` is the locator's probability of ``c`` dilated by one coarse voxel (a 3 x 3 x 3 maximum,
6 mm) and resampled trilinearly onto the fine network's canonical grid. So

* where the locator sees no bone at all (a "pelvis" in a knee scan, a bone-like tendon far from bone),
  every bone class is scaled down by about ``floor ** weight`` and background wins;
* where the fine network hesitates between two bones that the locator tells apart by their place along
  the leg (a proximal femur that looks like a tibia plateau), the locator's bone wins;
* the dilation leaves the bone's outline to the fine network: the coarse output is only 6 mm sharp.

``weight`` (``model.json`` ``locator.prior_weight``, one number or one per bone) was chosen on validation
subjects (docs/experiments.md); 0 switches the prior off.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from limbseg.segmentation.locate import Location
from limbseg.volume import Volume

FLOOR = 0.01  #: prior added before the power: a bone the locator rules out keeps FLOOR ** weight


def prior_on_grid(location: Location, grid: Volume, dilate: int = 1) -> np.ndarray:
    """The locator's bone probabilities dilated by ``dilate`` coarse voxels, on ``grid``: (C-1, I, J, K)."""
    from limbseg.data.slices import resample_array

    out = np.empty((location.probs.shape[0] - 1, *grid.shape), dtype=np.float32)
    size = 2 * dilate + 1
    for c in range(1, location.probs.shape[0]):
        p = location.probs[c]
        if dilate > 0:
            p = ndimage.maximum_filter(p, size=size, mode="nearest")
        out[c - 1] = resample_array(p, location.grid.affine, grid.affine, grid.shape, order=1, cval=0.0)
    return out


def apply_prior(probs_kcij: np.ndarray, prior: np.ndarray, weight: float | Sequence[float],
                floor: float = FLOOR) -> np.ndarray:
    """Fine probabilities (K, C, I, J) times the prior (C-1, I, J, K) ** weight, renormalised (in place).

    ``weight``: one for every bone, or one per bone (label values 1..C-1; 0 leaves that bone to the fine
    network alone).
    """
    n = probs_kcij.shape[1] - 1
    weights = [float(weight)] * n if np.isscalar(weight) else [float(w) for w in weight]  # type: ignore[arg-type]
    if len(weights) != n:
        raise ValueError(f"prior weights: {len(weights)} given for {n} bones")
    if all(w <= 0 for w in weights):
        return probs_kcij
    for c in range(1, probs_kcij.shape[1]):
        w = weights[c - 1]
        if w <= 0:
            continue
        factor = np.transpose(prior[c - 1], (2, 0, 1)) + np.float32(floor)
        if w != 1:
            factor = factor ** np.float32(w)
        probs_kcij[:, c] *= factor
    total = probs_kcij.sum(axis=1, keepdims=True)
    np.maximum(total, np.float32(1e-12), out=total)
    probs_kcij /= total
    return probs_kcij
