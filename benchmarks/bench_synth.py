"""Seconds per virtual subject at the default geometry, and peak memory.

Usage: python benchmarks/bench_synth.py [-n 3] [--seed 0] [--contrast water]
Prints the median time of ``synthesize_subject`` (simulation only) and of writing the files.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time

from limbseg.synth.cohort import synthesize_subject, write_subject


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("-n", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--contrast", default="water")
    args = p.parse_args()
    sim, write, slices = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.n):
            t0 = time.perf_counter()
            s = synthesize_subject(args.seed + i, contrast=args.contrast)
            t1 = time.perf_counter()
            write_subject(s, tmp)
            t2 = time.perf_counter()
            sim.append(t1 - t0)
            write.append(t2 - t1)
            slices.append(s.image.shape[2])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"subjects: {args.n}, grid 512x512 x {slices} slices (0.9375 mm, 3 mm)")
    print(f"simulate: median {statistics.median(sim):.1f} s/subject; write: median {statistics.median(write):.1f} s")
    print(f"peak memory (max RSS): {peak:.0f} MiB")


if __name__ == "__main__":
    main()
