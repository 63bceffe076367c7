"""What each training-recipe fix is worth, at one fixed budget on the same seeded data (issue #13).

    python benchmarks/bench_recipe.py [--out runs/recipe] [--epochs 8] [--tiles 256]

Data: 8 phantom legs (`limbseg.synth.phantoms`, seed 5) whose pelvis fills only 2 of 20 slices, so it is in
about one training tile in ten: the case where a loss that rewards never predicting a class shows. Every
variant is one `limbseg.training.run.train` run with the same split, seed, network (MobileNetV2 U-Net,
narrow decoder), tiles (64 px, batch 8) and number of steps; only the named options differ. The figures are
volume-level DSC of the 2 validation phantoms, each whole volume segmented through `Predictor.predict_scan`.
The table replaces the text between the markers in `docs/experiments.md`.
"""

from __future__ import annotations

import argparse
import csv
import re
import shlex
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import machine  # noqa: E402

BEGIN, END = "<!-- recipe:begin -->", "<!-- recipe:end -->"
VARIANTS = {
    "before (the study's loss as MONAI computes it, uniform tiles)": {"loss": "dicefocal", "foreground_fraction": 0.0},
    "batch Dice on the bones + CE, uniform tiles": {"loss": "dicece", "foreground_fraction": 0.0},
    "the study's loss, 1/3 tiles on a bone": {"loss": "dicefocal", "foreground_fraction": 1 / 3},
    "after (batch Dice + CE, 1/3 tiles on a bone)": {"loss": "dicece", "foreground_fraction": 1 / 3},
}
BONES = ("tibia", "femur", "fibula", "pelvis")


def run_variant(data: Path, out: Path, options: dict, epochs: int, tiles: int) -> tuple[dict[str, float], float]:
    import torch

    from limbseg.training.options import TrainOptions
    from limbseg.training.run import train

    opts = TrainOptions(arch="unet", encoder="mobilenet_v2", decoder_channels=[16, 16, 16, 16, 16], image_size=64,
                        batch_size=8, lr=3e-3, lr_schedule="cosine", epochs=epochs, patience=10_000,
                        max_slices_per_epoch=tiles, val_fraction=0.25, device="cpu", augment=False, seed=0,
                        **options)
    torch.manual_seed(0)
    t = time.perf_counter()
    result = train(data, out, opts)
    seconds = time.perf_counter() - t
    rows = list(csv.DictReader(open(result.run_dir / "metrics.csv")))
    return {b: float(np.mean([float(r["dice"]) for r in rows if r["structure"] == b])) for b in BONES}, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="run folders (default: a temporary folder)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--tiles", type=int, default=256, help="tiles per epoch")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    from limbseg.synth.phantoms import write_phantom_dataset

    torch.set_num_threads(args.threads)
    out = args.out or Path(tempfile.mkdtemp(prefix="limbseg-recipe-"))
    data = write_phantom_dataset(out / "data", 8, seed=5, pelvis_slices=2)
    lines = ["| variant | tibia | femur | fibula | pelvis | mean | s |", "|---|---|---|---|---|---|---|"]
    for n, (name, options) in enumerate(VARIANTS.items()):
        dsc, seconds = run_variant(data, out / f"v{n}", options, args.epochs, args.tiles)
        lines.append(f"| {name} | " + " | ".join(f"{dsc[b]:.3f}" for b in BONES)
                     + f" | {np.mean(list(dsc.values())):.3f} | {seconds:.0f} |")
        print(lines[-1], flush=True)
    command = "python " + " ".join(shlex.quote(a) for a in [f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]])
    body = (f"Command: `{command}`  \nDate: {date.today().isoformat()}  \nMachine: {machine()}  \n"
            f"Budget for every variant: {args.epochs} epochs of one 64-px tile per training slice (6 phantoms x 20"
            f" slices = 120 tiles, at most --tiles {args.tiles}), batch 8.\n\n" + "\n".join(lines))
    doc = ROOT / "docs" / "experiments.md"
    text = doc.read_text(encoding="utf-8")
    block = f"{BEGIN}\n{body}\n{END}"
    text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S) \
        if BEGIN in text else text.rstrip() + "\n\n" + block + "\n"
    doc.write_text(text, encoding="utf-8")
    print(body)


if __name__ == "__main__":
    main()
