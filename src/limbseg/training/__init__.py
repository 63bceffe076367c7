"""Training: options, subject-level folds, the training loop, reports and ``train()``.

Import :func:`limbseg.training.run.train` and :class:`limbseg.training.options.TrainOptions`
(re-exported here lazily so importing this package stays light).
"""

from __future__ import annotations

from typing import Any

__all__ = ["TrainOptions", "TrainResult", "train"]


def __getattr__(name: str) -> Any:
    if name == "TrainOptions":
        from limbseg.training.options import TrainOptions

        return TrainOptions
    if name in ("train", "TrainResult"):
        from limbseg.training import run

        return getattr(run, name)
    raise AttributeError(name)
