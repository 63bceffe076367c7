"""Distractors: unlabelled bones (patella, sacrum and L4-L5, talus, calcaneus, arms) simulated as bone
tissue in the image, background in the labels; the labelled bones never lose a voxel to them."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from limbseg.synth import anatomy as A
from limbseg.synth import bones, distractors, simulate
from limbseg.synth.cohort import subject_model, synthesize_subject

SMALL = {"pixel": 4.0, "slice_thickness": 8.0}
BONE_TISSUE = [A.CORTEX, A.RED_MARROW, A.YELLOW_MARROW, A.PHYSIS, A.CARTILAGE]
MARROW = [A.RED_MARROW, A.YELLOW_MARROW]


@pytest.fixture(scope="module")
def model():
    """Seed 4 (age 10, with arms) at the small geometry, with its distractors."""
    m = subject_model(4, **SMALL, distractors=True)
    assert m.distractors is not None and m.distractors.arms
    return m


def _voxels_inside(subject, shape) -> np.ndarray:
    """Scan voxels whose centre lies inside ``shape`` (evaluated in its bounding box)."""
    lo, hi = shape.bounds()
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    ijk = np.linalg.solve(subject.image.affine, np.c_[corners, np.ones(8)].T)[:3].T
    a = np.clip(np.floor(ijk.min(0)).astype(int), 0, subject.image.shape)
    b = np.clip(np.ceil(ijk.max(0)).astype(int) + 1, 0, subject.image.shape)
    grid = np.stack(np.meshgrid(*[np.arange(p, q) for p, q in zip(a, b, strict=True)], indexing="ij"), axis=-1)
    out = np.zeros(subject.image.shape, bool)
    out[a[0]:b[0], a[1]:b[1], a[2]:b[2]] = shape.inside(subject.image.index_to_ras(
        grid.reshape(-1, 3).astype(float))).reshape(grid.shape[:3])
    return out


def _piece(distractor, name):
    return next(p for p in distractor.pieces if p.name == name)


def test_default_is_off_and_unchanged(small_subject):
    assert simulate.ScanOptions().distractors is False
    off = synthesize_subject(3, **SMALL, distractors=False)
    assert np.array_equal(off.image.array, small_subject.image.array)
    assert np.array_equal(off.labels.array, small_subject.labels.array)
    assert off.info == small_subject.info and "distractors" not in small_subject.info
    assert small_subject.distractors == {}


def test_distractors_are_dark_bone_in_the_image_and_background_in_the_labels(small_subject, distractor_subject):
    on, off = distractor_subject, small_subject
    assert {"patella_left", "patella_right", "talus_left", "talus_right", "calcaneus_left", "calcaneus_right",
            "sacrum", "lumbar"} <= set(on.info["distractors"])
    assert on.info["arms"] is False and set(on.info["distractors"]) == set(on.distractors)
    lab = on.labels.array
    for name in ("patella_left", "patella_right", "talus_left", "talus_right"):
        shape = _piece(on.distractors[name], name).shape
        inside = _voxels_inside(on, shape)
        assert inside.sum() >= 20, name
        assert (lab[inside] == 0).all(), f"{name} must be background"
        # water-only Dixon: fatty marrow and cortex are dark inside brighter soft tissue (muscle, cartilage)
        core = _voxels_inside(on, distractors.Ellipsoid(shape.centre, shape.axes, shape.semi - 2.0, shape.power))
        ring = _voxels_inside(on, distractors.Ellipsoid(shape.centre, shape.axes, shape.semi + 4.0, shape.power))
        ring &= ~_voxels_inside(on, distractors.Ellipsoid(shape.centre, shape.axes, shape.semi + 1.0, shape.power))
        ring &= lab == 0
        ratio = {k: s.image.array[core].mean() / s.image.array[ring].mean() for k, s in (("on", on), ("off", off))}
        assert ratio["on"] < 0.5 and ratio["off"] > ratio["on"] + 0.25, (name, ratio)
    for side in ("left", "right"):
        # the patella lies in front of the distal femur, the talus under the tibia
        femur = on.meshes[f"femur_{side}"].vertices
        distal = femur[femur[:, 2] < femur[:, 2].min() + 0.2 * np.ptp(femur[:, 2])]
        patella = on.distractors[f"patella_{side}"].centre
        assert distal[:, 2].min() < patella[2] < distal[:, 2].max()
        assert patella[1] > np.percentile(distal[:, 1], 90), "the patella is anterior to the femur"
        talus = on.distractors[f"talus_{side}"].centre
        i, j, k = np.rint(np.linalg.solve(on.image.affine, [*talus, 1.0])[:3]).astype(int)
        column = np.flatnonzero(lab[i, j] == 1)  # tibia voxels in the talus's column
        assert lab[i, j, k] == 0 and len(column) and column.min() > k


def test_labelled_bones_are_unchanged_and_win_every_contested_voxel(small_subject, distractor_subject, model):
    on, off = distractor_subject, small_subject
    assert np.array_equal(on.labels.array, off.labels.array)
    assert all(np.array_equal(on.masks[b], off.masks[b]) for b in off.masks)
    assert set(on.meshes) == set(off.meshes) and on.truth == off.truth
    # on the simulation grid: no distractor voxel within GAP_MM of a labelled bone
    fine = model.grid.subdivided(simulate.fine_factors(model.grid))
    labelled = bones.voxelize_bones(model.sk, fine)
    pieces = distractors.voxelize(model.distractors, fine, labelled)
    trimmed = 0
    for dv in pieces:
        analytic = dv.spec.shape.inside(np.stack(A.BoxCoords.from_grid(fine.affine, dv.box).full(), axis=-1))
        trimmed += int((analytic & ~dv.inside).sum())
        for bv in labelled:
            inter = [slice(max(a.start, b.start), min(a.stop, b.stop)) for a, b in zip(dv.box, bv.box, strict=True)]
            if any(s.stop <= s.start for s in inter):
                continue
            d = tuple(slice(s.start - b.start, s.stop - b.start) for s, b in zip(inter, dv.box, strict=True))
            b = tuple(slice(s.start - q.start, s.stop - q.start) for s, q in zip(inter, bv.box, strict=True))
            assert not (dv.inside[d] & (bv.outside[b] < distractors.GAP_MM)).any(), (dv.name, bv.name)
    assert trimmed > 0  # the sacrum reaches into the ilia and is cut at the sacroiliac joints
    # ... so that it touches them: its voxels come within a voxel of the hip bones
    sacrum = next(dv for dv in pieces if dv.name == "sacrum")
    near = []
    for bv in labelled:
        if bv.name.startswith("pelvis"):
            inter = [slice(max(a.start, b.start), min(a.stop, b.stop)) for a, b in zip(sacrum.box, bv.box, strict=True)]
            d = tuple(slice(s.start - b.start, s.stop - b.start) for s, b in zip(inter, sacrum.box, strict=True))
            b = tuple(slice(s.start - q.start, s.stop - q.start) for s, q in zip(inter, bv.box, strict=True))
            near.append(float(bv.outside[b][sacrum.inside[d]].min()))
    assert len(near) == 2 and max(near) < distractors.GAP_MM + max(fine.spacing) + 0.5, near


def test_distractor_tissue_is_cortex_around_marrow(model):
    items = {d.name: d for d in model.distractors.items}
    for group, name, marrow in (("patella_right", "patella_right", A.YELLOW_MARROW),
                                ("talus_left", "talus_left", A.YELLOW_MARROW),
                                ("arm_right", "radius_right", None), ("sacrum", "sacrum", A.RED_MARROW),
                                ("lumbar", "L5", A.RED_MARROW)):
        piece = _piece(items[group], name)
        lo, hi = piece.shape.bounds()
        if name == "radius_right":  # the distal forearm only
            lo, hi = np.r_[lo[:2], piece.distal[2]], np.r_[hi[:2], piece.distal[2] + 60.0]
        on, xyz = simulate.fine_tissue(model.sk, model.body, model.grid, lo - 6, hi + 6, model.distractors)
        off, _ = simulate.fine_tissue(model.sk, model.body, model.grid, lo - 6, hi + 6, None)
        inside = piece.shape.inside(xyz)
        inside &= ~np.isin(off, BONE_TISSUE)  # where a labelled bone is, it stays the labelled bone
        assert inside.sum() > 20, name
        assert np.isin(on[inside], BONE_TISSUE).mean() > 0.97, name
        assert not np.isin(off[inside], [A.CORTEX, *MARROW]).any(), name
        core = ndimage.binary_erosion(inside, iterations=2)
        assert np.isin(on[core], MARROW).mean() > 0.6, name
        if marrow is not None:
            assert (on[core] == marrow).mean() > 0.5, name
        if name in ("patella_right", "talus_left", "radius_right"):  # cortex >= 1 mm: seen on a 2 mm grid
            shell = inside & ~ndimage.binary_erosion(inside) & ndimage.binary_erosion(np.ones_like(inside), border_value=0)
            assert (on[shell] == A.CORTEX).mean() > 0.5, name
    # the arm lies outside the body's own outline, in soft tissue of its own
    hand = items["arm_right"].centre
    on, _ = simulate.fine_tissue(model.sk, model.body, model.grid, hand - 3, hand + 3, model.distractors)
    off, _ = simulate.fine_tissue(model.sk, model.body, model.grid, hand - 3, hand + 3, None)
    assert (off == A.AIR).all() and (on != A.AIR).all()


def test_same_seed_same_image_with_distractors(distractor_subject):
    again = synthesize_subject(3, **SMALL, distractors=True)
    assert np.array_equal(again.image.array, distractor_subject.image.array)
    assert again.info == distractor_subject.info
