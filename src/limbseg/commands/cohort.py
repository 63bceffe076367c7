"""``limbseg cohort INPUT_LIST_OR_FOLDER -o OUT_DIR [--workers N] [--scheduler ADDRESS]``: a whole cohort."""

from __future__ import annotations

import argparse
from pathlib import Path

from limbseg.cli import add_command
from limbseg.errors import LimbsegError


def register(subparsers: argparse._SubParsersAction) -> None:  # noqa: SLF001
    parser = add_command(
        subparsers, "cohort", run, "segment and measure a whole cohort, resumably, on one machine or a Dask cluster",
        description="Segment every scan of a manifest CSV (subject id, scan path, other columns such as age) or "
                    "of a folder of scans into OUT_DIR/<subject>/, then write OUT_DIR/cohort_statistics.csv, "
                    "failures.csv and cohort_summary.md with plots. Re-running skips the subjects that are "
                    "complete and redoes the rest. Exit code 0 when every subject is complete, 1 when some "
                    "failed (see failures.csv), 2 on an error. See docs/cohort.md.",
    )
    parser.add_argument("input", type=Path, metavar="INPUT_LIST_OR_FOLDER",
                        help="manifest CSV (columns subject, scan, ...) or a folder of scans")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT_DIR", help="cohort folder")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=1, metavar="N",
                       help="0 or 1: one scan after another in this process; N > 1: a local Dask cluster of "
                            "N processes sharing the cores")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="submit to a running Dask scheduler, e.g. tcp://host:8786 (workers need limbseg "
                            "and the same paths to the scans, model and OUT_DIR)")
    parser.add_argument("--model", type=Path, default=None, metavar="BUNDLE",
                        help="model bundle folder (default: the shipped model)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--tta", action="store_true", help="add left-right flip test-time augmentation")
    parser.add_argument("--no-postprocess", action="store_true", help="skip hole filling / small-part removal")
    parser.add_argument("--formats", nargs="+", default=["ply"], choices=["ply", "stl", "obj"],
                        help="mesh file formats")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from limbseg.cohort import cohort

    if args.workers < 0:
        raise LimbsegError(f"--workers must be 0 or more, not {args.workers}")
    with tqdm(total=0, unit="scan", desc="cohort", disable=None, leave=False) as bar:
        def progress(finished: int, total: int, message: str) -> None:
            bar.total = total
            bar.set_postfix_str(message[:40], refresh=False)
            bar.update(finished - bar.n)

        result = cohort(args.input, args.output, workers=args.workers, scheduler=args.scheduler,
                        model=args.model, device=args.device, tta=args.tta, postprocess=not args.no_postprocess,
                        formats=tuple(args.formats), progress=progress)
    print(f"{result.output_dir}: {len(result.subjects)} subjects, {len(result.done)} segmented now, "
          f"{len(result.skipped)} complete already, {len(result.failed)} failed in {result.seconds:.0f} s")
    if result.failed:
        print(f"failures: {result.output_dir / 'failures.csv'}")
    print(f"tables: {result.output_dir / 'cohort_statistics.csv'}, {result.output_dir / 'cohort_summary.md'}")
    return 1 if result.failed else 0
