"""Subject-level splits: K-fold, leave-one-subject-out, or one validation fraction.

All cases of a subject land on the same side of every split, so no slice of a validation
subject is ever trained on. Splits are seeded and saved as ``split.json``::

    {"mode": "loo", "seed": 0, "folds": [{"fold": 0, "train": [case...], "val": [case...]}, ...]}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from limbseg.errors import LimbsegError
from limbseg.io.atomic import atomic_path


def make_splits(cases: dict[str, str], folds: int | str | None, *, val_fraction: float = 0.2,
                seed: int = 0) -> dict[str, Any]:
    """Split cases by subject.

    Args:
        cases: case id -> subject id.
        folds: None (one split with ``val_fraction`` of the subjects), int K, or "loo".
    Returns:
        The split.json dict.
    """
    subjects = sorted(set(cases.values()))
    if len(subjects) < 2:
        raise LimbsegError(f"need at least 2 subjects to hold one out for validation, found {len(subjects)}")
    order = list(np.random.default_rng(seed).permutation(len(subjects)))
    shuffled = [subjects[i] for i in order]
    if folds == "loo":
        groups = [[s] for s in subjects]
    elif folds is None:
        n_val = min(len(subjects) - 1, max(1, round(val_fraction * len(subjects))))
        groups = [shuffled[:n_val]]
    else:
        k = int(folds)
        if k > len(subjects):
            raise LimbsegError(f"--folds {k} needs at least {k} subjects, found {len(subjects)}")
        groups = [shuffled[i::k] for i in range(k)]
    out = []
    for n, val_subjects in enumerate(groups):
        val = sorted(c for c, s in cases.items() if s in val_subjects)
        train = sorted(c for c, s in cases.items() if s not in val_subjects)
        out.append({"fold": n, "train": train, "val": val})
    return {"mode": "loo" if folds == "loo" else ("holdout" if folds is None else f"{folds}-fold"),
            "seed": seed, "folds": out}


def save_split(split: dict[str, Any], path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(split, indent=2) + "\n", encoding="utf-8")
    return Path(path)


def load_split(path: str | Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise LimbsegError(f"cannot read split ({exc})", path) from exc
