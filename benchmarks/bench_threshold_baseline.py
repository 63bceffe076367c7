"""An intensity-threshold + connected-component baseline on the default contrast.

For each bone the threshold window (low, high) is chosen on the subject itself to maximise
the bone's Dice (an oracle, so the figure is an upper bound for such a method); the largest
connected components (two per bone, one per side) are kept.
Usage: python benchmarks/bench_threshold_baseline.py [-n 2] [--seed 100]
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import ndimage

from limbseg.labels import DEFAULT_SCHEME
from limbseg.synth.cohort import synthesize_subject


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return float(2 * (a & b).sum() / s) if s else 1.0


def best_threshold_dice(image: np.ndarray, truth: np.ndarray) -> float:
    vals = image[truth]
    best = 0.0
    for lo_q in (1, 5, 10, 25):
        for hi_q in (75, 90, 95, 99):
            lo, hi = np.percentile(vals, lo_q), np.percentile(vals, hi_q)
            cand = (image >= lo) & (image <= hi)
            lab, n = ndimage.label(cand)
            if n == 0:
                continue
            sizes = np.bincount(lab.ravel())[1:]
            keep = np.argsort(sizes)[-2:] + 1
            best = max(best, dice(np.isin(lab, keep), truth))
    return best


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("-n", type=int, default=2)
    p.add_argument("--seed", type=int, default=100)
    args = p.parse_args()
    scores: dict[str, list[float]] = {b: [] for b in DEFAULT_SCHEME.names}
    for i in range(args.n):
        s = synthesize_subject(args.seed + i, pixel=1.875, slice_thickness=3.0)
        img = s.image.array.astype(np.float32)
        for b in DEFAULT_SCHEME.names:
            scores[b].append(best_threshold_dice(img, s.labels.mask(b)))
    per = {b: float(np.mean(v)) for b, v in scores.items()}
    print("threshold + connected components (oracle window), water Dixon, 1.875 mm pixels:")
    print(", ".join(f"{b} {v:.2f}" for b, v in per.items()) + f"; mean {np.mean(list(per.values())):.2f}")


if __name__ == "__main__":
    main()
