"""Run reports: learning curves, per-subject metrics, summaries and box plots (matplotlib Agg)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from limbseg.io.atomic import atomic_path


def write_history(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """All folds' epochs in one CSV (columns of the first row, plus any new ones)."""
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def plot_curves(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Training and validation loss (left) and validation mean DSC (right) per epoch, one line per fold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_dsc) = plt.subplots(1, 2, figsize=(10, 4))
    for fold in sorted({r["fold"] for r in rows}):
        sel = [r for r in rows if r["fold"] == fold]
        ep = [r["epoch"] for r in sel]
        line = ax_loss.plot(ep, [r["train_loss"] for r in sel], marker=".", label=f"fold {fold} train")[0]
        ax_loss.plot(ep, [r["val_loss"] for r in sel], ls="--", marker=".", color=line.get_color(),
                     label=f"fold {fold} val")
        ax_dsc.plot(ep, [r["val_dsc"] for r in sel], marker=".", color=line.get_color(), label=f"fold {fold}")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss")
    ax_dsc.set(xlabel="epoch", ylabel="mean DSC", title="Validation mean DSC (slices)", ylim=(0, 1))
    for ax in (ax_loss, ax_dsc):
        ax.grid(alpha=0.3)
        if len(ax.lines) <= 12:
            ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
