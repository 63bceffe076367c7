"""QC picture of the measurements: the axes drawn on the bones (matplotlib, Agg, no display).

Three panels in RAS mm: a front view of both legs (patient's right on the picture's left, as
when facing the patient) with the mechanical axes and the neck and shaft axes; top views (from
above, anterior up) of the femora with the neck axis and the posterior condylar line, and of the
tibiae with the posterior plateau line and the transmalleolar line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from limbseg.io.atomic import atomic_path
from limbseg.measure.api import MeasureResult

COLOURS = {"left": "tab:blue", "right": "tab:orange"}
FRONT_LINES = (("femoral_head_centre", "knee_centre"), ("plateau_centre", "ankle_centre"),
               ("neck_centre", "femoral_head_centre"), ("shaft_proximal", "shaft_distal"))
FEMUR_TOP = (("neck_centre", "femoral_head_centre"), ("posterior_lateral_condyle", "posterior_medial_condyle"))
TIBIA_TOP = (("posterior_lateral_plateau", "posterior_medial_plateau"), ("lateral_malleolus", "medial_malleolus"))


def _line(ax, lm: dict, a: str, b: str, dims: tuple[int, int], colour: str, extend: float = 0.0) -> None:
    if a not in lm or b not in lm:
        return
    p, q = np.asarray(lm[a]), np.asarray(lm[b])
    d = q - p
    p, q = p - extend * d, q + extend * d
    ax.plot([p[dims[0]], q[dims[0]]], [p[dims[1]], q[dims[1]]], "-", color=colour, lw=1.5)
    ax.plot([lm[a][dims[0]], lm[b][dims[0]]], [lm[a][dims[1]], lm[b][dims[1]]], "o", color=colour, ms=3)


def _value_text(result: MeasureResult, side: str, names: tuple[str, ...]) -> str:
    out = []
    for n in names:
        v = result.value(side, n)
        flag = " (implausible)" if result.status(side, n) == "implausible" else ""
        out.append(f"{n.replace('_', ' ')}: {'incomplete' if v is None else f'{v:.1f}'}{flag}")
    return "\n".join(out).replace("mechanical femorotibial angle", "mFTA (varus +)")


def draw_axes(result: MeasureResult, path: str | Path) -> Path:
    """Draw the picture into ``path`` (PNG) atomically and return the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(12, 8))
    grid = fig.add_gridspec(2, 2, width_ratios=[1, 1.3])
    front, ftop, ttop = fig.add_subplot(grid[:, 0]), fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, 1])
    for side in ("left", "right"):
        lm, pts, c = result.landmarks.get(side, {}), result.points.get(side, {}), COLOURS[side]
        for bone, p in pts.items():
            front.scatter(p[:, 0], p[:, 2], s=0.3, c="0.75", rasterized=True)
            target = ftop if bone == "femur" else ttop
            target.scatter(p[:, 0], p[:, 1], s=0.3, c="0.8" if bone == "fibula" else "0.65", rasterized=True)
        for a, b in FRONT_LINES:
            _line(front, lm, a, b, (0, 2), c)
        for a, b in FEMUR_TOP:
            _line(ftop, lm, a, b, (0, 1), c, extend=0.3)
        for a, b in TIBIA_TOP:
            _line(ttop, lm, a, b, (0, 1), c, extend=0.3)
        front.text(0.02 if side == "right" else 0.98, 0.01, f"{side}\n" + _value_text(
            result, side, ("femur_length", "tibia_length", "leg_length", "mechanical_femorotibial_angle")),
            transform=front.transAxes, ha="left" if side == "right" else "right", va="bottom", fontsize=7, color=c)
    ftop.set_title("femora from above: neck axis, posterior condylar line", fontsize=9)
    ttop.set_title("tibiae from above: posterior plateau and malleolar lines", fontsize=9)
    for ax, ylabel in ((front, "superior (RAS z, mm)"), (ftop, "anterior (RAS y, mm)"), (ttop, "anterior (RAS y, mm)")):
        ax.set_aspect("equal")
        ax.invert_xaxis()  # the patient's right on the left, as when facing the patient
        ax.set_xlabel("patient right <- RAS x (mm) -> left", fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
    front.set_title(f"{result.case or 'measurements'}: front view, mechanical axes", fontsize=9)
    for ax, names in ((ftop, ("femoral_anteversion", "neck_shaft_angle")), (ttop, ("tibial_torsion",))):
        text = "\n".join(f"{s}: " + _value_text(result, s, names).replace("\n", ", ") for s in ("left", "right"))
        ax.text(0.01, 1.0, text, transform=ax.transAxes, fontsize=7, va="top")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
