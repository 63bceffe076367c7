"""Held-out accuracy of a model bundle on virtual cohorts, through the whole ``limbseg segment`` pipeline.

    python benchmarks/bench_accuracy.py --cohort water=DIR [--cohort fat=DIR ...] [--model BUNDLE]
        [--baseline BUNDLE] [--out OUT]

Each cohort is a ``limbseg synth`` output folder (made with seeds that training never saw). Every
subject's DICOM series is segmented exactly as a user would (`limbseg.pipeline.segment`: automatic ROI,
inference, post-processing, native grid, all outputs) and compared with its exact labels
(`limbseg.evaluation`): DSC, volume error, HD95, ASSD per bone. Per cohort: mean ± SD per bone, the
seconds per subject, and a box plot; the mean DSC of children aged 5-8 and of those aged 9-16 (ages from the
cohort's dataset.json). With ``--baseline`` a second bundle (e.g. the previously shipped model) is evaluated on
the same subjects in the same run, and the per-bone differences are tabulated. The tables go to stdout and to
``docs/benchmarks.md`` (section ``bench_accuracy``) and the rows to ``OUT/<model>/<cohort>/metrics.csv``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import record  # noqa: E402

STRUCTURES = ("tibia", "femur", "fibula", "pelvis", "mean")


def evaluate_cohort(name: str, cohort: Path, out: Path, bundle) -> tuple[dict, list[float], list[dict]]:
    """Segment every subject of a synth cohort and evaluate; returns (summary, seconds per subject, rows)."""
    from limbseg.evaluation import evaluate_paths, write_report
    from limbseg.pipeline import segment

    seconds = []
    for subject in sorted((cohort / "subjects").iterdir()):
        t = time.perf_counter()
        segment(subject / "dicom", out / name / "pred" / subject.name, model=bundle)
        seconds.append(time.perf_counter() - t)
        print(f"[{name}] {subject.name}: {seconds[-1]:.1f} s", flush=True)
    rows = evaluate_paths(out / name / "pred", cohort / "labelsTr")
    summary = write_report(rows, out / name, title=f"Held-out virtual subjects, {name} contrast")
    return summary, seconds, rows


def ages(cohort: Path) -> dict[str, float]:
    """Case id -> age (years) from a synth cohort's dataset.json."""
    meta = json.loads((cohort / "dataset.json").read_text())
    return {s["case"]: float(s["age"]) for s in meta.get("limbseg", {}).get("subjects", [])}


def table(results: dict[str, tuple[dict, list[float], list[dict]]]) -> str:
    """Markdown: one row per cohort, DSC mean ± SD per bone, volume error and HD95 of the mean, time."""
    lines = ["| contrast | n | tibia | femur | fibula | pelvis | mean DSC | vol. error cm³ | HD95 mm | s/subject |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, (summary, seconds, _) in results.items():
        s = summary["structures"]
        dsc = [f"{s[b]['dice']['mean']:.3f} ± {s[b]['dice']['sd']:.3f}" for b in STRUCTURES]
        lines.append(f"| {name} | {summary['n_cases']} | " + " | ".join(dsc)
                     + f" | {s['mean']['volume_error_cm3']['mean']:.2f} | {s['mean']['hd95_mm']['mean']:.1f}"
                     + f" | {statistics.median(seconds):.1f} |")
    return "\n".join(lines)


def by_age(results: dict[str, tuple[dict, list[float], list[dict]]], age_of: dict[str, float]) -> str:
    """Markdown: mean DSC per bone of all cohorts' subjects aged 5-8 and 9-16."""
    lines = ["| ages | scans | tibia | femur | fibula | pelvis | mean DSC |", "|---|---|---|---|---|---|---|"]
    rows = [{**r, "scan": (name, r["case"])} for name, (_, _, rs) in results.items() for r in rs]
    for label, keep in (("5-8", lambda a: a < 9), ("9-16", lambda a: a >= 9)):
        sel = [r for r in rows if r["case"] in age_of and keep(age_of[r["case"]])]
        if not sel:
            continue
        per_bone = [statistics.fmean(float(r["dice"]) for r in sel if r["structure"] == b) for b in STRUCTURES[:4]]
        n = len({r["scan"] for r in sel})
        lines.append(f"| {label} | {n} | " + " | ".join(f"{v:.3f}" for v in per_bone)
                     + f" | {statistics.fmean(per_bone):.3f} |")
    return "\n".join(lines)


def difference(new: dict, old: dict) -> str:
    """Markdown: per cohort, the change in mean DSC per bone (new - baseline) on the same subjects."""
    lines = ["| contrast | tibia | femur | fibula | pelvis | mean DSC | HD95 mm |", "|---|---|---|---|---|---|---|"]
    for name in new:
        a, b = new[name][0]["structures"], old[name][0]["structures"]
        cells = [f"{a[s]['dice']['mean'] - b[s]['dice']['mean']:+.3f}" for s in STRUCTURES]
        lines.append(f"| {name} | " + " | ".join(cells)
                     + f" | {a['mean']['hd95_mm']['mean'] - b['mean']['hd95_mm']['mean']:+.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cohort", action="append", required=True, metavar="NAME=DIR")
    parser.add_argument("--model", default=None, help="bundle (default: the shipped model)")
    parser.add_argument("--baseline", default=None, help="a second bundle to evaluate on the same subjects")
    parser.add_argument("--out", type=Path, default=Path("runs/accuracy"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    from limbseg.pipeline import load_model

    torch.set_num_threads(args.threads)
    cohorts = {name: Path(folder) for name, _, folder in (c.partition("=") for c in args.cohort)}
    age_of = {case: age for folder in cohorts.values() for case, age in ages(folder).items()}
    models = {"model": args.model} | ({"baseline": args.baseline} if args.baseline else {})
    results: dict[str, dict] = {}
    for key, path in models.items():
        bundle = load_model(path)
        results[key] = {name: evaluate_cohort(name, folder, args.out / key, bundle) for name, folder in cohorts.items()}
    model_name = load_model(args.model).name if args.model else "the shipped model"
    body = f"Model: `{args.model or 'models/limbseg-default'}` ({model_name}).\n\n" + table(results["model"])
    body += "\n\nBy age (all contrasts together):\n\n" + by_age(results["model"], age_of)
    if args.baseline:
        body += (f"\n\nBaseline on the same subjects, same run: `{args.baseline}`.\n\n" + table(results["baseline"])
                 + "\n\n" + by_age(results["baseline"], age_of)
                 + "\n\nChange (model − baseline):\n\n" + difference(results["model"], results["baseline"]))
    body += ("\n\nDSC mean ± SD over subjects; volume error = voxel volume × |N_pred − N_true|"
             " (the study's formula), averaged over bones; s/subject = median wall time of the whole"
             " `segment` (read DICOM, ROI, inference, post-processing, every output file).")
    print(body)
    record("bench_accuracy", "Held-out accuracy (virtual cohorts)", body)


if __name__ == "__main__":
    main()
