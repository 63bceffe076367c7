"""Tiny synthetic datasets in nnU-Net layout, made in the tests (no `limbseg synth` needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from limbseg.io import write_image
from limbseg.labels import DEFAULT_SCHEME
from limbseg.volume import Volume


def make_subject(rng: np.random.Generator, shape=(40, 36, 12), spacing=(2.0, 2.0, 4.0)) -> tuple[Volume, Volume]:
    """A 'leg': pelvis slab on top, femur then tibia+fibula below, in bright soft tissue."""
    img = rng.normal(20, 3, shape).astype(np.float32)
    lab = np.zeros(shape, np.uint8)
    ii, jj = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    cx, cy = shape[0] / 2 + rng.integers(-2, 3), shape[1] / 2 + rng.integers(-2, 3)
    img[(ii - cx) ** 2 + (jj - cy) ** 2 < 14**2] += 80  # soft tissue
    for k in range(shape[2]):
        if k < 4:
            lab[..., k][(ii - cx) ** 2 + (jj - cy) ** 2 < 16] = 1  # tibia
            lab[..., k][(ii - cx - 7) ** 2 + (jj - cy) ** 2 < 5] = 3  # fibula
        elif k < 9:
            lab[..., k][(ii - cx) ** 2 + (jj - cy) ** 2 < 20] = 2  # femur
        else:
            lab[..., k][(abs(ii - cx) < 10) & (abs(jj - cy) < 3)] = 4  # pelvis
    img[lab > 0] = 200 + rng.normal(0, 5, int((lab > 0).sum()))
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    affine[:3, 3] = [40.0, 30.0, -20.0]
    return Volume(img, affine), Volume(lab, affine)


def make_dataset(root: Path, n: int = 3, seed: int = 21) -> Path:
    rng = np.random.default_rng(seed)
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for s in range(n):
        img, lab = make_subject(rng)
        write_image(img, root / "imagesTr" / f"case{s:03d}_0000.nii.gz")
        write_image(lab, root / "labelsTr" / f"case{s:03d}.nii.gz")
    meta = {"channel_names": {"0": "MRI"}, "labels": DEFAULT_SCHEME.to_dataset_labels(), "numTraining": n,
            "file_ending": ".nii.gz"}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("ds") / "D")
