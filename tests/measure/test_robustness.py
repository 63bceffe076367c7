"""The measurements do not depend on how the scan was oriented (issue #15, robustness).

One small virtual child (seed 1, age 5.3: the shortest bones of the cohort's first seeds) as the study's
axial series (0.94 x 0.94 x 3 mm, its truth label map) is measured once; the same label map is then
resampled with nearest-neighbour labels onto other grids and measured again:

- a sagittal series and an oblique one (the axial grid tilted by 20 degrees about the left-right axis),
  both at 0.94 mm (finer than the axial slices, so the resampling loses no slice and the test is about
  the measurement, not about a coarser copy): angles within 1.5 degrees, lengths within 1.5 mm;
- the image mirrored left-right: the left and right values swap (same tolerances);
- the whole scan rotated by 10 degrees about the superior axis (same axial grid): no angle moves by more
  than 1 degree.
"""

from __future__ import annotations

import numpy as np
import pytest

from limbseg.data.resample import resample_to
from limbseg.measure import measure_labels
from limbseg.measure.definitions import MEASUREMENTS
from limbseg.volume import LabelMap, Volume

SEED = 1
TOLERANCE = {"mm": 1.5, "deg": 1.5}
ANGLES = [m.name for m in MEASUREMENTS if m.unit == "deg"]
SIDES = ("left", "right")
#: RAS directions of the voxel axes (columns): axial i = L, j = P, k = S; sagittal i = P, j = I, k = R.
AXIAL = np.array([[-1.0, 0, 0], [0, -1.0, 0], [0, 0, 1.0]]).T
SAGITTAL = np.array([[0, -1.0, 0], [0, 0, -1.0], [1.0, 0, 0]]).T


def rotation(axis: str, degrees: float) -> np.ndarray:
    """Rotation matrix about the RAS ``x`` (left-right) or ``z`` (superior) axis."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    if axis == "x":
        return np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def reslice(labels: LabelMap, axes: np.ndarray, spacing: tuple[float, float, float],
            about: np.ndarray | None = None, turn: np.ndarray | None = None) -> LabelMap:
    """``labels`` resampled (nearest neighbour) onto a grid with voxel axes ``axes`` (RAS columns) and
    ``spacing`` that covers it; with ``turn`` the anatomy is first rotated by it about the point ``about``
    (RAS), i.e. the scan of a rotated body."""
    turn = np.eye(3) if turn is None else turn
    about = np.zeros(3) if about is None else about
    ijk = np.array([[a, b, c] for a in (0, labels.shape[0] - 1) for b in (0, labels.shape[1] - 1)
                    for c in (0, labels.shape[2] - 1)], dtype=float)
    corners = (labels.index_to_ras(ijk) - about) @ turn.T + about
    lo, hi = (corners @ axes).min(0), (corners @ axes).max(0)
    shape = tuple(int(np.ceil((h - low) / s)) + 1 for low, h, s in zip(lo, hi, spacing, strict=True))
    affine = np.eye(4)
    affine[:3, :3] = axes * np.asarray(spacing)
    affine[:3, 3] = axes @ lo
    # the rotated body's voxel at RAS p holds the label of the original at turn^-1 (p - about) + about
    src = np.eye(4)
    src[:3, :3], src[:3, 3] = turn.T, about - turn.T @ about
    source = Volume(labels.array, np.linalg.inv(src) @ labels.affine)
    out = resample_to(source, Volume(np.zeros(shape, np.uint8), affine), order=0, check_coverage=False)
    return LabelMap(np.ascontiguousarray(out.array, dtype=np.uint8), affine)


@pytest.fixture(scope="module")
def axial():
    from limbseg.synth.truth import truth_labels

    labels, _ = truth_labels(SEED)
    assert labels.spacing == pytest.approx((0.9375, 0.9375, 3.0))
    return labels, measure_labels(labels, case="axial")


def _centre(labels: LabelMap) -> np.ndarray:
    return labels.index_to_ras((np.asarray(labels.shape, dtype=float) - 1) / 2)[0]


def assert_same(got, want, sides=(("left", "left"), ("right", "right")), names=None, tol=TOLERANCE):
    """Every measurement of ``got`` (side a) within the tolerance of ``want`` (side b)."""
    bad = []
    for a, b in sides:
        for m in MEASUREMENTS:
            if names is not None and m.name not in names:
                continue
            g, w = got.value(a, m.name), want.value(b, m.name)
            assert g is not None and w is not None, (a, m.name)
            if abs(g - w) > tol[m.unit]:
                bad.append(f"{a} {m.name}: {g:.2f} vs {w:.2f} {m.unit}")
    assert not bad, "; ".join(bad)


@pytest.mark.parametrize("series", ["sagittal", "oblique"])
def test_sagittal_and_oblique_series_give_the_same_values(axial, series):
    labels, want = axial
    axes = SAGITTAL if series == "sagittal" else rotation("x", 20.0) @ AXIAL
    other = reslice(labels, axes, (0.9375, 0.9375, 0.9375))
    if series == "sagittal":
        assert abs(other.affine[0, 2]) > 0.9 and abs(other.affine[2, 1]) > 0.9  # slices across x, rows along z
    got = measure_labels(other)
    assert_same(got, want)


def test_mirroring_swaps_left_and_right(axial):
    labels, want = axial
    mirrored = LabelMap(np.ascontiguousarray(labels.array[::-1]), labels.affine.copy())
    got = measure_labels(mirrored)
    assert got.value("left", "femur_length") != pytest.approx(want.value("left", "femur_length"), abs=0.3)
    assert_same(got, want, sides=(("left", "right"), ("right", "left")))


def test_rotation_about_the_superior_axis_changes_no_angle_by_more_than_1_degree(axial):
    labels, want = axial
    turned = reslice(labels, AXIAL, labels.spacing, about=_centre(labels), turn=rotation("z", 10.0))
    got = measure_labels(turned)
    assert_same(got, want, names=ANGLES, tol={"deg": 1.0})
