"""Throughput of ``limbseg cohort`` (issue 16): scans per hour with 1 and 2 workers, and memory per worker.

    python benchmarks/bench_cohort.py --synth DIR [--workers 1 2] [--repeat 1] [--model BUNDLE] [--device cpu]

``DIR`` is a virtual cohort made by ``limbseg synth -n 4 -o DIR --pixel 1.875 --jobs 1`` (its DICOM series
and ages become the manifest). Each configuration runs :func:`limbseg.cohort` on every subject into a fresh
folder, in its own process (so imports, model loading and, for N > 1, the local Dask cluster's start are
counted as a user would pay them); the configurations alternate ``--repeat`` times and medians are reported.
``--workers 1`` runs in-process (torch on all cores), N > 1 on a local Dask cluster (torch on cores // N
each). Memory per worker: the peak resident memory of each worker process (``getrusage``, the largest of
the process and the output writers it forks). Figures go to stdout and to ``docs/benchmarks.md``
(section ``bench_cohort``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_manifest(synth: Path, path: Path) -> int:
    """A manifest (subject, scan, age, sex) of a ``limbseg synth`` folder; returns the number of subjects."""
    subjects = json.loads((synth / "dataset.json").read_text())["limbseg"]["subjects"]
    lines = ["subject,scan,age,sex"] + [
        f"{s['case']},{synth / 'subjects' / s['case'] / 'dicom'},{s['age']},{s.get('sex', '')}" for s in subjects]
    path.write_text("\n".join(lines) + "\n")
    return len(subjects)


def child(args: argparse.Namespace) -> None:
    """One configuration: run the cohort and print what it did as JSON."""
    import limbseg

    result = limbseg.cohort(args.child_manifest, args.child_output, workers=args.child_workers, model=args.model,
                            device=args.device)
    print(json.dumps({"seconds": result.seconds, "done": len(result.done), "failed": result.failed,
                      "outcomes": result.outcomes}))


def run_once(manifest: Path, workers: int, args: argparse.Namespace, workdir: Path) -> dict:
    out = Path(tempfile.mkdtemp(prefix=f"cohort-w{workers}-", dir=workdir))
    cmd = [sys.executable, __file__, "--child-manifest", str(manifest), "--child-output", str(out),
           "--child-workers", str(workers), "--device", args.device] + (["--model", args.model] if args.model else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"the {workers}-worker run failed:\n{proc.stderr[-3000:]}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    if report["failed"]:
        raise SystemExit(f"subjects failed: {report['failed']}")
    return report


def summarise(runs: list[dict], n: int) -> dict:
    walls = [r["seconds"] for r in runs]
    per_scan = [o["seconds"] for r in runs for o in r["outcomes"]]
    peaks: dict[str, float] = {}
    for r in runs:
        for o in r["outcomes"]:
            peaks[o["worker"]] = max(peaks.get(o["worker"], 0.0), o["peak_memory_mb"])
    return {"wall_s": statistics.median(walls), "scans_per_hour": 3600.0 * n / statistics.median(walls),
            "scan_s": statistics.median(per_scan), "worker_peak_mb": statistics.median(peaks.values()),
            "worker_peak_max_mb": max(peaks.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synth", type=Path, help="a `limbseg synth` output folder")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--model", default=None, help="model bundle (default: the shipped model)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-record", action="store_true", help="print only, do not write docs/benchmarks.md")
    parser.add_argument("--child-manifest", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-output", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-workers", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_manifest:
        return child(args)
    if args.synth is None:
        parser.error("--synth DIR is required (make one with `limbseg synth -n 4 -o DIR --pixel 1.875 --jobs 1`)")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    with tempfile.TemporaryDirectory(prefix="bench-cohort-") as tmp:
        workdir = Path(tmp)
        n = write_manifest(args.synth, workdir / "manifest.csv")
        runs: dict[int, list[dict]] = {w: [] for w in args.workers}
        for _ in range(args.repeat):
            for w in args.workers:
                runs[w].append(run_once(workdir / "manifest.csv", w, args, workdir))
                print(f"{w} worker(s): {runs[w][-1]['seconds']:.1f} s for {n} scans", file=sys.stderr)
    figures = {w: summarise(r, n) for w, r in runs.items()}
    base = figures[args.workers[0]]["scans_per_hour"]
    rows = ["| workers | torch threads each | wall time (s) | scans / hour | vs first | time per scan (s) "
            "| peak memory per worker (MB, median / max) |", "|---|---|---|---|---|---|---|"]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    for w, f in figures.items():
        threads = "all" if w <= 1 else str(max(1, cores // w))
        rows.append(f"| {w} | {threads} | {f['wall_s']:.1f} | {f['scans_per_hour']:.0f} | "
                    f"{f['scans_per_hour'] / base:.2f}x | {f['scan_s']:.1f} | "
                    f"{f['worker_peak_mb']:.0f} / {f['worker_peak_max_mb']:.0f} |")
    body = (f"{n} virtual subjects (`limbseg synth -n {n} --pixel 1.875`: DICOM, 256 x 256 x ~200-310 slices, "
            f"1.875 mm x 3 mm), shipped model, device `{args.device}`, medians of {args.repeat} run(s) per "
            f"configuration, alternating. Wall time is the whole `limbseg.cohort()` call in a fresh process: "
            f"imports, model loading (once per worker), the local Dask cluster's start for N > 1, every subject "
            f"and the cohort tables. Time per scan is one subject on its worker. Load average when started: "
            f"{load:.1f} on {cores} cores.\n\n" + "\n".join(rows))
    if args.no_record:
        print(body)
        return
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from record import record

    record("bench_cohort", "Cohort throughput (`limbseg cohort`, 1 vs 2 workers)", body)


if __name__ == "__main__":
    main()
