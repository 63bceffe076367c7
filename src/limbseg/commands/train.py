"""``limbseg train DATASET -o RUN_DIR``: train (and cross-validate) a segmentation model."""

from __future__ import annotations

import argparse

from limbseg.cli import add_command


def register(subparsers: argparse._SubParsersAction) -> None:  # noqa: SLF001
    p = add_command(subparsers, "train", run, "train a model on a dataset (nnU-Net layout), with cross-validation",
                    description="Train the study's U-Net (or a comparator) on DATASET and write bundles, split, "
                                "history, curves and volume-level validation metrics into RUN_DIR.")
    p.add_argument("dataset", help="dataset folder (dataset.json, imagesTr/, labelsTr/)")
    p.add_argument("-o", "--output", required=True, help="run folder")
    p.add_argument("--arch", choices=["unet", "unet2d"], default="unet", help="smp U-Net or plain 2D U-Net")
    p.add_argument("--encoder", choices=["resnet34", "resnet18", "resnet50", "vgg19", "mobilenet_v2"], default="resnet34")
    p.add_argument("--encoder-weights", default="none",
                   help="none | imagenet (local Hugging Face cache only) | PATH to .safetensors/.pth")
    p.add_argument("--decoder-channels", default=None, metavar="W1,W2,W3,W4,W5",
                   help="U-Net decoder widths (default 256,128,64,32,16; 128,64,32,16,16 is ~2.5x faster on CPU)")
    p.add_argument("--freeze-encoder", action="store_true", help="freeze the encoder (the study did)")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (decays by 1e-6 per epoch)")
    p.add_argument("--lr-schedule", choices=["study", "cosine"], default="study",
                   help="study: linear decay by 1e-6 per epoch; cosine: to 1%% of --lr at the last epoch")
    p.add_argument("--val-slice-stride", type=int, default=1, help="validate on every n-th slice (CPU budgets)")
    p.add_argument("--loss", choices=["dicece", "dicefocal", "dice", "ce"], default="dicece",
                   help="dicece: cross-entropy + batch Dice on the bones (default); dicefocal: the study's")
    p.add_argument("--foreground-fraction", type=float, default=1 / 3,
                   help="share of tiles centred near a voxel of a random bone present in the case")
    p.add_argument("--neighbour-mm", type=float, default=3.0,
                   help="distance of the 2.5D neighbour slices in mm (stored in the bundle)")
    p.add_argument("--patience", type=int, default=20, help="early stopping on validation loss")
    p.add_argument("--folds", default=None, help="K (k-fold) or 'loo' (leave one subject out)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="validation subjects when --folds is not given")
    p.add_argument("--image-size", type=int, default=160, help="training tile in pixels (multiple of 32)")
    p.add_argument("--spacing", type=float, default=1.875, help="in-plane pixel size in mm (study: 480 mm / 256)")
    p.add_argument("--channels", choices=["2.5d", "repeat"], default="2.5d",
                   help="neighbouring slices or the slice repeated (the study)")
    p.add_argument("--no-augment", action="store_true", help="switch augmentation off")
    p.add_argument("--init-from", default=None, metavar="BUNDLE", help="fine-tune from a trained bundle")
    p.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, cuda:N, mps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in RUN_DIR")
    p.add_argument("--max-slices-per-epoch", type=int, default=None, help="bound an epoch (CPU)")
    p.add_argument("--workers", type=int, default=0,
                   help="worker processes that prepare the cases and load the training tiles")
    p.add_argument("--time-limit", type=float, default=None, metavar="MIN",
                   help="end each fold before an epoch that would run past MIN minutes; the cosine schedule "
                        "anneals over that time")
    p.add_argument("--half", action="store_true", help="store bundle weights as float16")
    p.add_argument("--stage", choices=["fine", "locator"], default="fine",
                   help="fine: the 2.5D network (default); locator: the coarse 3D stage, added to the --init-from "
                        "bundle (default: the shipped model) and written as RUN_DIR/bundle")
    p.add_argument("--val-dataset", default=None, help="locator stage: validation dataset (default: --val-fraction "
                                                        "of DATASET's subjects)")
    p.add_argument("--fresh", action="store_true", help="locator stage: start from random weights instead of the "
                                                       "bundle's locator")


def run(args: argparse.Namespace) -> int:
    if args.stage == "locator":
        return _run_locator(args)
    from limbseg.training.options import TrainOptions, parse_folds
    from limbseg.training.run import train

    options = TrainOptions(
        arch=args.arch, encoder=args.encoder, encoder_weights=args.encoder_weights,
        decoder_channels=_widths(args.decoder_channels),
        freeze_encoder=args.freeze_encoder, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        loss=args.loss, lr_schedule=args.lr_schedule, val_slice_stride=args.val_slice_stride, patience=args.patience, folds=parse_folds(args.folds), val_fraction=args.val_fraction,
        image_size=args.image_size, spacing_mm=args.spacing, channels=args.channels, augment=not args.no_augment,
        init_from=args.init_from, device=args.device, seed=args.seed, resume=args.resume,
        max_slices_per_epoch=args.max_slices_per_epoch, num_workers=args.workers, half_bundle=args.half,
        time_limit_min=args.time_limit, foreground_fraction=args.foreground_fraction,
        neighbour_mm=args.neighbour_mm,
    )
    result = train(args.dataset, args.output, options)
    if not result.summary:  # a torchrun worker other than rank 0: rank 0 reports
        return 0
    dsc = result.summary["structures"]["mean"]["dice"]
    print(f"model: {result.bundle}")
    print(f"validation mean DSC {dsc['mean']:.3f} ± {dsc['sd']:.3f} over {result.summary['n_cases']} cases; "
          f"report: {result.run_dir / 'summary.md'}")
    return 0


def _run_locator(args: argparse.Namespace) -> int:
    from limbseg.errors import LimbsegError
    from limbseg.models.bundle import default_bundle_path
    from limbseg.segmentation.predict import resolve_device
    from limbseg.training.locator import run_locator

    if args.time_limit is None or args.time_limit <= 0:
        raise LimbsegError("--stage locator needs --time-limit MIN (minutes of training)")
    bundle = run_locator(args.dataset, args.output, bundle=args.init_from or default_bundle_path(),
                         minutes=args.time_limit, val_dataset=args.val_dataset, val_fraction=args.val_fraction,
                         seed=args.seed, device=str(resolve_device(args.device)),
                         workers=max(1, args.workers), fresh=args.fresh, resume=args.resume,
                         progress=lambda m: print(m, flush=True))
    print(f"model with locator: {bundle}")
    return 0


def _widths(text: str | None) -> list[int] | None:
    """``"128,64,32,16,16"`` -> [128, 64, 32, 16, 16]."""
    if text is None:
        return None
    from limbseg.errors import LimbsegError

    try:
        return [int(w) for w in text.split(",")]
    except ValueError as exc:
        raise LimbsegError(f"--decoder-channels must be comma-separated integers, got {text!r}") from exc
