"""Training options: one dataclass that the CLI, the GUI and scripts fill in.

Defaults follow the honours study's recipe (ResNet34 U-Net, Adam 1e-4, batch 16, 100 epochs) except where noted:
``encoder_weights="none"`` because ImageNet weights cannot be downloaded here (the study used
ImageNet; pass ``"imagenet"`` when they are in the local cache, or a file), and
``channels="2.5d"`` (neighbouring slices; ``"repeat"`` is the study's grey-repeated input).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from limbseg.errors import LimbsegError

LOSSES = ("dicece", "dicefocal", "dice", "ce")


@dataclass
class TrainOptions:
    """Everything that shapes a training run.

    Units: ``spacing_mm`` in mm; ``image_size`` in pixels (the square network input tile used
    for training crops, a multiple of 32; ``image_size * spacing_mm`` mm of field);
    ``neighbour_mm``: distance of the 2.5D neighbour channels (mm along the slice axis; stored in the bundle).
    ``foreground_fraction``: share of training tiles centred near a voxel of a class present in the case.
    ``loss``: ``"dicece"`` (cross-entropy + batch Dice on the foreground), or see
    :func:`limbseg.training.loop.make_loss`.
    ``lr_schedule``: ``"study"`` (linear decay by ``lr_decay_per_epoch`` per epoch) or ``"cosine"``
    (to 1 % of ``lr`` at ``epochs``, or at ``time_limit_min`` when that comes first; better for short runs
    at a higher rate).
    ``val_slice_stride``: validate on every n-th slice of the validation subjects (CPU budgets).
    ``folds``: ``None`` (one split by ``val_fraction``), an int K (K-fold) or ``"loo"``.
    ``time_limit_min``: end each fold before an epoch that would run past this many minutes of training
    (the cosine schedule then anneals over that time); ``None``: no limit.
    ``num_workers``: data loader worker processes, also used to prepare the cases in parallel.
    """

    arch: str = "unet"
    encoder: str = "resnet34"
    encoder_weights: str = "none"
    decoder_channels: list[int] | None = None
    freeze_encoder: bool = False
    epochs: int = 100
    batch_size: int = 16
    lr: float = 1e-4
    lr_decay_per_epoch: float = 1e-6
    lr_schedule: str = "study"
    loss: str = "dicece"
    patience: int = 20
    folds: int | str | None = None
    val_fraction: float = 0.2
    image_size: int = 160
    spacing_mm: float = 1.875
    channels: str = "2.5d"
    neighbour_mm: float = 3.0
    foreground_fraction: float = 1 / 3
    augment: bool = True
    init_from: str | None = None
    device: str = "auto"
    seed: int = 0
    resume: bool = False
    max_slices_per_epoch: int | None = None
    val_slice_stride: int = 1
    num_workers: int = 0
    time_limit_min: float | None = None
    half_bundle: bool = False
    ensemble: bool = True

    def validate(self) -> None:
        """Raise LimbsegError for inconsistent options (before any work is done)."""
        if self.loss not in LOSSES:
            raise LimbsegError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if self.lr_schedule not in ("study", "cosine"):
            raise LimbsegError(f"unknown learning-rate schedule {self.lr_schedule!r}; choose study or cosine")
        if self.val_slice_stride < 1:
            raise LimbsegError("--val-slice-stride must be at least 1")
        if self.channels not in ("2.5d", "repeat"):
            raise LimbsegError(f"unknown channel mode {self.channels!r}; choose 2.5d or repeat")
        if self.image_size < 32 or self.image_size % 32:
            raise LimbsegError(f"--image-size must be a positive multiple of 32, got {self.image_size}")
        if self.time_limit_min is not None and not self.time_limit_min > 0:
            raise LimbsegError(f"--time-limit must be a positive number of minutes, got {self.time_limit_min}")
        if self.num_workers < 0:
            raise LimbsegError(f"--workers must be 0 or more, got {self.num_workers}")
        if self.epochs < 1 or self.batch_size < 1:
            raise LimbsegError("--epochs and --batch-size must be at least 1")
        if not 0 < self.val_fraction < 1:
            raise LimbsegError(f"--val-fraction must be between 0 and 1, got {self.val_fraction}")
        if not 0 <= self.foreground_fraction <= 1:
            raise LimbsegError(f"--foreground-fraction must be between 0 and 1, got {self.foreground_fraction}")
        if self.neighbour_mm <= 0:
            raise LimbsegError(f"--neighbour-mm must be positive, got {self.neighbour_mm}")
        if self.lr <= 0 or self.spacing_mm <= 0:
            raise LimbsegError("--lr and --spacing must be positive")
        if self.folds is not None and self.folds != "loo" and (not isinstance(self.folds, int) or self.folds < 2):
            raise LimbsegError(f"--folds must be an integer >= 2 or 'loo', got {self.folds!r}")
        if self.init_from is not None and not Path(self.init_from).exists():
            raise LimbsegError("--init-from bundle not found", self.init_from)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def parse_folds(text: str | None) -> int | str | None:
    """CLI value of --folds: None, 'loo' or an integer."""
    if text is None:
        return None
    if text.lower() == "loo":
        return "loo"
    try:
        return int(text)
    except ValueError as exc:
        raise LimbsegError(f"--folds must be an integer or 'loo', got {text!r}") from exc
