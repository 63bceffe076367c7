"""Accuracy of ``limbseg measure`` on the virtual cohort's truth label maps against its truth.

Usage::

    python benchmarks/bench_measure.py [-n 20] [--seed 0] [--pixel 0.9375] [--slice-thickness 3]
    python benchmarks/bench_measure.py --cohort DIR [--pred PRED_DIR]   # an existing `limbseg synth` output

Default: for seeds ``seed .. seed + n - 1`` the subject's truth label map is rebuilt on its scan
grid without simulating the image (:func:`limbseg.synth.truth.truth_labels`, the same voxels as
``limbseg synth`` writes) and measured; the truth comes from the shape model's landmark vertices
(:func:`limbseg.synth.truth.skeleton_truth`). ``--cohort`` reads ``labelsTr/<case>.nii.gz`` and
``subjects/<case>/truth/measurements.json`` instead; ``--pred`` also measures predicted label maps
(``PRED/<case>.nii.gz`` or ``PRED/<case>/labels.nii.gz``, e.g. ``limbseg segment`` outputs) against
the same truth. Prints the median absolute error per measurement (both sides pooled) and writes the
table to docs/benchmarks.md (``--no-record`` to skip).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import record  # noqa: E402

from limbseg.measure import measure_labels  # noqa: E402
from limbseg.measure.definitions import MEASUREMENTS  # noqa: E402

TARGET = {"mm": 2.0, "deg": 3.0}


def _values(doc: dict) -> dict[tuple[str, str], float | None]:
    return {(r["side"], r["measurement"]): r["value"] for r in doc["measurements"]}


def _generated(args: argparse.Namespace):
    from limbseg.synth.truth import skeleton_truth, truth_labels

    for seed in range(args.seed, args.seed + args.n):
        labels, sk = truth_labels(seed, pixel=args.pixel, slice_thickness=args.slice_thickness)
        yield f"virtual_{seed:05d}", sk.age, labels, skeleton_truth(sk).to_json()


def _from_cohort(args: argparse.Namespace):
    from limbseg.io import read_image
    from limbseg.volume import LabelMap

    for truth_path in sorted(Path(args.cohort).glob("subjects/*/truth/measurements.json")):
        case = truth_path.parents[1].name
        doc = json.loads(truth_path.read_text())
        labels = LabelMap.from_volume(read_image(Path(args.cohort) / "labelsTr" / f"{case}.nii.gz"))
        yield case, doc["info"].get("age"), labels, doc


def _pred_labels(pred: Path, case: str):
    from limbseg.io import read_image
    from limbseg.volume import LabelMap

    for p in (pred / f"{case}.nii.gz", pred / case / "labels.nii.gz"):
        if p.is_file():
            return LabelMap.from_volume(read_image(p))
    return None


def _table(errors: dict[str, list[float]], missing: dict[str, int]) -> str:
    lines = ["| measurement | unit | n | median abs error | 90th pct | max | incomplete | target |",
             "|---|---|---|---|---|---|---|---|"]
    for m in MEASUREMENTS:
        e = np.abs(np.asarray(errors.get(m.name, []), dtype=float))
        if len(e) == 0:
            lines.append(f"| {m.name} | {m.unit} | 0 | - | - | - | {missing.get(m.name, 0)} | {TARGET[m.unit]} |")
            continue
        med = float(np.median(e))
        ok = "met" if med <= TARGET[m.unit] else "NOT met"
        lines.append(f"| {m.name} | {m.unit} | {len(e)} | {med:.2f} | {np.percentile(e, 90):.2f} | {e.max():.2f} "
                     f"| {missing.get(m.name, 0)} | <= {TARGET[m.unit]} ({ok}) |")
    return "\n".join(lines)


def _compare(res_doc: dict, truth: dict, errors: dict, diffs: dict, missing: dict) -> None:
    got, want = _values(res_doc), _values(truth)
    for m in MEASUREMENTS:
        for side in ("left", "right", "right-left"):
            g, t = got.get((side, m.name)), want.get((side, m.name))
            if t is None:
                continue
            if g is None:
                missing[m.name] = missing.get(m.name, 0) + (side != "right-left")
                continue
            (diffs if side == "right-left" else errors).setdefault(m.name, []).append(g - t)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("-n", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pixel", type=float, default=0.9375)
    p.add_argument("--slice-thickness", type=float, default=3.0)
    p.add_argument("--cohort", default=None, help="an existing `limbseg synth` folder")
    p.add_argument("--pred", type=Path, default=None, help="predicted label maps of the cohort's cases")
    p.add_argument("--no-record", action="store_true")
    args = p.parse_args()
    sets = {"truth labels": ({}, {}, {})}
    if args.pred:
        sets["predicted labels"] = ({}, {}, {})
    ages, seconds = [], []
    for case, age, labels, truth in (_from_cohort(args) if args.cohort else _generated(args)):
        t0 = time.perf_counter()
        _compare(measure_labels(labels, case=case).to_json(), truth, *sets["truth labels"])
        seconds.append(time.perf_counter() - t0)
        ages.append(age)
        if args.pred and (pred := _pred_labels(args.pred, case)) is not None:
            _compare(measure_labels(pred, case=case).to_json(), truth, *sets["predicted labels"])
        print(f"{case}: age {age if age is None else round(float(age), 1)}, {seconds[-1]:.1f} s", flush=True)
    valid = [a for a in ages if a is not None]
    body = [f"{len(ages)} virtual subjects (ages {min(valid):.1f}-{max(valid):.1f}), both sides pooled; "
            f"grid {args.pixel} x {args.pixel} x {args.slice_thickness} mm axial; measure took "
            f"median {statistics.median(seconds):.1f} s per subject on this machine.\n"]
    for name, (errors, diffs, missing) in sets.items():
        body.append(f"**{name}** (measure minus truth):\n\n{_table(errors, missing)}\n")
        body.append(f"Left-right differences ({name}), median absolute error: " + ", ".join(
            f"{k} {np.median(np.abs(v)):.2f}" for k, v in diffs.items()) + "\n")
    text = "\n".join(body)
    if args.no_record:
        print(text)
    else:
        record("bench_measure", "Morphometrics against the virtual cohort's truth (benchmarks/bench_measure.py)",
               text)


if __name__ == "__main__":
    main()
