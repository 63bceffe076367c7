"""Left and right from the bones themselves, not from the sign of a coordinate.

Label maps are unsided (one value per bone); this step decides which side each bone belongs to.
Positions are RAS mm: ``+x`` points to the patient's **right** (LPS, as in DICOM, has ``+x`` left).
A bone is never cut in two. The rules, in order (:func:`assign_sides`):

1. **Two legs** ("two legs"). The voxels of the femur and tibia (all leg bones when neither is
   there) are projected on RAS x; when they form two groups separated by a bone-free gap of at least
   ``MIN_GAP_MM``, each holding at least ``MIN_LEG_FRACTION`` of the voxels, there are two legs. The
   midline lies in that gap (a given midline is used when it falls inside the gap), and every bone,
   the pelvis included (its two hip bones), is split at it: no leg bone crosses the gap, so none is cut.
2. **One leg**: the leg goes whole to one side, every leg bone with it. The side is found from
   - the body midline: the pelvis's centre in x ("midline from pelvis"), else a given midline such as
     the ROI's ("midline given"), each only when it passes beside the leg, not through it; the pelvis
     is then split at that midline;
   - else the DICOM header ("header Laterality=R"): ``Laterality``, ``ImageLaterality``, then words in
     ``BodyPartExamined`` and ``SeriesDescription`` ("LEFT", "RT", "knee_L", ...);
   - else ``unknown`` (a valid side: the bone is reported whole, side unknown).

Torch-free and I/O-free except :func:`dicom_header`, which reads one DICOM header.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from limbseg.labels import structure_boxes
from limbseg.volume import LabelMap

SIDE_NAMES = ("left", "right", "unknown")  #: values of a statistics row's / mesh file's side
HOW = ("left", "right", "unknown", "split")  #: how a structure is sided: whole to one side, or split at the midline
PELVIS = "pelvis"  #: split at the midline (its two hip bones); every other structure is a leg bone
LEG_CORE = ("femur", "tibia")  #: the bones that place the legs (the fibula can stand apart from the tibia in x)
BIN_MM = 2.0  #: x-profile bin width
NOISE_FRACTION = 0.01  #: profile bins under this fraction of the fullest bin count as bone-free
MIN_GAP_MM = 10.0  #: bone-free gap in x that separates two legs (touching knees still leave soft tissue)
MIN_LEG_FRACTION = 0.1  #: each leg holds at least this fraction of the core voxels; smaller groups are noise
MIN_PELVIS_MM3 = 5000.0  #: a pelvis smaller than this (5 cm3: stray voxels) does not give a midline
MAX_SAMPLES = 400_000  #: voxels per structure used for the x profile (a regular subsample)
HEADER_KEYS = ("Laterality", "ImageLaterality", "BodyPartExamined", "SeriesDescription")
_LEFT_WORDS = {"L", "LT", "LEFT", "LINKS", "LINKE", "GAUCHE"}
_RIGHT_WORDS = {"R", "RT", "RIGHT", "RECHTS", "RECHTE", "DROIT", "DROITE"}


def voxel_x_mm(shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    """RAS x (mm) of every voxel centre, shape ``shape``, float64."""
    a = np.asarray(affine, dtype=float)
    i, j, k = (np.arange(s, dtype=float) for s in shape)
    return a[0, 0] * i[:, None, None] + a[0, 1] * j[None, :, None] + a[0, 2] * k[None, None, :] + a[0, 3]


def right_of(shape: tuple[int, ...], affine: np.ndarray, midline_x: float) -> np.ndarray:
    """Boolean ``RAS x > midline_x`` for every voxel centre of a grid (broadcast: read-only, maybe not full size).

    When x depends on one voxel axis only (any axis-aligned grid) this is a broadcast 1D comparison,
    so large grids cost no full-size float array.
    """
    a = np.asarray(affine, dtype=float)
    axes = [ax for ax in range(3) if a[0, ax] != 0.0]
    if len(axes) <= 1:
        ax = axes[0] if axes else 0
        x = a[0, ax] * np.arange(shape[ax], dtype=float) + a[0, 3]
        view = [1, 1, 1]
        view[ax] = shape[ax]
        return np.broadcast_to((x > midline_x).reshape(view), tuple(shape))
    return voxel_x_mm(shape, a) > midline_x


@dataclass(frozen=True)
class Leg:
    """One leg seen in the labels: its side and the RAS x extent (mm) of its bones."""

    side: str
    x_mm: tuple[float, float]


@dataclass(frozen=True)
class Sides:
    """How every structure of a label map is sided (see the module docstring).

    Attributes:
        rule: what decided: "two legs", "midline from pelvis", "midline given", "header Laterality=R",
            "unknown", "no bones" (an empty label map).
        midline_x: RAS x (mm) of the body midline; ``None`` when not known.
        structures: ``(name, how)`` pairs; ``how`` is "split" (left/right by RAS x against ``midline_x``)
            or "left"/"right"/"unknown" (the whole structure goes to that side).
        default: ``how`` for a structure not listed.
        legs: the legs seen (side and x extent).
        midline_from: where ``midline_x`` came from ("gap between the legs", "pelvis", "given").
    """

    rule: str
    midline_x: float | None = None
    structures: tuple[tuple[str, str], ...] = ()
    default: str = "split"
    legs: tuple[Leg, ...] = ()
    midline_from: str | None = None

    def __post_init__(self) -> None:
        hows = [h for _, h in self.structures] + [self.default]
        bad = [h for h in hows if h not in HOW]
        if bad:
            raise ValueError(f"unknown side rule {bad[0]!r}; choose from {HOW}")
        if "split" in hows and self.midline_x is None:
            raise ValueError("splitting at the midline needs midline_x")

    @classmethod
    def split_at(cls, midline_x: float, rule: str = "midline given") -> Sides:
        """Every structure split at ``midline_x`` (RAS x > midline: right): the rule before anatomy-based sides."""
        return cls(rule=rule, midline_x=float(midline_x), default="split", midline_from="given")

    def how(self, name: str) -> str:
        """How structure ``name`` is sided ("split", "left", "right" or "unknown")."""
        return dict(self.structures).get(name, self.default)

    def sides_of(self, name: str) -> tuple[str, ...]:
        """The sides reported for ``name``: ("left", "right"), or ("unknown",) when its side is not known."""
        return ("unknown",) if self.how(name) == "unknown" else ("left", "right")

    def split(self, name: str, mask: np.ndarray, affine: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """``(side, mask)`` for each of :meth:`sides_of` ``name``: the voxels of ``mask`` (a grid with
        ``affine``) on that side; together they hold every voxel of ``mask`` exactly once."""
        how = self.how(name)
        if how == "unknown":
            return [("unknown", mask)]
        if how == "split":
            right = right_of(mask.shape, affine, self.midline_x)  # type: ignore[arg-type]
            return [("left", mask & ~right), ("right", mask & right)]
        empty = np.zeros_like(mask)
        return [("left", mask if how == "left" else empty), ("right", mask if how == "right" else empty)]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready record (for ``statistics.json`` and ``labels.json``)."""
        return {
            "rule": self.rule,
            "midline_ras_x_mm": self.midline_x,
            "midline_from": self.midline_from,
            "structures": dict(self.structures),
            "default": self.default,
            "legs": [{"side": leg.side, "x_mm": list(leg.x_mm)} for leg in self.legs],
            "convention": "RAS +x = patient right (LPS +x = patient left); 'split': right where RAS x > midline; "
                          "'left'/'right'/'unknown': the whole structure on that side",
        }


def _x_samples(labels: LabelMap, value: int, box: tuple[slice, ...] | None) -> tuple[np.ndarray, np.ndarray]:
    """(RAS x in mm, weight) of a regular subsample of the voxels of ``value``; weights sum to the voxel count."""
    if box is None:
        return np.zeros(0), np.zeros(0)
    crop = labels.array[box]
    idx = np.flatnonzero(crop == value)
    step = max(1, idx.size // MAX_SAMPLES)
    ijk = np.unravel_index(idx[::step], crop.shape)
    a = labels.affine
    lo = [b.start for b in box]
    x = sum(a[0, ax] * (ijk[ax] + lo[ax]) for ax in range(3)) + a[0, 3]
    return np.asarray(x, dtype=float), np.full(len(idx[::step]), float(step))


def _groups(x: np.ndarray, w: np.ndarray) -> list[tuple[float, float, float]]:
    """Groups of the x profile, low x first: ``(x_lo, x_hi, voxels)`` (x of the outermost voxel centres).

    The profile has ``BIN_MM`` bins; bins under ``NOISE_FRACTION`` of the fullest count as bone-free, and
    only a bone-free stretch of at least ``MIN_GAP_MM`` separates two groups."""
    if x.size == 0:
        return []
    origin = float(np.floor(x.min() / BIN_MM) * BIN_MM)
    bins = ((x - origin) // BIN_MM).astype(int)
    counts = np.bincount(bins, weights=w)
    low, high = np.full(counts.size, np.inf), np.full(counts.size, -np.inf)
    np.minimum.at(low, bins, x)
    np.maximum.at(high, bins, x)
    full = np.flatnonzero(counts > NOISE_FRACTION * counts.max())
    gaps = low[full[1:]] - high[full[:-1]]  # bone-free distance between consecutive kept bins
    breaks = np.flatnonzero(gaps >= MIN_GAP_MM)
    starts, ends = np.r_[full[0], full[breaks + 1]], np.r_[full[breaks], full[-1]]
    return [(float(low[s]), float(high[e]), float(counts[s:e + 1].sum())) for s, e in zip(starts, ends, strict=True)]


def _two_legs(groups: list[tuple[float, float, float]]) -> tuple[float, float, tuple[Leg, Leg]] | None:
    """(x below the gap, x above it, (left leg, right leg)) when the groups hold two legs, else ``None``.

    The legs are split at the gap that leaves the most voxels on the lighter side."""
    if len(groups) < 2:
        return None
    total = sum(g[2] for g in groups)
    mass = np.cumsum([g[2] for g in groups])
    best = max(range(len(groups) - 1), key=lambda p: min(mass[p], total - mass[p]))
    if min(mass[best], total - mass[best]) < MIN_LEG_FRACTION * total:
        return None
    low = max(groups[:best + 1], key=lambda g: g[2])  # the heaviest group on each side is the leg
    high = max(groups[best + 1:], key=lambda g: g[2])
    # RAS +x is the patient's right: the leg at higher x is the right leg
    legs = (Leg("left", (low[0], low[1])), Leg("right", (high[0], high[1])))
    return groups[best][1], groups[best + 1][0], legs


def _words(text: str) -> list[str]:
    """Upper-case words of a header value: split at non-letters and at camel-case joins ("KneeL" -> KNEE, L)."""
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", str(text))
    text = re.sub(r"([A-Z])([A-Z][a-z])", r"\1 \2", text)
    return [w for w in re.split(r"[^A-Z]+", text.upper()) if w]


def header_side(header: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """``(side, rule)`` from DICOM header values, or ``None`` when they do not say (or contradict themselves).

    ``Laterality`` and ``ImageLaterality`` count when they are "L" or "R"; in ``BodyPartExamined`` and
    ``SeriesDescription`` a word such as LEFT/LT/L/LINKS or RIGHT/RT/R/RECHTS decides, unless both appear.
    """
    for key in HEADER_KEYS:
        value = (header or {}).get(key)
        if value is None or str(value).strip() == "":
            continue
        text = str(value).strip()
        if key in ("Laterality", "ImageLaterality"):
            code = text.upper()
            if code in ("L", "R"):
                return ("left" if code == "L" else "right"), f"header {key}={code}"
            continue
        words = set(_words(text))
        left, right = bool(words & _LEFT_WORDS), bool(words & _RIGHT_WORDS)
        if left != right:
            return ("left" if left else "right"), f"header {key}={text}"
    return None


def dicom_header(meta: Mapping[str, Any]) -> dict[str, str]:
    """The :data:`HEADER_KEYS` values of the first source file of a volume (``meta["dicom_files"]``:
    paths, zip member names with ``meta["dicom_archive"]``, or pydicom datasets); ``{}`` when there is
    no DICOM source or it cannot be read."""
    files = list(meta.get("dicom_files") or [])
    if not files:
        return {}
    import zipfile

    import pydicom

    first = files[0]
    try:
        if isinstance(first, pydicom.Dataset):
            ds = first
        elif meta.get("dicom_archive"):
            with zipfile.ZipFile(meta["dicom_archive"]) as zf, zf.open(str(first)) as fh:
                ds = pydicom.dcmread(fh, stop_before_pixels=True)
        else:
            ds = pydicom.dcmread(str(first), stop_before_pixels=True)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, pydicom.errors.InvalidDicomError):
        return {}
    out = {}
    for key in HEADER_KEYS:
        value = ds.get(key)
        if value is not None and str(value).strip():
            out[key] = str(value).strip()
    return out


def assign_sides(labels: LabelMap, *, header: Mapping[str, Any] | None = None,
                 midline_x: float | None = None) -> Sides:
    """Decide the side of every structure of ``labels`` from the bones (see the module docstring).

    Args:
        labels: an unsided label map (any orientation; RAS affine).
        header: DICOM header values (:data:`HEADER_KEYS`, e.g. from :func:`dicom_header`), used when one
            leg is seen and no midline is known.
        midline_x: a midline hint (RAS x, mm; e.g. the ROI's): used only when consistent with the bones
            (inside the gap between two legs, or beside a single leg).
    """
    scheme = labels.scheme
    names, values = scheme.names, scheme.values
    boxes = structure_boxes(labels.array, max(values, default=0))
    samples = {n: _x_samples(labels, v, boxes[v - 1]) for n, v in zip(names, values, strict=True)}
    legs_names = [n for n in names if n != PELVIS and samples[n][0].size]
    core = [n for n in LEG_CORE if n in legs_names] or legs_names

    def joined(which: list[str]) -> tuple[np.ndarray, np.ndarray]:
        return (np.concatenate([samples[n][0] for n in which] or [np.zeros(0)]),
                np.concatenate([samples[n][1] for n in which] or [np.zeros(0)]))

    pelvis_x, pelvis_w = samples.get(PELVIS, (np.zeros(0), np.zeros(0)))
    pelvis_mid = None
    if pelvis_w.sum() * labels.voxel_volume_mm3 >= MIN_PELVIS_MM3:
        pelvis_mid = float(np.average(pelvis_x, weights=pelvis_w))
    hint = None if midline_x is None else float(midline_x)

    if not core:  # no leg bone: the pelvis alone (split at its centre) or nothing at all
        if pelvis_mid is not None:
            return Sides("midline from pelvis", pelvis_mid, tuple((n, "split") for n in names), "split",
                         midline_from="pelvis")
        rule = "unknown" if any(samples[n][0].size for n in names) else "no bones"  # a pelvis too small to tell
        if hint is not None:
            return Sides(rule, hint, default="split", midline_from="given")
        return Sides(rule, None, default="unknown")

    two = _two_legs(_groups(*joined(core)))
    if two is not None:
        gap_lo, gap_hi, legs = two
        given = hint is not None and gap_lo < hint < gap_hi
        mid = hint if given else (gap_lo + gap_hi) / 2
        return Sides("two legs", mid, tuple((n, "split") for n in names), "split", legs,
                     "given" if given else "gap between the legs")

    # One leg: its x extent is that of all its bones, stray groups (under MIN_LEG_FRACTION) left out.
    groups = _groups(*joined(legs_names))
    total = sum(g[2] for g in groups)
    kept = [g for g in groups if g[2] >= MIN_LEG_FRACTION * total]
    lo, hi = kept[0][0], kept[-1][1]
    centre = (lo + hi) / 2
    side, rule, mid, source = "unknown", "unknown", None, None
    for candidate, name in ((pelvis_mid, "pelvis"), (hint, "given")):
        if candidate is not None and not lo <= candidate <= hi:  # beside the leg, not through it
            side, mid, source = ("right" if centre > candidate else "left"), candidate, name
            rule = "midline from pelvis" if name == "pelvis" else "midline given"
            break
    else:
        from_header = header_side(header)
        if from_header is not None:
            side, rule = from_header
    leg_how = tuple((n, side) for n in names if n != PELVIS)
    pelvis_how = "split" if mid is not None else side  # no midline: the pelvis in view is that side's hip
    structures = leg_how + tuple((n, pelvis_how) for n in names if n == PELVIS)
    return Sides(rule, mid, structures, side, (Leg(side, (lo, hi)),), source)
