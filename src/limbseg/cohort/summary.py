"""``cohort_summary.md`` and its pictures in ``cohort_plots/``: what a researcher looks at first.

From the rows of ``cohort_statistics.csv`` (:mod:`limbseg.cohort.tables`): per bone and side the number of
subjects and mean ± SD (range) of volume and length; the right - left differences, drawn per subject
(``left_right.png``); volume and length against age when the manifest has an age column
(``volume_vs_age.png``, ``length_vs_age.png``: one panel per bone, a least-squares line per side), else their
spread per bone and side (``bones.png``); the measurements' mean ± SD per side.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from limbseg.cohort.tables import MEASUREMENT_COLUMNS, as_number

SUMMARY_FILE = "cohort_summary.md"
PLOT_DIR = "cohort_plots"
SIDE_COLOURS = {"left": "#1f77b4", "right": "#d62728", "unknown": "#7f7f7f"}
QUANTITIES = (("volume_cm3", "volume (cm³)"), ("length_mm", "length (mm)"))


def age_column(columns: Iterable[str]) -> str | None:
    """The first column named ``age`` or starting with ``age`` (any case), e.g. ``age_years``."""
    columns = list(columns)
    exact = [c for c in columns if c.lower() == "age"]
    return next(iter(exact or [c for c in columns if c.lower().startswith("age")]), None)


def plot_names(age: str | None) -> list[str]:
    """The pictures' file names under :data:`PLOT_DIR` (with an age column or without)."""
    return ["left_right.png"] + (["volume_vs_age.png", "length_vs_age.png"] if age else ["bones.png"])


def _bone_rows(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [r for r in rows if r["side"] != "right-left" and (as_number(r["voxels"]) or 0) > 0]


def _diff_rows(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [r for r in rows if r["side"] == "right-left" and as_number(r["volume_cm3"]) is not None]


def _describe(values: list[float], digits: int = 1) -> str:
    if not values:
        return "–"
    sd = f" ± {statistics.stdev(values):.{digits}f}" if len(values) > 1 else ""
    spread = f" ({min(values):.{digits}f} to {max(values):.{digits}f})" if len(values) > 1 else ""
    return f"{statistics.fmean(values):.{digits}f}{sd}{spread}"


def _values(rows: list[dict[str, str]], column: str) -> list[float]:
    return [v for v in (as_number(r.get(column)) for r in rows) if v is not None]


def _groups(rows: list[dict[str, str]], *keys: str) -> dict[tuple[str, ...], list[dict[str, str]]]:
    out: dict[tuple[str, ...], list[dict[str, str]]] = {}
    for r in rows:
        out.setdefault(tuple(r[k] for k in keys), []).append(r)
    return out


def summary_text(rows: list[dict[str, str]], *, subjects: int, complete: int, failed: int, age: str | None,
                 plots: list[str]) -> str:
    """The Markdown of ``cohort_summary.md``; ``plots``: the picture files' names under ``cohort_plots/``."""
    lines = ["# Cohort summary", "",
             f"{subjects} subjects: {complete} complete, {failed} failed"
             + (" (see [failures.csv](failures.csv))" if failed else "") + ". "
             "One row per subject, side and bone: [cohort_statistics.csv](cohort_statistics.csv); "
             "each subject's own outputs are in its folder `<subject>/`.", "",
             "## Bones", "", "Mean ± SD (range) over the subjects where the bone was found.", "",
             "| structure | side | n | volume (cm³) | length (mm) |", "|---|---|---|---|---|"]
    for (name, side), group in _groups(_bone_rows(rows), "structure", "side").items():
        lines.append(f"| {name} | {side} | {len(group)} | {_describe(_values(group, 'volume_cm3'))} "
                     f"| {_describe(_values(group, 'length_mm'))} |")
    lines += ["", "## Left-right differences (right - left)", "",
              "| structure | n | volume (cm³) | length (mm) |", "|---|---|---|---|"]
    for (name,), group in _groups(_diff_rows(rows), "structure").items():
        lines.append(f"| {name} | {len(group)} | {_describe(_values(group, 'volume_cm3'), 2)} "
                     f"| {_describe(_values(group, 'length_mm'))} |")
    lines += [""] + [f"![{p}]({PLOT_DIR}/{p})" for p in plots if p == "left_right.png"]
    lines += ["", f"## Against age (`{age}`)" if age else "## Spread per bone", ""]
    if not age:
        lines += ["The manifest has no age column: add one named `age` to plot volume and length against age.", ""]
    lines += [f"![{p}]({PLOT_DIR}/{p})" for p in plots if p != "left_right.png"]
    lines += ["", "## Measurements", "", "| measurement | side | n | mean ± SD (range) |", "|---|---|---|---|"]
    for column in MEASUREMENT_COLUMNS:
        for side in ("left", "right", "right-left"):
            values = _values([r for r in rows if r["side"] == side], column)
            if values:
                lines.append(f"| {column} | {side} | {len(values)} | {_describe(values)} |")
    return "\n".join(lines) + "\n"


def draw_plots(rows: list[dict[str, str]], directory: Path, age: str | None) -> list[Path]:
    """Write the PNGs into ``directory`` (created); returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    directory.mkdir(parents=True, exist_ok=True)
    bones = _bone_rows(rows)
    structures = list(dict.fromkeys(r["structure"] for r in bones)) or ["(none)"]
    files = [_left_right(_diff_rows(rows), directory / "left_right.png")]
    if age:
        for column, label in QUANTITIES:
            files.append(_against_age(bones, structures, column, label, age,
                                      directory / f"{column.split('_')[0]}_vs_age.png"))
    else:
        files.append(_spread(bones, structures, directory / "bones.png"))
    return files


def _panels(n: int, rows: int = 1, size: tuple[float, float] = (3.2, 3.0)) -> tuple[Any, Any]:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, n, figsize=(size[0] * n, size[1] * rows), squeeze=False)
    return fig, axes


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    from limbseg.io.atomic import atomic_path

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png", metadata={"Software": None})
    plt.close(fig)
    return path


def _against_age(rows: list[dict[str, str]], structures: list[str], column: str, label: str, age: str,
                 path: Path) -> Path:
    import numpy as np

    fig, axes = _panels(len(structures))
    for ax, name in zip(axes[0], structures, strict=True):
        for side, group in _groups([r for r in rows if r["structure"] == name], "side").items():
            pairs = [(as_number(r.get(age)), as_number(r[column])) for r in group]
            points = np.array([p for p in pairs if p[0] is not None and p[1] is not None], dtype=float)
            x, y = points.reshape(-1, 2).T
            colour = SIDE_COLOURS.get(side[0], "k")
            ax.scatter(x, y, s=18, color=colour, label=side[0])
            if len(x) >= 3 and np.ptp(x) > 0:
                slope, intercept = np.polyfit(x, y, 1)
                ax.plot([x.min(), x.max()], [slope * x.min() + intercept, slope * x.max() + intercept], color=colour)
        ax.set(title=name, xlabel=age, ylabel=label)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    return _save(fig, path)


def _spread(rows: list[dict[str, str]], structures: list[str], path: Path) -> Path:
    fig, axes = _panels(len(structures), rows=2)
    for col, name in enumerate(structures):
        groups = _groups([r for r in rows if r["structure"] == name], "side")
        for row, (column, label) in enumerate(QUANTITIES):
            ax = axes[row][col]
            for n, ((side,), group) in enumerate(sorted(groups.items())):
                values = _values(group, column)
                xs = [n + 0.3 * (k / max(1, len(values) - 1) - 0.5) for k in range(len(values))]
                ax.scatter(xs, values, s=18, color=SIDE_COLOURS.get(side, "k"))
            ax.set_xticks(range(len(groups)), [s for (s,) in sorted(groups)])
            ax.set(title=name if row == 0 else "", ylabel=label)
    return _save(fig, path)


def _left_right(rows: list[dict[str, str]], path: Path) -> Path:
    fig, axes = _panels(2, size=(4.5, 3.2))
    groups = _groups(rows, "structure")
    names = [n for (n,) in groups] or ["(none)"]
    for ax, (column, label) in zip(axes[0], QUANTITIES, strict=True):
        for n, name in enumerate(names):
            values = _values(groups.get((name,), []), column)
            xs = [n + 0.3 * (k / max(1, len(values) - 1) - 0.5) for k in range(len(values))]
            ax.scatter(xs, values, s=18, color="#444444")
            if len(values) >= 3:
                ax.boxplot([values], positions=[n], widths=0.5, showfliers=False)
        ax.axhline(0.0, color="k", linewidth=0.8)
        ax.set_xticks(range(len(names)), names)
        ax.set(title=f"right - left {label}", ylabel=label)
    return _save(fig, path)
