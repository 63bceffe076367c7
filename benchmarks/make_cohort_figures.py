"""Figures for docs/virtual-cohort.md: per contrast, axial slices (hip, thigh, knee, calf) with
the label outline, and a coronal view. Usage: python benchmarks/make_cohort_figures.py [--seed 7]"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from limbseg.synth.cohort import synthesize_subject  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "img" / "virtual-cohort"
COLORS = ["#e69f00", "#56b4e9", "#009e73", "#cc79a7"]


def _levels(labels: np.ndarray) -> dict[str, int]:
    z = {v: np.flatnonzero((labels == v).any((0, 1))) for v in (1, 2, 4)}
    fem, tib = z[2], z[1]
    return {"hip": int(z[4][len(z[4]) // 4]), "thigh": int(fem[len(fem) // 2]),
            "knee": int((fem.min() + tib.max()) // 2), "calf": int(tib[len(tib) * 2 // 3])}


def figure(contrast: str, seed: int, pixel: float) -> Path:
    s = synthesize_subject(seed, contrast=contrast, pixel=pixel)
    img, lab = s.image.array.astype(np.float32), s.labels.array
    vmax = np.percentile(img[lab > 0], 99.5) * 1.3
    fig, axes = plt.subplots(1, 5, figsize=(20, 4.6), gridspec_kw={"width_ratios": [1, 1, 1, 1, 0.8]})
    for ax, (name, k) in zip(axes, _levels(lab).items(), strict=False):
        ax.imshow(img[:, :, k].T, cmap="gray", vmin=0, vmax=vmax)
        for v, c in zip((1, 2, 3, 4), COLORS, strict=True):
            if (lab[:, :, k] == v).any():
                ax.contour((lab[:, :, k] == v).T, levels=[0.5], colors=c, linewidths=0.7)
        ax.set_title(f"{name} (slice {k})")
        ax.axis("off")
    j = int(np.argmax((lab == 2).sum((0, 2))))
    sp = s.image.spacing
    axes[4].imshow(img[:, j, ::-1].T, cmap="gray", vmin=0, vmax=vmax, aspect=sp[2] / sp[0])
    axes[4].contour((lab[:, j, ::-1] > 0).T, levels=[0.5], colors="r", linewidths=0.5)
    axes[4].set_title("coronal (reformatted)")
    axes[4].axis("off")
    fig.suptitle(f"{contrast}: {s.info['case']}, age {s.info['age']:.1f} y; "
                 "images are in the radiological convention (patient left on the image right)")
    fig.tight_layout()
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{contrast}.png"
    fig.savefig(path, dpi=70)
    plt.close(fig)
    return path


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--pixel", type=float, default=0.9375)
    p.add_argument("--contrasts", default="water,fat,t1,pd,random", help="comma-separated")
    args = p.parse_args()
    for contrast in args.contrasts.split(","):
        print(figure(contrast, args.seed, args.pixel))


if __name__ == "__main__":
    main()
