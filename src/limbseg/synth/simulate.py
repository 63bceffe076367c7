"""Scan geometry and image formation: tissues on a finer grid, averaged down, then gain and noise.

The scan grid follows the study by default (axial, 512x512, 0.9375 mm pixels, 3 mm slices,
from above the iliac crests to below the ankles). The image is simulated on a grid finer by
``factors`` (at least 2x along the slice direction), in slabs cropped to the body, and
block-averaged to the scan grid (partial volume); the receive gain (bias field and table
stations) and Rician noise are applied at scan resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from limbseg.synth import anatomy, bones, mri
from limbseg.synth.pose import Skeleton
from limbseg.synth.voxel import Grid, index_box

if TYPE_CHECKING:
    from limbseg.synth.distractors import Distractors

ORIENTATIONS = ("axial", "coronal", "sagittal")
FOV_MM = 480.0
# RAS directions of i, j, k: axial i=L j=P k=S; coronal i=L j=I k=P; sagittal i=P j=I k=R
_AXES = {
    "axial": ([-1, 0, 0], [0, -1, 0], [0, 0, 1]),
    "coronal": ([-1, 0, 0], [0, 0, -1], [0, -1, 0]),
    "sagittal": ([0, -1, 0], [0, 0, -1], [1, 0, 0]),
}


@dataclass(frozen=True)
class ScanOptions:
    """Acquisition geometry: in-plane ``pixel`` and ``slice_thickness`` (mm), ``orientation``,
    in-plane ``matrix`` (axial; None: FOV 480 mm / pixel) and ``contrast``; ``distractors``: also
    simulate the unlabelled bones of :mod:`limbseg.synth.distractors` (labelled background)."""

    pixel: float = 0.9375
    slice_thickness: float = 3.0
    orientation: str = "axial"
    matrix: int | None = None
    contrast: str = "water"
    distractors: bool = False

    def check(self) -> None:
        if not 0.3 <= self.pixel <= 6.0:
            raise ValueError(f"pixel size must be within 0.3-6 mm, got {self.pixel}")
        if not 0.5 <= self.slice_thickness <= 10.0:
            raise ValueError(f"slice thickness must be within 0.5-10 mm, got {self.slice_thickness}")
        if self.orientation not in ORIENTATIONS:
            raise ValueError(f"orientation must be one of {', '.join(ORIENTATIONS)}")
        if self.contrast not in mri.CONTRASTS:
            raise ValueError(f"contrast must be one of {', '.join(mri.CONTRASTS)}")
        if self.matrix is not None and not 16 <= self.matrix <= 1024:
            raise ValueError(f"matrix must be within 16-1024, got {self.matrix}")


def scan_grid(sk: Skeleton, body: anatomy.Body, opts: ScanOptions) -> Grid:
    """The acquisition grid around the subject: crest + 15 mm down to the ankle - 45 mm."""
    pel = np.concatenate([sk.meshes[f"pelvis_{s}"].vertices for s in ("left", "right")])
    top = pel[:, 2].max() + 15.0
    bottom = min(sk.landmarks[s]["ankle"][2] for s in ("left", "right")) - 45.0
    lo, hi = body.bbox
    centre = np.array([0.5 * (lo[0] + hi[0]), 0.5 * (lo[1] + hi[1]), 0.5 * (top + bottom)])
    extent = {"axial": [FOV_MM, FOV_MM, top - bottom],
              "coronal": [FOV_MM, hi[1] - lo[1] + 20.0, top - bottom],
              "sagittal": [hi[0] - lo[0] + 20.0, FOV_MM / 2, top - bottom]}[opts.orientation]
    axes = [np.asarray(a, float) for a in _AXES[opts.orientation]]
    spacing = [opts.pixel, opts.pixel, opts.slice_thickness]
    shape = [int(np.ceil(float(np.abs(ax) @ extent) / sp)) for ax, sp in zip(axes, spacing, strict=True)]
    if opts.orientation == "axial":
        shape[0] = shape[1] = opts.matrix or int(round(FOV_MM / opts.pixel))
    affine = np.eye(4)
    affine[:3, :3] = np.stack([a * s for a, s in zip(axes, spacing, strict=True)], axis=1)
    affine[:3, 3] = centre - affine[:3, :3] @ ((np.array(shape) - 1) / 2.0)
    return Grid(tuple(shape), affine)  # type: ignore[arg-type]


def fine_factors(grid: Grid) -> tuple[int, int, int]:
    """Subdivision of each scan voxel for the simulation: in-plane to about 1 mm (at most 2x),
    along the slice to about 1.5 mm (2x or 3x)."""
    sp = grid.spacing
    inplane = [min(max(int(np.ceil(s / 1.0 - 0.05)), 1), 2) for s in sp[:2]]
    return (inplane[0], inplane[1], min(max(int(np.ceil(sp[2] / 1.5 - 0.05)), 2), 3))


def _body_box(body: anatomy.Body, fine: Grid, k0: int, k1: int) -> tuple[slice, ...] | None:
    """Fine-grid index box of the body within slices k0:k1."""
    i, j = fine.shape[0] - 1, fine.shape[1] - 1
    corners = np.array([[a, b, c] for a in (0, i) for b in (0, j) for c in (k0, k1 - 1)], float)
    zr = fine.to_ras(corners)[:, 2]
    rows = slice(max(int((zr.min() - body.z0) / anatomy.DZ) - 1, 0), int((zr.max() - body.z0) / anatomy.DZ) + 2)
    parts = body.parts[:, rows]
    present = parts[..., 2] > 0
    if not present.any():
        return None
    m = 1.2
    lo = [(parts[..., 0] - m * parts[..., 2])[present].min(), (parts[..., 1] - m * parts[..., 3])[present].min()]
    hi = [(parts[..., 0] + m * parts[..., 2])[present].max(), (parts[..., 1] + m * parts[..., 3])[present].max()]
    ras = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (zr.min(), zr.max())])
    box = index_box(fine.to_index(ras), fine.shape, margin=2)
    if box is None:
        return None
    return (box[0], box[1], slice(max(box[2].start, k0), min(box[2].stop, k1)))


def _slab_signal(body: anatomy.Body, sk: Skeleton, bone_vox: list, fine: Grid, box: tuple[slice, ...],
                 acq: mri.Acquisition) -> np.ndarray:
    """Noise-free signal (float32) in the fine-grid box."""
    coords = anatomy.BoxCoords.from_grid(fine.affine, box)
    tissue, texture = anatomy.soft_tissue(body, coords)
    bones.paint_bones(tissue, box, coords.full(), bone_vox, sk)
    return mri.tissue_signal(tissue, texture, acq)


def _bones_and_body(sk: Skeleton, body: anatomy.Body, fine: Grid, distractors: Distractors | None
                    ) -> tuple[anatomy.Body, list[bones.BoneVoxels]]:
    """The bones to paint on the fine grid, in painting order (distractors first: a labelled bone is
    painted over them), and the body with the distractors' soft tissue."""
    bone_vox = bones.voxelize_bones(sk, fine)
    if distractors is None:
        return body, bone_vox
    from limbseg.synth.distractors import voxelize

    return anatomy.with_parts(body, distractors.parts), voxelize(distractors, fine, bone_vox) + bone_vox


def fine_tissue(sk: Skeleton, body: anatomy.Body, grid: Grid, lo: np.ndarray, hi: np.ndarray,
                distractors: Distractors | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Tissue classes (uint8, the :mod:`limbseg.synth.anatomy` codes) on the simulation grid of ``grid``
    between the RAS corners ``lo`` and ``hi``, and their RAS coordinates ((..., 3) mm): what the image is
    made from, for tests and figures."""
    fine = grid.subdivided(fine_factors(grid))
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])], float)
    box = index_box(fine.to_index(corners), fine.shape, margin=0)
    if box is None:
        raise ValueError("the region is outside the scan")
    body, bone_vox = _bones_and_body(sk, body, fine, distractors)
    coords = anatomy.BoxCoords.from_grid(fine.affine, box)
    tissue, _ = anatomy.soft_tissue(body, coords)
    bones.paint_bones(tissue, box, coords.full(), bone_vox, sk)
    return tissue, np.stack(coords.full(), axis=-1)


def simulate_image(sk: Skeleton, body: anatomy.Body, grid: Grid, acq: mri.Acquisition,
                   rng: np.random.Generator, slab: int = 8, distractors: Distractors | None = None) -> np.ndarray:
    """The scan (uint16, grid.shape, (i, j, k)): partial-volume signal, gain and Rician noise.

    ``distractors``: unlabelled bones painted (before the labelled ones) with their soft tissue."""
    f = fine_factors(grid)
    fine = grid.subdivided(f)
    body, bone_vox = _bones_and_body(sk, body, fine, distractors)
    bias = anatomy.SmoothField.make(rng, body.bbox[0] - 50, body.bbox[1] + 50, (40, 40, 40), (120, 120, 200))
    out = np.empty(grid.shape, np.uint16)
    for k0 in range(0, grid.shape[2], slab):
        k1 = min(k0 + slab, grid.shape[2])
        noisy = mri.rayleigh_uint16((grid.shape[0], grid.shape[1], k1 - k0), acq.sigma, rng)
        box = _body_box(body, fine, k0 * f[2], k1 * f[2])
        if box is not None:
            # widen the box to whole scan voxels, then average blocks of f voxels
            box = tuple(slice(s.start // n * n, min(-(-s.stop // n) * n, size))
                        for s, n, size in zip(box, f, fine.shape, strict=True))
            fs = _slab_signal(body, sk, bone_vox, fine, box, acq)
            sh = [(s.stop - s.start) // n for s, n in zip(box, f, strict=True)]
            coarse = fs.reshape(sh[0], f[0], sh[1], f[1], sh[2], f[2]).mean(axis=(1, 3, 5))
            cb = tuple(slice(s.start // n, s.start // n + m) for s, n, m in zip(box, f, sh, strict=True))
            cc = anatomy.BoxCoords.from_grid(grid.affine, cb)
            g = mri.gain(acq, bias(cc), cc.z, body.z0)
            noisy[cb[0], cb[1], cb[2].start - k0:cb[2].stop - k0] = mri.to_uint16(
                mri.rician(coarse * g, acq.sigma, rng))
        out[:, :, k0:k1] = noisy
    return out
