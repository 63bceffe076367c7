"""Evaluate predicted label maps against references: per-case rows, summaries and reports.

A row is a plain dict per (case, structure): ``case``, ``structure``, ``dice``,
``volume_error_cm3``, ``volume_error_pct``, ``hd95_mm``, ``assd_mm``, ``pred_cm3``, ``ref_cm3``.
Empty-mask rules are those of :mod:`limbseg.metrics`; summaries skip nan values and count them.
Reports: ``metrics.csv``, ``summary.json``, ``summary.md`` (mean ± SD per structure, like the
study's Table 3) and ``boxplot.png`` (per-case DSC per structure).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from limbseg import metrics
from limbseg.errors import LimbsegError
from limbseg.io.atomic import atomic_path
from limbseg.volume import LabelMap, Volume

METRICS = ("dice", "volume_error_cm3", "volume_error_pct", "hd95_mm", "assd_mm")
COLUMNS = ("case", "structure", *METRICS, "pred_cm3", "ref_cm3")


def evaluate_pair(pred: LabelMap | Volume, ref: LabelMap | Volume, *, case: str = "",
                  surface: bool = True) -> list[dict[str, Any]]:
    """One row per structure of the reference's scheme (all structures, also absent ones).

    Both label maps must share the grid (shape and affine within 1e-3 mm); ``surface=False``
    skips HD95/ASSD (nan), which are the slow part on big volumes.
    """
    if not pred.same_grid(ref):
        raise LimbsegError(f"prediction and reference grids differ (shape {pred.shape} vs {ref.shape}, "
                           "or affine); resample the prediction onto the reference first", case or None)
    scheme = ref.scheme if isinstance(ref, LabelMap) else (pred.scheme if isinstance(pred, LabelMap) else None)
    if scheme is None:
        from limbseg.labels import DEFAULT_SCHEME

        scheme = DEFAULT_SCHEME
    vv, spacing = ref.voxel_volume_mm3, ref.spacing
    rows = []
    for s in scheme.structures:
        p, r = pred.array == s.value, ref.array == s.value
        rows.append({
            "case": case, "structure": s.name,
            "dice": metrics.dice(p, r),
            "volume_error_cm3": metrics.volume_error_cm3(p, r, vv),
            "volume_error_pct": metrics.volume_error_pct(p, r),
            "hd95_mm": metrics.hd95(p, r, spacing) if surface else math.nan,
            "assd_mm": metrics.assd(p, r, spacing) if surface else math.nan,
            "pred_cm3": int(p.sum()) * vv / 1000.0, "ref_cm3": int(r.sum()) * vv / 1000.0,
        })
    return rows


def case_id(path: Path) -> str:
    """Case id of an image file: the name without ``.nii.gz``/``.nii``/``.nrrd``/``.mha`` and ``_0000``."""
    name = path.name
    for ext in (".nii.gz", ".seg.nrrd", ".nii", ".nrrd", ".mha", ".mhd"):
        if name.endswith(ext):
            name = name[: -len(ext)]
            break
    return name[:-5] if name.endswith("_0000") else name


def _index(path: Path) -> dict[str, Path]:
    from limbseg.io import IMAGE_SUFFIXES

    if path.is_file():
        return {case_id(path): path}
    if not path.is_dir():
        raise LimbsegError("no such file or folder", path)
    files = sorted(p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(IMAGE_SUFFIXES)
                   and not p.name.startswith("."))
    index = {case_id(p): p for p in files}
    # `limbseg segment a b -o OUT` writes OUT/<input name>/labels.nii.gz: the folder names the case
    for sub in sorted(p for p in path.iterdir() if p.is_dir() and (p / "labels.nii.gz").is_file()):
        index.setdefault(case_id(Path(sub.name + ".nii.gz")), sub / "labels.nii.gz")
    return index


def match_cases(pred: str | Path, ref: str | Path) -> list[tuple[str, Path, Path]]:
    """Pair prediction and reference files by case id (two files are paired whatever their names).

    A folder is indexed by its image files and by its sub-folders holding a ``labels.nii.gz``
    (the layout ``limbseg segment`` writes for several inputs).
    """
    pred, ref = Path(pred), Path(ref)
    if pred.is_file() and ref.is_file():
        return [(case_id(ref), pred, ref)]
    p_idx, r_idx = _index(pred), _index(ref)
    common = sorted(set(p_idx) & set(r_idx))
    if not common:
        raise LimbsegError(f"no case ids in common between {pred} ({len(p_idx)} files) and {ref} ({len(r_idx)} files)")
    return [(c, p_idx[c], r_idx[c]) for c in common]


def evaluate_paths(pred: str | Path, ref: str | Path, *, scheme=None, surface: bool = True,
                   progress=None) -> list[dict[str, Any]]:
    """Read matched files and evaluate them; returns all rows (cases in sorted order)."""
    from limbseg.io import read_image
    from limbseg.labels import DEFAULT_SCHEME

    pairs = match_cases(pred, ref)
    rows: list[dict[str, Any]] = []
    for n, (case, p_path, r_path) in enumerate(pairs):
        try:
            p = LabelMap.from_volume(read_image(p_path), scheme or DEFAULT_SCHEME)
            r = LabelMap.from_volume(read_image(r_path), scheme or DEFAULT_SCHEME)
        except ValueError as exc:
            raise LimbsegError(f"not a label image ({exc})", p_path) from exc
        rows.extend(evaluate_pair(p, r, case=case, surface=surface))
        if progress:
            progress((n + 1) / len(pairs), f"evaluated {case}")
    return rows


def summarise(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Per structure and overall: mean, sd, median, n and n_nan of each metric (nan skipped)."""
    rows = list(rows)
    structures = list(dict.fromkeys(r["structure"] for r in rows))
    out: dict[str, Any] = {"n_cases": len({r["case"] for r in rows}), "structures": {}}
    for name in [*structures, "mean"]:
        sel = rows if name == "mean" else [r for r in rows if r["structure"] == name]
        entry = {}
        for m in METRICS:
            vals = np.array([float(r[m]) for r in sel], dtype=float)
            ok = vals[np.isfinite(vals)]
            entry[m] = {"mean": float(ok.mean()) if ok.size else math.nan,
                        "sd": float(ok.std(ddof=1)) if ok.size > 1 else 0.0 if ok.size else math.nan,
                        "median": float(np.median(ok)) if ok.size else math.nan,
                        "n": int(ok.size), "n_nan": int(vals.size - ok.size)}
        out["structures"][name] = entry
    return out


def _fmt(e: dict[str, float], digits: int) -> str:
    return "n/a" if not math.isfinite(e["mean"]) else f"{e['mean']:.{digits}f} ± {e['sd']:.{digits}f}"


def summary_markdown(summary: dict[str, Any], title: str = "Evaluation") -> str:
    """Markdown table: mean ± SD per structure (DSC, VE cm³, VE %, HD95 mm, ASSD mm)."""
    lines = [f"# {title}", "", f"{summary['n_cases']} cases. Mean ± SD; HD95/ASSD skip cases where exactly one "
             "mask is empty (counted in summary.json as n_nan).", "",
             "| structure | DSC | VE (cm³) | VE (%) | HD95 (mm) | ASSD (mm) |", "|---|---|---|---|---|---|"]
    for name, e in summary["structures"].items():
        lines.append(f"| {name} | {_fmt(e['dice'], 3)} | {_fmt(e['volume_error_cm3'], 2)} | "
                     f"{_fmt(e['volume_error_pct'], 1)} | {_fmt(e['hd95_mm'], 2)} | {_fmt(e['assd_mm'], 2)} |")
    return "\n".join(lines) + "\n"


def write_rows_csv(rows: Sequence[dict[str, Any]], path: Path, columns: Sequence[str] = COLUMNS) -> Path:
    extra = [k for k in (rows[0] if rows else {}) if k not in columns]
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*extra, *columns], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def boxplot(rows: Sequence[dict[str, Any]], path: Path, metric: str = "dice", title: str = "") -> Path:
    """Box plot of per-case ``metric`` per structure (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    structures = list(dict.fromkeys(r["structure"] for r in rows))
    data = [[r[metric] for r in rows if r["structure"] == s and math.isfinite(r[metric])] for s in structures]
    fig, ax = plt.subplots(figsize=(1.6 * max(len(structures), 2) + 1, 4))
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(structures) + 1), structures)
    ax.set_ylabel("DSC" if metric == "dice" else metric)
    if metric == "dice":
        ax.set_ylim(0, 1.02)
    ax.set_title(title or f"Per-case {metric}")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def write_report(rows: Sequence[dict[str, Any]], out_dir: str | Path, *, title: str = "Evaluation",
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write metrics.csv, summary.json, summary.md and boxplot.png into ``out_dir``; returns the summary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(rows)
    if extra:
        summary.update(extra)
    write_rows_csv(rows, out / "metrics.csv")
    with atomic_path(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(_jsonable(summary), indent=2) + "\n", encoding="utf-8")
    with atomic_path(out / "summary.md") as tmp:
        tmp.write_text(summary_markdown(summary, title), encoding="utf-8")
    boxplot(rows, out / "boxplot.png", title=f"{title}: per-case DSC")
    return summary


def _jsonable(obj: Any) -> Any:
    """nan/inf -> None so the JSON is standard."""
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
