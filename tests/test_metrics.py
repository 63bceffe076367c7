"""Metrics against MONAI on hand-made cases, and the empty-mask rules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.metrics import compute_average_surface_distance, compute_dice, compute_hausdorff_distance

from limbseg.metrics import assd, dice, hd95, volume_error_cm3, volume_error_pct


def _cases():
    rng = np.random.default_rng(4)
    a = np.zeros((20, 22, 9), bool)
    b = a.copy()
    a[3:12, 4:15, 1:6] = True
    b[5:14, 2:13, 2:8] = True
    c = a.copy()
    c[0:4, 0:3, :] = True  # touches the border
    return [(a, b), (c, b), (rng.random(a.shape) > 0.7, b), (a, a)]


def _t(m):
    return torch.as_tensor(m[None, None].astype(np.float32))


@pytest.mark.parametrize("k", range(4))
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.8, 1.2, 3.0)])
def test_against_monai(k, spacing):
    p, r = _cases()[k]
    assert dice(p, r) == pytest.approx(float(compute_dice(_t(p), _t(r))), abs=1e-6)
    ref_hd = float(compute_hausdorff_distance(_t(p), _t(r), percentile=95, spacing=spacing))
    ref_as = float(compute_average_surface_distance(_t(p), _t(r), symmetric=True, spacing=spacing))
    assert hd95(p, r, spacing) == pytest.approx(ref_hd, abs=1e-4)
    assert assd(p, r, spacing) == pytest.approx(ref_as, abs=1e-4)


def test_hand_computed_values():
    p = np.zeros((10, 10, 10), bool)
    r = p.copy()
    p[2:6, 2:6, 2:6] = True  # 64 voxels
    r[2:6, 2:6, 3:7] = True  # shifted by one slice
    assert dice(p, r) == pytest.approx(2 * 48 / 128)
    assert volume_error_cm3(p, r, 2.0) == 0.0
    r[0, 0, 0] = True
    assert volume_error_cm3(p, r, 2.0 * 1000) == pytest.approx(2.0)  # 1 voxel of 2 cm³
    assert volume_error_pct(p, r) == pytest.approx(100 / 65)
    q = p.copy()
    q[:, :, 2:6] = False
    q[2:6, 2:6, 5:9] = True  # shifted by 3 slices of 2 mm
    assert hd95(p, q, (1, 1, 2)) == pytest.approx(6.0)


def test_empty_mask_rules():
    e = np.zeros((5, 5, 5), bool)
    f = e.copy()
    f[2, 2, 2] = True
    assert dice(e, e) == 1.0 and dice(e, f) == 0.0 and dice(f, e) == 0.0
    assert hd95(e, e, (1, 1, 1)) == 0.0 and assd(e, e, (1, 1, 1)) == 0.0
    assert math.isnan(hd95(f, e, (1, 1, 1))) and math.isnan(assd(e, f, (1, 1, 1)))
    assert math.isnan(volume_error_pct(f, e))


def test_bad_inputs():
    with pytest.raises(ValueError):
        dice(np.zeros((3, 3)), np.zeros((3, 4)))
    with pytest.raises(ValueError):
        hd95(np.ones((3, 3, 3)), np.ones((3, 3, 3)), (1, 1))
