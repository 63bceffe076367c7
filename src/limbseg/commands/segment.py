"""``limbseg segment INPUT... -o OUT_DIR``: labels, meshes, statistics and QC for each scan."""

from __future__ import annotations

import argparse
from pathlib import Path

from limbseg.cli import add_command


def register(subparsers: argparse._SubParsersAction) -> None:  # noqa: SLF001
    parser = add_command(
        subparsers, "segment", run, "segment the lower-limb bones of one or more scans",
        description="Segment tibia, femur, fibula and pelvis. One input: outputs go straight into OUT_DIR. "
                    "Several inputs: into OUT_DIR/<input name>/ each, one after another.",
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT",
                        help="DICOM folder or .zip, NIfTI (.nii/.nii.gz) or NRRD")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT_DIR", help="output folder")
    parser.add_argument("--model", type=Path, default=None, metavar="BUNDLE",
                        help="model bundle folder (default: the shipped model)")
    parser.add_argument("--series", default=None, metavar="UID", help="DICOM series to read")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--tta", action="store_true", help="add left-right flip test-time augmentation")
    parser.add_argument("--no-postprocess", action="store_true", help="skip hole filling / small-part removal")
    parser.add_argument("--formats", nargs="+", default=["ply"], choices=["ply", "stl", "obj"],
                        help="mesh file formats")
    parser.add_argument("--roi-start", type=float, default=None, metavar="MM",
                        help="lower limit of the region along the superior axis (RAS z, mm)")
    parser.add_argument("--roi-end", type=float, default=None, metavar="MM",
                        help="upper limit of the region along the superior axis (RAS z, mm)")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from limbseg.pipeline import segment, segment_many

    options = dict(model=args.model, series_uid=args.series, device=args.device, tta=args.tta,
                   postprocess=not args.no_postprocess, formats=tuple(args.formats),
                   roi_start_mm=args.roi_start, roi_end_mm=args.roi_end)
    with tqdm(total=100, unit="%", bar_format="{l_bar}{bar}| {elapsed}", leave=False, disable=None) as bar:
        def progress(fraction: float, message: str) -> None:
            bar.set_description(message[:40])
            bar.update(max(0, round(100 * fraction) - bar.n))

        if len(args.inputs) == 1:
            results = [segment(args.inputs[0], args.output, progress=progress, **options)]
        else:
            results = segment_many(args.inputs, args.output, progress=progress, **options)
    for r in results:
        present = sorted({f"{row['structure']} {row['side']}" for row in r.statistics if row["voxels"]})
        print(f"{r.output_dir}: {len(r.files)} files in {r.timings['total']:.1f} s; "
              f"found: {', '.join(present) or 'nothing'}")
    return 0
