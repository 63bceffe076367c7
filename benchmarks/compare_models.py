"""Issue #4's model comparisons on one dataset with the same subject split, tabulated in docs/experiments.md.

Every variant is ``limbseg.training.run.train`` with the same dataset, seed, folds/val-fraction and
budget; only the named option differs from the baseline (ResNet34 U-Net, random init, 2.5D input,
Dice + focal loss). ``folds.make_splits`` is deterministic on (cases, seed, folds, val_fraction), so every
run writes the same ``split.json``; this is checked before the table is written. Run from the repository::

    .venv/bin/python benchmarks/compare_models.py --dataset D --out runs/compare --variants resnet34,unet2d

Each variant trains into ``OUT/<variant>/`` (a complete run with the same options is reused, an
interrupted one resumes). The table (DSC per bone, mean ± SD over validation subjects, at volume level
on the native grid; training time; parameters) replaces the text between the markers in the doc, and
``docs/img/experiments.png`` shows per-bone bars and per-subject box plots.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shlex
import sys
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- experiments:begin -->", "<!-- experiments:end -->"
BASE: dict[str, Any] = {"arch": "unet", "encoder": "resnet34", "encoder_weights": "none", "channels": "2.5d",
                        "loss": "dicefocal"}
#: name -> (what it asks, options that differ from BASE)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "resnet34": ("baseline: ResNet34 U-Net, random init, 2.5D, Dice+focal", {}),
    "resnet50": ("encoder ResNet50", {"encoder": "resnet50"}),
    "vgg19": ("encoder VGG19", {"encoder": "vgg19"}),
    "mobilenet_v2": ("encoder MobileNetV2", {"encoder": "mobilenet_v2"}),
    "resnet34-imagenet": ("ImageNet-pretrained encoder", {"encoder_weights": "imagenet"}),
    "resnet34-imagenet-frozen": ("ImageNet encoder, frozen (the study)",
                                 {"encoder_weights": "imagenet", "freeze_encoder": True}),
    "resnet34-repeat": ("grey slice repeated x3 (the study) instead of 2.5D", {"channels": "repeat"}),
    "unet2d": ("plain 2D U-Net from scratch (MONAI BasicUNet)", {"arch": "unet2d"}),
    "loss-dice": ("Dice loss only", {"loss": "dice"}),
    "loss-ce": ("cross-entropy loss only", {"loss": "ce"}),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True, help="dataset folder (nnU-Net layout)")
    p.add_argument("--out", required=True, help="run root: one run folder per variant")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated; from {', '.join(VARIANTS)}")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--max-slices-per-epoch", type=int, default=256, help="0: all slices")
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--spacing", type=float, default=1.875, help="in-plane pixel in mm")
    p.add_argument("--folds", default=None, help="K or loo (default: one split by --val-fraction)")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--val-slice-stride", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--lr-schedule", choices=["study", "cosine"], default="study")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--doc", default=str(ROOT / "docs" / "experiments.md"))
    p.add_argument("--figure", default=str(ROOT / "docs" / "img" / "experiments.png"))
    return p.parse_args(argv)


def imagenet_available(encoder: str) -> bool:
    """Whether ImageNet weights for ``encoder`` are in the local cache (never downloads)."""
    from limbseg.models.factory import imagenet_cache_candidates

    return any(p.is_file() for p in imagenet_cache_candidates(encoder))


def make_options(name: str, args: argparse.Namespace):
    from limbseg.training.options import TrainOptions, parse_folds

    opts = {**BASE, **VARIANTS[name][1]}
    return TrainOptions(**opts, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                        lr_schedule=args.lr_schedule, folds=parse_folds(args.folds), val_fraction=args.val_fraction,
                        image_size=args.image_size, spacing_mm=args.spacing, device=args.device, seed=args.seed,
                        max_slices_per_epoch=args.max_slices_per_epoch or None,
                        val_slice_stride=args.val_slice_stride)


CASE_CACHE: dict[Any, Any] = {}  # prepared cases shared by the variants (each case is read once per recipe)


def run_variant(name: str, args: argparse.Namespace) -> Path:
    """Train one variant into OUT/name (reuse a finished run with the same options; resume a partial one)."""

    from limbseg.errors import LimbsegError
    from limbseg.training.run import train

    options = make_options(name, args)
    run_dir = Path(args.out) / name
    card = run_dir / "model" / "model.json"
    if card.is_file() and (run_dir / "summary.json").is_file():
        stored = json.loads(card.read_text())["training"]["options"]
        if {k: v for k, v in stored.items() if k != "resume"} == {k: v for k, v in options.to_json().items()
                                                                   if k != "resume"}:
            print(f"[{name}] reusing {run_dir}")
            return run_dir
        raise LimbsegError("a finished run with other options is there; remove it or choose another --out", run_dir)
    options.resume = (run_dir / "split.json").is_file()
    print(f"[{name}] training into {run_dir}" + (" (resuming)" if options.resume else ""), flush=True)
    train(args.dataset, run_dir, options, case_cache=CASE_CACHE)
    return run_dir


def read_run(run_dir: Path) -> dict[str, Any]:
    """Per-subject DSC per bone, training time (s, resume-aware) and parameter count of one run."""
    from limbseg.models.factory import build_model

    per_case: dict[str, dict[str, float]] = {}
    with open(run_dir / "metrics.csv", newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            per_case.setdefault(r["case"], {})[r["structure"]] = float(r["dice"])
    with open(run_dir / "history.csv", newline="", encoding="utf-8") as fh:
        last: dict[str, float] = {}
        for r in csv.DictReader(fh):
            last[r["fold"]] = float(r["time_s"])
    card = json.loads((run_dir / "model" / "model.json").read_text())
    model = build_model(card["architecture"])
    return {"per_case": per_case, "time_s": sum(last.values()), "params": sum(p.numel() for p in model.parameters()),
            "hardware": card["training"]["hardware"], "split": json.loads((run_dir / "split.json").read_text())}


def _sd(values: list[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _ms(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {_sd(values):.3f}"


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def table(results: dict[str, dict[str, Any] | str]) -> tuple[str, list[str]]:
    """Markdown table; a variant whose value is a string is listed with that reason instead of numbers."""
    done = [r for r in results.values() if isinstance(r, dict)]
    bones = list(dict.fromkeys(b for r in done for c in r["per_case"].values() for b in c))
    lines = ["| variant | what differs | " + " | ".join(bones) + " | mean | n | train time | parameters |",
             "|---" * (len(bones) + 6) + "|"]
    for name, r in results.items():
        if isinstance(r, str):
            lines.append(f"| {name} | {VARIANTS[name][0]} | " + " | ".join("—" for _ in bones) + f" | {r} | | | |")
            continue
        cases = list(r["per_case"].values())
        cells = [_ms([c[b] for c in cases if b in c]) for b in bones]
        mean = _ms([float(np.mean(list(c.values()))) for c in cases])
        lines.append(f"| {name} | {VARIANTS[name][0]} | " + " | ".join(cells) +
                     f" | {mean} | {len(cases)} | {_duration(r['time_s'])} | {r['params'] / 1e6:.2f} M |")
    return "\n".join(lines), bones


def plot(results: dict[str, Any], bones: list[str], path: Path) -> None:
    """Left: mean DSC per bone per variant (bars, SD whiskers); right: per-subject mean DSC (box per variant)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = {n: r for n, r in results.items() if isinstance(r, dict)}
    fig, (ax_bar, ax_box) = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    width = 0.8 / max(len(done), 1)
    for i, (name, r) in enumerate(done.items()):
        vals = [[c[b] for c in r["per_case"].values() if b in c] for b in bones]
        ax_bar.bar(np.arange(len(bones)) + (i - (len(done) - 1) / 2) * width, [np.mean(v) for v in vals], width,
                   yerr=[_sd(v) for v in vals], capsize=2, label=name)
    ax_bar.set(xticks=range(len(bones)), xticklabels=bones, ylabel="DSC (mean ± SD)", ylim=(0, 1),
               title="DSC per bone")
    ax_bar.legend(fontsize=7, ncol=2)
    data = [[float(np.mean(list(c.values()))) for c in r["per_case"].values()] for r in done.values()]
    ax_box.boxplot(data, showmeans=True)
    ax_box.set_xticks(range(1, len(done) + 1), list(done), rotation=45, ha="right", fontsize=8)
    ax_box.set(ylabel="per-subject mean DSC", ylim=(0, 1), title="Validation subjects")
    for ax in (ax_bar, ax_box):
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_doc(doc: Path, body: str) -> None:
    """Replace the text between the markers (or append a marked section)."""
    text = doc.read_text(encoding="utf-8") if doc.is_file() else "# Model comparisons\n"
    section = f"{BEGIN}\n{body.strip()}\n{END}"
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> dict[str, dict[str, Any] | str]:
    import torch

    from limbseg.errors import LimbsegError

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from record import machine

    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        raise LimbsegError(f"unknown variant(s) {', '.join(unknown) or '(none given)'}; choose from "
                           f"{', '.join(VARIANTS)}")
    results: dict[str, dict[str, Any] | str] = {}
    for name in names:
        options = make_options(name, args)
        if options.encoder_weights == "imagenet" and not imagenet_available(options.encoder):
            results[name] = "not available offline"
            print(f"[{name}] ImageNet weights for {options.encoder} not available offline; skipped")
            continue
        results[name] = read_run(run_variant(name, args))
    done = [r for r in results.values() if isinstance(r, dict)]
    splits = {json.dumps(r["split"]["folds"], sort_keys=True) for r in done}
    if len(splits) > 1:
        raise LimbsegError("the variants' runs have different subject splits (split.json); rerun with a fresh --out")
    md, bones = table(results)
    doc, figure = Path(args.doc), Path(args.figure)
    if done:
        plot(results, bones, figure)
    hw = done[0]["hardware"] if done else {}
    split = done[0]["split"] if done else {"mode": "-", "seed": args.seed, "folds": []}
    val = sorted({c for f in split["folds"] for c in f["val"]})
    argv_used = sys.argv[1:] if argv is None else argv
    command = " ".join(shlex.quote(a) for a in [".venv/bin/python", "benchmarks/compare_models.py", *argv_used])
    body = (f"Command: `{command}`  \nDate: {date.today().isoformat()}  \nMachine: {machine()}; training device "
            f"{hw.get('device', '-')}{' (' + hw['gpu'] + ')' if hw.get('gpu') else ''}  \n"
            f"Split (identical for every variant): {split['mode']}, seed {split['seed']}, {len(split['folds'])} "
            f"fold(s), {len(val)} validation subject(s): {', '.join(val)}\n\n"
            "DSC at volume level on the native grid, mean ± SD over validation subjects; *mean* is each subject's "
            "mean over bones, then mean ± SD over subjects; train time excludes evaluation.\n\n"
            f"{md}\n\n![comparison](" + os.path.relpath(figure, doc.parent) + ")\n")
    write_doc(doc, body)
    print(md)
    return results


if __name__ == "__main__":
    from limbseg.errors import LimbsegError

    try:
        main()
    except LimbsegError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
