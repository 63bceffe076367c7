"""``limbseg synth``: write a virtual paediatric cohort (DICOM, masks, meshes, dataset)."""

from __future__ import annotations

import argparse

from limbseg.cli import add_command


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:  # noqa: SLF001
    p = add_command(subparsers, "synth", run, "simulate virtual children: MRI, bone masks, meshes and a dataset")
    p.add_argument("-n", type=_positive_int, default=1, help="number of subjects")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="subject i uses seed SEED + i")
    p.add_argument("--contrast", choices=["water", "fat", "t1", "pd", "random", "mixed"], default="water",
                   help="water-only Dixon (the study's), fat-only, T1-like, PD-like, random per subject, "
                        "or mixed (cycles through all five by seed)")
    p.add_argument("--slice-thickness", type=float, default=3.0, help="slice thickness (mm)")
    p.add_argument("--pixel", type=float, default=0.9375, help="in-plane pixel size (mm)")
    p.add_argument("--matrix", type=int, default=None, help="axial in-plane matrix (default: 480 mm / pixel)")
    p.add_argument("--orientation", choices=["axial", "coronal", "sagittal"], default="axial")
    p.add_argument("--distractors", action="store_true",
                   help="also simulate bones that are not labelled (patellae, sacrum and L4-L5, tali and calcanei, "
                        "arms beside the hips in half of the subjects): bone in the image, background in the labels")
    p.add_argument("--ages", type=float, nargs=2, metavar=("LO", "HI"), default=None,
                   help="only children aged LO to HI years (seeds from SEED up whose age is outside are skipped)")
    p.add_argument("--jobs", type=_positive_int, default=1, help="worker processes")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from limbseg.synth.cohort import synthesize_cohort

    contrast = "random_mix" if args.contrast == "mixed" else args.contrast
    with tqdm(total=args.n, unit="subject", desc="synth") as bar:
        infos = synthesize_cohort(
            args.output, args.n, args.seed, jobs=args.jobs, contrast=contrast, pixel=args.pixel,
            slice_thickness=args.slice_thickness, orientation=args.orientation, matrix=args.matrix,
            distractors=args.distractors, ages=args.ages, progress=lambda done, n: bar.update(done - bar.n),
        )
    print(f"wrote {len(infos)} subjects to {args.output}")
    return 0
