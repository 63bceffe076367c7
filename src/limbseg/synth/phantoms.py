"""Small seeded leg phantoms a tiny 2D network can learn in a minute: tests and recipe benchmarks.

Unlike :mod:`limbseg.synth.cohort` (realistic children, seconds each), these are 48 x 48 x 20 voxel
volumes (2 x 2 x 4 mm) whose bones differ by shape, so any working training loop must learn them:
a small fibula disc beside a tibia disc (bottom 7 slices), one larger femur disc (middle), and a wide
pelvis bar in the top ``pelvis_slices`` slices (2 of 20 make it a rare class).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from limbseg.labels import DEFAULT_SCHEME
from limbseg.volume import Volume

SHAPE = (48, 48, 20)  #: i, j, k voxels of 2 x 2 x 4 mm


def learnable_leg(rng: np.random.Generator, pelvis_slices: int = 5) -> tuple[Volume, Volume]:
    """(image float32, labels uint8) of one phantom leg; position and noise drawn from ``rng``."""
    img = rng.normal(30, 4, SHAPE).astype(np.float32)
    lab = np.zeros(SHAPE, np.uint8)
    ii, jj = np.meshgrid(np.arange(SHAPE[0]), np.arange(SHAPE[1]), indexing="ij")
    cx, cy = 24 + rng.integers(-3, 4), 24 + rng.integers(-3, 4)

    def disc(x: float, y: float, r: float) -> np.ndarray:
        return (ii - x) ** 2 + (jj - y) ** 2 < r**2

    img[disc(cx, cy, 17)] += 70  # soft tissue
    top = SHAPE[2] - pelvis_slices
    for k in range(SHAPE[2]):
        if k < 7:
            lab[..., k][disc(cx - 3, cy, 4)] = 1
            lab[..., k][disc(cx + 7, cy, 3)] = 3
        elif k < top:
            lab[..., k][disc(cx, cy, 7)] = 2
        else:
            lab[..., k][(abs(ii - cx) < 13) & (abs(jj - cy) < 3)] = 4
    img[lab > 0] = 220 + rng.normal(0, 6, int((lab > 0).sum()))
    affine = np.diag([-2.0, -2.0, 4.0, 1.0])
    affine[:3, 3] = [50.0, 40.0, -30.0]
    return Volume(img, affine), Volume(lab, affine)


def write_phantom_dataset(root: str | Path, n: int, seed: int, *, pelvis_slices: int = 5) -> Path:
    """``n`` phantoms as a dataset (nnU-Net layout: dataset.json, imagesTr/, labelsTr/) under ``root``."""
    from limbseg.io import write_image

    root = Path(root)
    rng = np.random.default_rng(seed)
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for s in range(n):
        img, lab = learnable_leg(rng, pelvis_slices)
        write_image(img, root / "imagesTr" / f"case{s:03d}_0000.nii.gz")
        write_image(lab, root / "labelsTr" / f"case{s:03d}.nii.gz")
    meta = {"labels": DEFAULT_SCHEME.to_dataset_labels(), "numTraining": n, "file_ending": ".nii.gz",
            "source": f"limbseg.synth.phantoms (seed {seed})"}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


LOCATOR_SHAPE = (32, 32, 64)  #: i, j, k voxels of the locator phantoms (6 mm)


def located_leg(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(image float32, labels uint8) of one phantom leg for the 3D locator, shape :data:`LOCATOR_SHAPE`.

    The tibia and the femur are the **same** rod (same radius and intensity) below and above a knee gap
    at a random height; the fibula a thin rod beside the tibia; the pelvis a wide block at the top. A
    slice-by-slice network cannot tell tibia from femur here; a 3D one must use where the rod is.
    """
    img = rng.normal(30, 4, LOCATOR_SHAPE).astype(np.float32)
    lab = np.zeros(LOCATOR_SHAPE, np.uint8)
    ii, jj = np.meshgrid(np.arange(LOCATOR_SHAPE[0]), np.arange(LOCATOR_SHAPE[1]), indexing="ij")
    cx, cy = 16 + rng.integers(-3, 4), 16 + rng.integers(-3, 4)
    knee = int(rng.integers(22, 32))
    top = int(rng.integers(50, 56))
    for k in range(LOCATOR_SHAPE[2]):
        tissue = (ii - cx) ** 2 + (jj - cy) ** 2 < (8 if k < top else 14) ** 2
        img[..., k][tissue] += 60
        rod = (ii - cx) ** 2 + (jj - cy) ** 2 < 2.5**2
        if 3 <= k < knee:
            lab[..., k][rod] = 1
            lab[..., k][(ii - cx - 5) ** 2 + (jj - cy) ** 2 < 1.5**2] = 3
        elif knee + 2 <= k < top:
            lab[..., k][rod] = 2
        elif k >= top + 1:
            lab[..., k][(np.abs(ii - cx) < 11) & (np.abs(jj - cy) < 3)] = 4
    img[lab > 0] = rng.normal(120, 6, int((lab > 0).sum()))
    return img, lab
