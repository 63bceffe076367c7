"""Held-out accuracy of a model bundle on virtual cohorts, through the whole ``limbseg segment`` pipeline.

    python benchmarks/bench_accuracy.py --cohort water=DIR [--cohort fat=DIR ...] [--model BUNDLE] [--out OUT]

Each cohort is a ``limbseg synth`` output folder (made with seeds that training never saw). Every
subject's DICOM series is segmented exactly as a user would (`limbseg.pipeline.segment`: automatic ROI,
inference, post-processing, native grid, all outputs) and compared with its exact labels
(`limbseg.evaluation`): DSC, volume error, HD95, ASSD per bone. Per cohort: mean ± SD per bone, the
seconds per subject, and a box plot; the table goes to stdout and to ``docs/benchmarks.md``
(section ``bench_accuracy``) and the rows to ``OUT/<cohort>/metrics.csv``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import record  # noqa: E402

STRUCTURES = ("tibia", "femur", "fibula", "pelvis", "mean")


def evaluate_cohort(name: str, cohort: Path, out: Path, model: str | None) -> tuple[dict, list[float]]:
    """Segment every subject of a synth cohort and evaluate; returns (summary, seconds per subject)."""
    from limbseg.evaluation import evaluate_paths, write_report
    from limbseg.pipeline import load_model, segment

    bundle = load_model(model)
    seconds = []
    for subject in sorted((cohort / "subjects").iterdir()):
        t = time.perf_counter()
        segment(subject / "dicom", out / name / "pred" / subject.name, model=bundle)
        seconds.append(time.perf_counter() - t)
        print(f"[{name}] {subject.name}: {seconds[-1]:.1f} s", flush=True)
    rows = evaluate_paths(out / name / "pred", cohort / "labelsTr")
    summary = write_report(rows, out / name, title=f"Held-out virtual subjects, {name} contrast")
    return summary, seconds


def table(results: dict[str, tuple[dict, list[float]]]) -> str:
    """Markdown: one row per cohort, DSC mean ± SD per bone, volume error and HD95 of the mean, time."""
    lines = ["| contrast | n | tibia | femur | fibula | pelvis | mean DSC | vol. error cm³ | HD95 mm | s/subject |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, (summary, seconds) in results.items():
        s = summary["structures"]
        dsc = [f"{s[b]['dice']['mean']:.3f} ± {s[b]['dice']['sd']:.3f}" for b in STRUCTURES]
        lines.append(f"| {name} | {summary['n_cases']} | " + " | ".join(dsc)
                     + f" | {s['mean']['volume_error_cm3']['mean']:.2f} | {s['mean']['hd95_mm']['mean']:.1f}"
                     + f" | {statistics.median(seconds):.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cohort", action="append", required=True, metavar="NAME=DIR")
    parser.add_argument("--model", default=None, help="bundle (default: the shipped model)")
    parser.add_argument("--out", type=Path, default=Path("runs/accuracy"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    results = {}
    for item in args.cohort:
        name, _, folder = item.partition("=")
        results[name] = evaluate_cohort(name, Path(folder), args.out, args.model)
    body = (table(results) + "\n\nDSC mean ± SD over subjects; volume error = voxel volume × |N_pred − N_true|"
            " (the study's formula), averaged over bones; s/subject = median wall time of the whole"
            " `segment` (read DICOM, ROI, inference, post-processing, every output file).")
    record("bench_accuracy", "Held-out accuracy of the shipped model (virtual cohorts)", body)


if __name__ == "__main__":
    main()
