"""``limbseg measure LABELS... -o OUT_DIR``: bone lengths, leg-length difference and torsion angles."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from limbseg.cli import add_command
from limbseg.errors import LimbsegError


def register(subparsers: argparse._SubParsersAction) -> None:  # noqa: SLF001
    parser = add_command(
        subparsers, "measure", run, "measure bone lengths and angles from label maps",
        description="Femur, tibia, fibula and leg lengths, left-right differences, femoral anteversion, "
                    "neck-shaft angle, mechanical femorotibial angle and tibial torsion, with landmarks "
                    "(docs/measurements.md). One label map: files go straight into OUT_DIR. Several: into "
                    "OUT_DIR/<case>/ each, plus OUT_DIR/cohort_measurements.csv.",
    )
    parser.add_argument("labels", nargs="+", type=Path, metavar="LABELS",
                        help="label map (NIfTI/NRRD; 1 tibia, 2 femur, 3 fibula, 4 pelvis)")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT_DIR", help="output folder")
    parser.add_argument("--scan", type=Path, default=None, metavar="SCAN",
                        help="the scan the label map belongs to (checked to share its grid; one label map only)")
    parser.add_argument("--midline-x", type=float, default=None, metavar="MM",
                        help="RAS x of the body midline (default: estimated from the bones)")
    parser.add_argument("--no-qc", action="store_true", help="skip the QC picture")


def case_name(path: Path) -> str:
    name = path.name
    for ext in (".nii.gz", ".nii", ".seg.nrrd", ".nrrd", ".nhdr", ".mha", ".mhd"):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
            break
    return name.removesuffix("_0000") or "labels"


def _read(path: Path, scan: Path | None):
    from limbseg.io import read_image
    from limbseg.volume import LabelMap

    volume = read_image(path)
    try:
        labels = LabelMap.from_volume(volume)
    except ValueError as exc:
        raise LimbsegError(f"not a label map ({exc})", path) from exc
    if int(labels.array.max(initial=0)) > max(labels.scheme.values):
        raise LimbsegError(f"label values above {max(labels.scheme.values)}: not a limbseg label map", path)
    if scan is not None and not read_image(scan).same_grid(labels, tol_mm=1e-2):
        raise LimbsegError(f"the label map {path.name} is not on the scan's grid", scan)
    return labels


def _move_into(src: Path, dst: Path) -> None:
    """Move every file under ``src`` to the same place under ``dst`` (folders are merged, files replaced)."""
    for item in sorted(src.iterdir()):
        target = dst / item.name
        if item.is_dir():
            target.mkdir(exist_ok=True)
            _move_into(item, target)
        else:
            os.replace(item, target)


def run(args: argparse.Namespace) -> int:
    from limbseg.measure import measure_labels, write_cohort, write_measurements

    if args.scan is not None and len(args.labels) > 1:
        raise LimbsegError("--scan needs exactly one label map")
    names: list[str] = []
    for p in args.labels:
        base, n = case_name(p), 2
        name = base
        while name in names:
            name, n = f"{base}_{n}", n + 1
        names.append(name)
    results = [measure_labels(_read(p, args.scan), case=name, midline_x=args.midline_x)
               for p, name in zip(args.labels, names, strict=True)]
    out: Path = args.output
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".measure.", suffix=".partial", dir=out))
    try:  # everything is written into a temporary folder first, then moved into place
        for res in results:
            write_measurements(res, tmp / res.case if len(results) > 1 else tmp, qc=not args.no_qc)
        if len(results) > 1:
            write_cohort(results, tmp / "cohort_measurements.csv")
        _move_into(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for res in results:
        done = [r for r in res.rows if r["side"] != "right-left"]
        ok = sum(r["status"] != "incomplete" for r in done)
        flagged = sum(r["status"] == "implausible" for r in done)
        note = f", {flagged} implausible (check the segmentation)" if flagged else ""
        print(f"{res.case}: {ok} of {len(done)} measurements complete{note} -> {out}")
    return 0
