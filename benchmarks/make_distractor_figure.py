"""Figure for docs/virtual-cohort.md: one virtual subject simulated with distractors (unlabelled bones).

A coronal slice through the sacrum, a sagittal slice through the midline (sacrum, L5, L4), one through
the right knee (patella, talus, calcaneus), reformatted from the axial scan, and the axial slice through the
sacrum (with the forearms beside the hips). Labelled bones are outlined in
colour; the distractors in white (dashed): they are bone in the image and background in the labels.

Usage: python benchmarks/make_distractor_figure.py [--seed 4] [--pixel 1.5] [--slice-thickness 2.5] [--out PNG]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from scipy import ndimage  # noqa: E402

from limbseg.synth.cohort import synthesize_subject  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "img" / "synth-distractors.png"
COLORS = ["#e69f00", "#56b4e9", "#009e73", "#cc79a7"]  # tibia, femur, fibula, pelvis


def _plane(subject, axis: int, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, labels, distractor mask) of one plane, rows along the other two axes (k last)."""
    box = [slice(None)] * 3
    box[axis] = slice(index, index + 1)
    img = np.squeeze(subject.image.array[tuple(box)], axis)
    lab = np.squeeze(subject.labels.array[tuple(box)], axis)
    grids = np.meshgrid(*[np.arange(n) if a != axis else np.array([index]) for a, n in enumerate(subject.image.shape)],
                        indexing="ij")
    ijk = np.stack([g.ravel() for g in grids], axis=1).astype(float)
    ras = subject.image.index_to_ras(ijk)
    mask = np.zeros(len(ras), bool)
    for d in subject.distractors.values():
        mask |= d.inside(ras)
    return img, lab, np.squeeze(mask.reshape(grids[0].shape), axis) & (lab == 0)


def _show(ax, img: np.ndarray, lab: np.ndarray, dis: np.ndarray, aspect: float, vmax: float, title: str) -> None:
    """One plane, rows: an in-plane axis (left to right), columns: k (superior up)."""
    ax.imshow(img[:, ::-1].T, cmap="gray", vmin=0, vmax=vmax, aspect=aspect, interpolation="bilinear")
    for v, c in zip((1, 2, 3, 4), COLORS, strict=True):
        if (lab == v).any():
            ax.contour((lab[:, ::-1] == v).T, levels=[0.5], colors=c, linewidths=0.8)
    if dis.any():
        ax.contour(dis[:, ::-1].T.astype(float), levels=[0.5], colors="w", linewidths=0.8, linestyles="--")
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def _crop(img: np.ndarray, noise: float, extra: int = 4) -> slice:
    """The rows of a plane (axis 0) that hold the body (smoothed signal above the noise), plus a margin."""
    smooth = ndimage.uniform_filter(img, 5)
    rows = np.flatnonzero((smooth > 3.0 * noise).mean(1) > 0.02)
    return slice(max(int(rows.min()) - extra, 0), int(rows.max()) + extra + 1) if len(rows) else slice(None)


def figure(seed: int, pixel: float, slice_thickness: float, out: Path) -> Path:
    s = synthesize_subject(seed, contrast="water", pixel=pixel, slice_thickness=slice_thickness, distractors=True)
    img, lab = s.image.array.astype(np.float32), s.labels.array
    vmax = float(np.percentile(img[lab > 0], 99.5)) * 1.6
    sp = s.image.spacing
    inv = np.linalg.inv(s.image.affine)

    def index(ras: np.ndarray, axis: int) -> int:
        return int(round(float((inv[:3, :3] @ ras + inv[:3, 3])[axis])))

    noise = float(np.median(img[:8, :8]))  # a corner of the scan: air
    sacrum = s.distractors["sacrum"].centre
    knee = s.distractors["patella_right"].centre
    pelvis_k = np.flatnonzero((lab == 4).any((0, 1)))
    femur_k = np.flatnonzero((lab == 2).any((0, 1)))
    top = s.image.shape[2]
    panels = []
    # coronal through the sacrum: from mid-thigh (the hands) to the top of the scan
    k_lo = int(np.median(femur_k))
    im, lb, ds = _plane(s, 1, index(sacrum, 1))
    rows = _crop(im, noise)
    panels.append((im[rows, k_lo:top], lb[rows, k_lo:top], ds[rows, k_lo:top], sp[0],
                   f"coronal through the sacrum (y = {sacrum[1]:.0f} mm)"))
    # sagittal at the midline: sacrum, L5, L4
    im, lb, ds = _plane(s, 0, index(sacrum, 0))
    k_lo = max(int(pelvis_k.min()) - int(20 / sp[2]), 0)
    rows = _crop(im, noise)
    panels.append((im[rows, k_lo:top], lb[rows, k_lo:top], ds[rows, k_lo:top], sp[1], "sagittal, midline"))
    # sagittal through the right knee: patella, talus, calcaneus
    im, lb, ds = _plane(s, 0, index(knee, 0))
    k_hi = int(np.median(femur_k))
    rows = _crop(im, noise)
    panels.append((im[rows, :k_hi], lb[rows, :k_hi], ds[rows, :k_hi], sp[1], "sagittal, right knee and foot"))
    # axial through the sacrum (and the forearms beside the hips)
    im, lb, ds = _plane(s, 2, index(sacrum, 2))
    ri, rj = _crop(im, noise), _crop(im.T, noise)
    axial = (im[ri, rj], lb[ri, rj], ds[ri, rj])
    ratios = [p[0].shape[0] * p[3] / (p[0].shape[1] * sp[2]) for p in panels]
    ratios.append(axial[0].shape[0] * sp[0] / (axial[0].shape[1] * sp[1]))
    height = 5.6
    fig, axes = plt.subplots(1, len(ratios), figsize=(height * sum(ratios) * 1.02 + 0.4, height + 0.8),
                             gridspec_kw={"width_ratios": ratios})
    for ax, (im, lb, ds, row_mm, title) in zip(axes, panels, strict=False):
        _show(ax, im, lb, ds, sp[2] / row_mm, vmax, title)
    # the axial plane: rows j (anterior up), columns i (patient right on the left)
    _show(axes[-1], axial[0][:, ::-1], axial[1][:, ::-1], axial[2][:, ::-1], sp[1] / sp[0], vmax,
          f"axial through the sacrum (z = {sacrum[2]:.0f} mm)")
    kinds = sorted({d.kind for d in s.distractors.values()})
    fig.suptitle(f"{s.info['case']} (age {s.info['age']:.1f} y), water-only Dixon, {pixel:g} x {pixel:g} x "
                 f"{slice_thickness:g} mm, `limbseg synth --distractors`\ncoloured: labelled bones (tibia orange, "
                 f"femur blue, fibula green, pelvis pink); white dashed: distractors, label 0 ({', '.join(kinds)}); "
                 "sagittal: anterior left", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=72)
    plt.close(fig)
    _palette_png(out)
    return out


def _palette_png(path: Path, greys: int = 56) -> None:
    """Rewrite the PNG with a palette of ``greys`` grey levels and the outline colours (a small file)."""
    colours = [tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in COLORS] + [(255, 255, 255)]
    levels = [tuple([int(round(v))] * 3) for v in np.linspace(0, 255, greys)]
    flat = [v for rgb in levels + colours for v in rgb]
    pal = Image.new("P", (1, 1))
    pal.putpalette(flat + flat[-3:] * (256 - len(flat) // 3))
    Image.open(path).convert("RGB").quantize(palette=pal, dither=Image.Dither.NONE).save(path, optimize=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=4, help="a subject with arms (about half have them)")
    p.add_argument("--pixel", type=float, default=1.5)
    p.add_argument("--slice-thickness", type=float, default=2.5)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    print(figure(args.seed, args.pixel, args.slice_thickness, args.out))


if __name__ == "__main__":
    main()
