"""``limbseg evaluate --pred PRED --ref REF``: DSC, volume error, HD95 and ASSD per case and structure."""

from __future__ import annotations

import argparse

from limbseg.cli import add_command


def register(subparsers: argparse._SubParsersAction) -> None:  # noqa: SLF001
    p = add_command(subparsers, "evaluate", run, "compare predicted label maps with reference ones",
                    description="Files or folders, matched by case id (file name without extension and _0000). "
                                "Writes metrics.csv, summary.json, summary.md and boxplot.png.")
    p.add_argument("--pred", required=True, help="predicted label map, or a folder of them")
    p.add_argument("--ref", required=True, help="reference label map, or a folder of them")
    p.add_argument("-o", "--output", default=None, help="report folder (default: print the table only)")
    p.add_argument("--labels", default=None, help="dataset.json or labels.json naming the label values")
    p.add_argument("--no-surface", action="store_true", help="skip HD95/ASSD (faster)")


def _scheme(path: str | None):
    if path is None:
        return None
    import json

    from limbseg.errors import LimbsegError
    from limbseg.labels import LabelScheme

    try:
        data = json.loads(open(path, encoding="utf-8").read())
        return LabelScheme.from_json(data.get("labels", data))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LimbsegError(f"cannot read labels ({exc})", path) from exc


def run(args: argparse.Namespace) -> int:
    from limbseg.evaluation import evaluate_paths, summarise, summary_markdown, write_report

    rows = evaluate_paths(args.pred, args.ref, scheme=_scheme(args.labels), surface=not args.no_surface)
    if args.output:
        summary = write_report(rows, args.output)
        print(f"report written to {args.output}")
    else:
        summary = summarise(rows)
    print(summary_markdown(summary))
    return 0
