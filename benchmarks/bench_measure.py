"""Accuracy of ``limbseg measure`` on the virtual cohort's truth label maps against its truth, and on the
labels ``limbseg segment`` predicts.

Usage::

    python benchmarks/bench_measure.py [-n 20] [--seed 0] [--pixel 0.9375] [--slice-thickness 3]
    python benchmarks/bench_measure.py --cohort DIR [--pred PRED_DIR]   # an existing `limbseg synth` output
    python benchmarks/bench_measure.py --cohort DIR -n 5 --segment [--model BUNDLE] [--segment-dir OUT]

Default: for seeds ``seed .. seed + n - 1`` the subject's truth label map is rebuilt on its scan
grid without simulating the image (:func:`limbseg.synth.truth.truth_labels`, the same voxels as
``limbseg synth`` writes) and measured; the truth comes from the shape model's landmark vertices
(:func:`limbseg.synth.truth.skeleton_truth`). ``--cohort`` reads ``labelsTr/<case>.nii.gz`` and
``subjects/<case>/truth/measurements.json`` instead (a cohort written before truth files existed: the
truth is rebuilt from the seed in the case name, ``virtual_<seed>``); ``-n`` then takes the first n cases.
``--pred`` also measures predicted label maps (``PRED/<case>.nii.gz`` or ``PRED/<case>/labels.nii.gz``)
against the same truth.

``--segment`` segments each subject's scan with the shipped model (or ``--model``) through
:func:`limbseg.pipeline.segment`, the API behind ``limbseg segment`` (the model is loaded once), and
takes the measurements that segment itself wrote (``measurements.json``, measured on its labels with
its sides); without ``--cohort`` the scans are simulated first (:func:`limbseg.synth.cohort.synthesize_subject`
at ``--pixel`` / ``--slice-thickness``). The segment outputs go to ``--segment-dir`` (default: a temporary
folder, removed).

Prints the median absolute error per measurement (both sides pooled) for each set of labels, the two
side by side, and writes them to docs/benchmarks.md (``--no-record`` to skip): section ``bench_measure``,
or ``bench_measure_segment`` with ``--segment``.
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


def _flagged(doc: dict) -> set[tuple[str, str]]:
    return {(r["side"], r["measurement"]) for r in doc["measurements"] if r.get("status") == "implausible"}


def _generated(args: argparse.Namespace):
    from limbseg.synth.truth import skeleton_truth, truth_labels

    for seed in range(args.seed, args.seed + (args.n or 20)):
        labels, sk = truth_labels(seed, pixel=args.pixel, slice_thickness=args.slice_thickness)
        yield f"virtual_{seed:05d}", sk.age, labels, skeleton_truth(sk).to_json()


def _seed_truth(case: str) -> dict:
    """Truth of ``virtual_<seed>`` rebuilt from its seed (the skeleton is the first thing a subject draws)."""
    from limbseg.synth.pose import sample_skeleton
    from limbseg.synth.truth import skeleton_truth

    seed = int(case.rsplit("_", 1)[1])
    return skeleton_truth(sample_skeleton(np.random.default_rng([seed, 20240611])), case).to_json()


def _from_cohort(args: argparse.Namespace):
    from limbseg.io import read_image
    from limbseg.volume import LabelMap

    root = Path(args.cohort)
    cases = sorted(p.name.removesuffix(".nii.gz") for p in (root / "labelsTr").glob("*.nii.gz"))
    for case in cases[: args.n] if args.n else cases:
        truth_path = root / "subjects" / case / "truth" / "measurements.json"
        doc = json.loads(truth_path.read_text()) if truth_path.is_file() else _seed_truth(case)
        labels = LabelMap.from_volume(read_image(root / "labelsTr" / f"{case}.nii.gz"))
        yield case, doc["info"].get("age"), labels, doc


class Segmenter:
    """Segments scans with one loaded model through :func:`limbseg.pipeline.segment` and returns the
    measurements segment wrote (``measurements.json``) with the time it took."""

    def __init__(self, args: argparse.Namespace):
        import tempfile

        from limbseg.pipeline import load_model

        self.model = load_model(args.model)
        self.tmp = None if args.segment_dir else tempfile.TemporaryDirectory(prefix="bench_measure.")
        self.root = Path(args.segment_dir or self.tmp.name)  # type: ignore[union-attr]
        self.args = args
        self.seconds: list[float] = []

    def scan(self, case: str) -> Path:
        """The case's scan: the cohort's image, or the subject simulated now (``--pixel``, ``--slice-thickness``)."""
        if self.args.cohort:
            return Path(self.args.cohort) / "imagesTr" / f"{case}_0000.nii.gz"
        from limbseg.io import write_image
        from limbseg.synth.cohort import synthesize_subject

        subject = synthesize_subject(int(case.rsplit("_", 1)[1]), pixel=self.args.pixel,
                                     slice_thickness=self.args.slice_thickness)
        path = self.root / "scans" / f"{case}_0000.nii.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_image(subject.image, path)
        return path

    def measure(self, case: str) -> dict:
        from limbseg.pipeline import segment

        scan = self.scan(case)
        out = self.root / case
        t0 = time.perf_counter()
        segment(scan, out, model=self.model)
        self.seconds.append(time.perf_counter() - t0)
        if (out / "measurements.json").is_file():
            return json.loads((out / "measurements.json").read_text())
        from limbseg.io import read_image
        from limbseg.volume import LabelMap

        return measure_labels(LabelMap.from_volume(read_image(out / "labels.nii.gz")), case=case).to_json()


def _pred_labels(pred: Path, case: str):
    from limbseg.io import read_image
    from limbseg.volume import LabelMap

    for p in (pred / f"{case}.nii.gz", pred / case / "labels.nii.gz"):
        if p.is_file():
            return LabelMap.from_volume(read_image(p))
    return None


def _median(values: list[float]) -> str:
    return f"{np.median(np.abs(values)):.2f}" if values else "-"


def _table(errors: dict[str, list[float]], missing: dict[str, int], flagged: dict[str, list[float]]) -> str:
    """Errors of every value; ``flagged``: the errors of the values marked implausible (their count, their
    median, and the median of the values left unflagged show whether the flag catches the bad ones)."""
    lines = ["| measurement | unit | n | median abs error | 90th pct | max | incomplete | implausible: n, median abs "
             "error | not flagged: median abs error | target |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for m in MEASUREMENTS:
        e = np.abs(np.asarray(errors.get(m.name, []), dtype=float))
        f = flagged.get(m.name, [])
        if len(e) == 0:
            lines.append(f"| {m.name} | {m.unit} | 0 | - | - | - | {missing.get(m.name, 0)} | 0 | - | "
                         f"{TARGET[m.unit]} |")
            continue
        med = float(np.median(e))
        ok = "met" if med <= TARGET[m.unit] else "NOT met"
        rest = list(np.abs(errors[m.name]))
        for x in f:
            rest.remove(abs(x))
        lines.append(f"| {m.name} | {m.unit} | {len(e)} | {med:.2f} | {np.percentile(e, 90):.2f} | {e.max():.2f} "
                     f"| {missing.get(m.name, 0)} | {len(f)}, {_median(f)} | {_median(rest)} "
                     f"| <= {TARGET[m.unit]} ({ok}) |")
    return "\n".join(lines)


def _side_by_side(sets: dict) -> str:
    names = list(sets)
    head = "| measurement | unit | " + " | ".join(f"{n}: median abs error (n) | 90th pct | incomplete" for n in names) + " |"
    lines = [head, "|---|---|" + "---|---|---|" * len(names)]
    for m in MEASUREMENTS:
        cells = []
        for n in names:
            errors, _, missing, _ = sets[n]
            e = np.abs(np.asarray(errors.get(m.name, []), dtype=float))
            cells += ([f"{np.median(e):.2f} ({len(e)})", f"{np.percentile(e, 90):.2f}"] if len(e) else ["- (0)", "-"])
            cells.append(str(missing.get(m.name, 0)))
        lines.append(f"| {m.name} | {m.unit} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _compare(res_doc: dict, truth: dict, errors: dict, diffs: dict, missing: dict, flagged: dict) -> None:
    got, want, marked = _values(res_doc), _values(truth), _flagged(res_doc)
    for m in MEASUREMENTS:
        for side in ("left", "right", "right-left"):
            g, t = got.get((side, m.name)), want.get((side, m.name))
            if t is None:
                continue
            if g is None:
                missing[m.name] = missing.get(m.name, 0) + (side != "right-left")
                continue
            (diffs if side == "right-left" else errors).setdefault(m.name, []).append(g - t)
            if side != "right-left" and (side, m.name) in marked:
                flagged.setdefault(m.name, []).append(g - t)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("-n", type=int, default=None, help="subjects (default: 20 generated, or every cohort case)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pixel", type=float, default=0.9375)
    p.add_argument("--slice-thickness", type=float, default=3.0)
    p.add_argument("--cohort", default=None, help="an existing `limbseg synth` folder")
    p.add_argument("--pred", type=Path, default=None, help="predicted label maps of the cohort's cases")
    p.add_argument("--segment", action="store_true",
                   help="also segment each scan with the shipped model (or --model) and measure segment's labels")
    p.add_argument("--model", default=None, help="model bundle for --segment (default: the shipped model)")
    p.add_argument("--segment-dir", type=Path, default=None, help="keep segment's outputs here (default: temporary)")
    p.add_argument("--no-record", action="store_true")
    args = p.parse_args()
    sets: dict[str, tuple[dict, dict, dict, dict]] = {"truth labels": ({}, {}, {}, {})}
    if args.pred:
        sets["predicted labels"] = ({}, {}, {}, {})
    segmenter = Segmenter(args) if args.segment else None
    if segmenter:
        sets["segment's labels"] = ({}, {}, {}, {})
    ages, seconds = [], []
    for case, age, labels, truth in (_from_cohort(args) if args.cohort else _generated(args)):
        t0 = time.perf_counter()
        _compare(measure_labels(labels, case=case).to_json(), truth, *sets["truth labels"])
        seconds.append(time.perf_counter() - t0)
        ages.append(age)
        if args.pred and (pred := _pred_labels(args.pred, case)) is not None:
            _compare(measure_labels(pred, case=case).to_json(), truth, *sets["predicted labels"])
        extra = ""
        if segmenter:
            _compare(segmenter.measure(case), truth, *sets["segment's labels"])
            extra = f", segment {segmenter.seconds[-1]:.0f} s"
        print(f"{case}: age {age if age is None else round(float(age), 1)}, {seconds[-1]:.1f} s{extra}", flush=True)
    valid = [a for a in ages if a is not None]
    grid = ("the cohort's scan grids" if args.cohort else
            f"grid {args.pixel} x {args.pixel} x {args.slice_thickness} mm axial")
    body = [f"n = {len(ages)} virtual subjects (ages {min(valid):.1f}-{max(valid):.1f}), both sides pooled "
            f"({2 * len(ages)} legs); {grid}; measure took median {statistics.median(seconds):.1f} s per subject "
            "on this machine" + (f", segment (shipped model, CPU) median {statistics.median(segmenter.seconds):.0f} s"
                                 if segmenter else "") + ".\n"]
    if len(sets) > 1:
        body.append("Side by side (measure minus truth, absolute):\n\n" + _side_by_side(sets) + "\n")
    for name, (errors, diffs, missing, flagged) in sets.items():
        body.append(f"**{name}** (measure minus truth):\n\n{_table(errors, missing, flagged)}\n")
        body.append(f"Left-right differences ({name}), median absolute error: " + ", ".join(
            f"{k} {np.median(np.abs(v)):.2f}" for k, v in diffs.items()) + "\n")
    text = "\n".join(body)
    if args.no_record:
        print(text)
    elif segmenter:
        record("bench_measure_segment", "Morphometrics on segment's own labels against the virtual cohort's truth "
               "(benchmarks/bench_measure.py --segment)", text)
    else:
        record("bench_measure", "Morphometrics against the virtual cohort's truth (benchmarks/bench_measure.py)",
               text)


if __name__ == "__main__":
    main()
