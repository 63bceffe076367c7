"""``limbseg demo [-o DIR] [--seed S]``: synthesise a virtual child, segment it, score it against its truth.

The whole job in one command: one virtual subject (:mod:`limbseg.synth`) written as a DICOM
series, segmented by the shipped model (:func:`limbseg.pipeline.segment`), evaluated with
:func:`limbseg.evaluation.evaluate_pair` (DSC, volume error, HD95), and a table printed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from limbseg.cli import add_command


def register(subparsers: argparse._SubParsersAction) -> None:  # noqa: SLF001
    parser = add_command(subparsers, "demo", run,
                         "synthesise a virtual child, segment it with the shipped model and score it")
    parser.add_argument("-o", "--output", type=Path, default=Path("limbseg-demo"), metavar="DIR",
                        help="output folder (replaced if it exists)")
    parser.add_argument("--seed", type=int, default=0, help="which virtual child")
    parser.add_argument("--model", type=Path, default=None, metavar="BUNDLE",
                        help="model bundle (default: the shipped model)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--pixel", type=float, default=0.9375, metavar="MM",
                        help="in-plane pixel size of the virtual scan (the study's: 0.9375)")
    parser.add_argument("--slice-thickness", type=float, default=3.0, metavar="MM",
                        help="slice spacing of the virtual scan (the study's: 3)")


def run_demo(output: str | Path, *, seed: int = 0, model: Any = None, device: str = "auto",
             pixel: float = 0.9375, slice_thickness: float = 3.0) -> dict[str, Any]:
    """Synthesise, segment and evaluate one virtual subject; everything under ``output``.

    Layout: ``dicom/`` (the scan), ``truth/labels.nii.gz``, ``segmentation/`` (all segment
    outputs), ``evaluation.json``. Returns {"case", "rows", "timings", "output"}.
    """
    from limbseg.evaluation import evaluate_pair
    from limbseg.io import write_image
    from limbseg.io.atomic import atomic_dir
    from limbseg.pipeline import load_model, segment
    from limbseg.synth.cohort import synthesize_subject
    from limbseg.synth.dicom_writer import write_mr_series

    output = Path(output)
    bundle = load_model(model)  # fail before the slow part
    t0 = time.perf_counter()
    subject = synthesize_subject(seed, contrast="water", pixel=pixel, slice_thickness=slice_thickness)
    t_synth = time.perf_counter() - t0
    with atomic_dir(output) as tmp:
        write_mr_series(subject.image, tmp / "dicom", case=subject.case, seed=subject.seed,
                        description=subject.image.meta["description"], info=subject.info)
        write_image(subject.labels, tmp / "truth" / "labels.nii.gz")
        t1 = time.perf_counter()
        result = segment(tmp / "dicom", tmp / "segmentation", model=bundle, device=device)
        t_seg = time.perf_counter() - t1
        rows = evaluate_pair(result.labels, subject.labels, case=subject.case)
        timings = {"synthesis_s": t_synth, "segment_s": t_seg, **{f"segment_{k}_s": v for k, v in result.timings.items()}}
        doc = {"case": subject.case, "info": subject.info, "model": bundle.name, "rows": rows, "timings": timings}
        (tmp / "evaluation.json").write_text(json.dumps(doc, indent=2, default=float) + "\n", encoding="utf-8")
    return {"case": subject.case, "rows": rows, "timings": timings, "output": output}


def format_table(rows: list[dict[str, Any]]) -> str:
    """The per-bone table: DSC, volume error (cm³), HD95 (mm), and the mean."""
    lines = [f"{'bone':<8} {'DSC':>6} {'VE cm3':>8} {'HD95 mm':>8}"]
    for r in rows:
        lines.append(f"{r['structure']:<8} {r['dice']:>6.3f} {r['volume_error_cm3']:>8.2f} {r['hd95_mm']:>8.1f}")
    if rows:
        mean = sum(r["dice"] for r in rows) / len(rows)
        lines.append(f"{'mean':<8} {mean:>6.3f}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    out = run_demo(args.output, seed=args.seed, model=args.model, device=args.device, pixel=args.pixel,
                   slice_thickness=args.slice_thickness)
    t = out["timings"]
    print(f"virtual subject {out['case']} (seed {args.seed}) segmented and scored against its truth:\n")
    print(format_table(out["rows"]))
    print(f"\nsynthesis {t['synthesis_s']:.1f} s, segmentation {t['segment_s']:.1f} s "
          f"(inference {t.get('segment_inference_s', float('nan')):.1f} s)")
    seg = Path(out["output"]) / "segmentation"
    print(f"outputs:     {seg}  (labels.nii.gz, segmentation.seg.nrrd, segmentation.dcm, meshes/, statistics.csv)")
    print(f"QC pictures: {seg / 'qc'}")
    print(f"scan:        {Path(out['output']) / 'dicom'}")
    return 0
