"""``limbseg prepare MANIFEST.csv -o DATASET_DIR``: import a labelled study as an nnU-Net v2 raw dataset."""

from __future__ import annotations

import argparse

from limbseg.cli import add_command


def register(subparsers: argparse._SubParsersAction) -> None:  # noqa: SLF001
    parser = add_command(
        subparsers, "prepare", run,
        "import scans with per-structure masks or meshes as a training dataset (nnU-Net v2 layout)",
        description="Import scans with per-structure masks or meshes as a training dataset (nnU-Net v2 raw "
        "layout). Manifest columns: id, scan, then one column per structure (a mask image, or mesh paths "
        "separated by ';'). Exit code 0: all cases imported; 1: some cases refused (see the summary and "
        "prepare_report.json); 2: nothing imported.",
    )
    parser.add_argument("manifest", help="CSV manifest; relative paths resolve against its folder")
    parser.add_argument("-o", "--output", required=True, help="dataset folder (created; finished cases are skipped)")
    parser.add_argument("--labels", default=None, metavar="JSON", help="dataset.json or labels.json with the label scheme")
    parser.add_argument("--priority", default=None, metavar="A,B,...",
                        help="overlap rule: the first listed structure wins (default: overlaps become background)")
    parser.add_argument("--space", choices=["LPS", "RAS"], default="LPS", help="coordinate convention of mesh files")
    parser.add_argument("--overwrite", action="store_true", help="rebuild cases that are already in the dataset")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    from limbseg.data.labelmaps import load_scheme, parse_priority
    from limbseg.data.prepare import prepare_dataset

    result = prepare_dataset(
        args.manifest, args.output, load_scheme(args.labels), priority=parse_priority(args.priority),
        space=args.space, progress=not args.no_progress, overwrite=args.overwrite,
    )
    for case_id in result.imported:
        for warning in result.cases[case_id]["warnings"]:
            print(f"warning: {case_id}: {warning}")
    for r in result.refused:
        print(f"refused: {r['id']} ({r['category']}): {r['reason']}")
    print(f"imported {len(result.imported)}, skipped {len(result.skipped)} (already done), "
          f"refused {len(result.refused)}; the dataset holds {result.n_cases} cases in {args.output}")
    return 1 if result.refused else 0
