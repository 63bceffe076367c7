"""Truth measurements of a virtual child, from the shape model's own landmark vertices.

The ``articulated-ssm`` package numbers landmark vertices per bone (local numbers; the tibia and
fibula are numbered together, fibula first): the femoral head surface, the most distal points of the condyles
(``med_bot_con``, ``lat_bot_con``), the tibial plateau points (``tib_plateau_lat/med``), the tibial condyles and the
malleolar tips (``malleolus_med_bot`` on the tibia, ``malleolus_lat_bot`` on the fibula). They
index the posed skeleton's vertices directly (:attr:`Skeleton.vertices`), so the landmarks are
exact and independent of any label map. The elements the model does not mark (neck centre, shaft
axis, posterior condylar and plateau lines, malleolar centres, extreme points) are built on the exact meshes with
the constructions of :mod:`limbseg.measure.bones`, and the measurements use the definitions of
:mod:`limbseg.measure.definitions`: truth and measurement share every definition.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from limbseg.measure import bones
from limbseg.measure.api import MeasureResult, assemble
from limbseg.measure.geometry import sphere_fit
from limbseg.synth import ssm
from limbseg.synth.pose import Skeleton

REGIONS_SUBDIR = "coupled_ssm_regions_local"


def _regions_dir() -> Path:
    return ssm.ssm_directory().parents[1] / REGIONS_SUBDIR


def _read_named(path: Path) -> dict[str, int]:
    out = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2:
            out[parts[0]] = int(parts[1])
    return out


@functools.lru_cache(maxsize=2)
def landmark_indices(side: str) -> dict[str, Any]:
    """The model's landmark vertex numbers for one side: femur (local), tibia-fibula (fibula first)
    and the femoral head surface region."""
    root = _regions_dir()
    head = np.loadtxt(root / "femur" / f"femur_head_{side}_verts.txt", dtype=np.int64)
    return {"femur": _read_named(root / "femur" / f"local_landmark_node_nrs_{side}.txt"),
            "tibiafibula": _read_named(root / "tibiafibula" / f"local_landmark_node_nrs_{side}.txt"),
            "femur_head": head}


def leg_truth(sk: Skeleton, side: str) -> tuple[dict[str, np.ndarray], float]:
    """(landmarks RAS mm, femoral head radius mm) of one leg of a skeleton."""
    idx = landmark_indices(side)
    fem = sk.vertices[f"femur_{side}"]
    tf = np.vstack([sk.vertices[f"fibula_{side}"], sk.vertices[f"tibia_{side}"]])
    head, radius = sphere_fit(fem[idx["femur_head"]])
    f, t = idx["femur"], idx["tibiafibula"]
    lm = bones.femur_landmarks(sk.meshes[f"femur_{side}"], head, radius, fem[f["med_bot_con"]],
                               fem[f["lat_bot_con"]], side)
    plateau = 0.5 * (tf[t["tib_plateau_lat"]] + tf[t["tib_plateau_med"]])
    medial = tf[t["condyle_med"]] - tf[t["condyle_lat"]]
    lm.update(bones.tibia_landmarks(sk.meshes[f"tibia_{side}"], sk.meshes[f"fibula_{side}"], plateau,
                                    tf[t["malleolus_med_bot"]],
                                    tf[t["malleolus_lat_bot"]], medial, side))
    lm.update(bones.fibula_landmarks(sk.meshes[f"fibula_{side}"]))
    return lm, radius


def skeleton_truth(sk: Skeleton, case: str | None = None) -> MeasureResult:
    """Truth measurements of both legs (every bone is whole: nothing is incomplete)."""
    landmarks, radii = {}, {}
    for side in ssm.SIDES:
        landmarks[side], radii[side] = leg_truth(sk, side)
    info = {"source": "virtual cohort truth: shape-model landmark vertices on the exact bone meshes",
            "age": round(sk.age, 2), "extra": {s: {"femoral_head_radius_mm": round(r, 3)} for s, r in radii.items()}}
    return assemble(case, landmarks, {}, info)


def truth_labels(seed: int, *, pixel: float = 0.9375, slice_thickness: float = 3.0, orientation: str = "axial",
                 margin_mm: float = 20.0) -> tuple[Any, Skeleton]:
    """(label map, skeleton) of subject ``seed`` without simulating its image.

    The skeleton and scan grid are those of :func:`limbseg.synth.cohort.synthesize_subject` with the
    same seed and geometry; the label map is cropped to the bones (plus ``margin_mm``) on the same
    voxel lattice, so its voxels equal the subject's. For benchmarks and tests of measurement.
    """
    from limbseg.labels import DEFAULT_SCHEME, merge_masks
    from limbseg.synth import anatomy, simulate
    from limbseg.synth.cohort import PRIORITY, bone_masks
    from limbseg.synth.pose import sample_skeleton
    from limbseg.volume import LabelMap, Volume

    opts = simulate.ScanOptions(pixel=float(pixel), slice_thickness=float(slice_thickness), orientation=orientation)
    rng = np.random.default_rng([int(seed), 20240611])
    sk = sample_skeleton(rng)
    body = anatomy.build_body(sk, rng)
    grid = simulate.scan_grid(sk, body, opts)
    verts = np.concatenate([m.vertices for m in sk.meshes.values()])
    ijk = grid.to_index(verts)
    pad = margin_mm / grid.spacing
    lo = np.maximum(np.floor(ijk.min(0) - pad), 0).astype(int)
    hi = np.minimum(np.ceil(ijk.max(0) + pad) + 1, grid.shape).astype(int)
    ref = Volume(np.zeros(tuple(hi - lo), np.uint8), grid.affine).crop(lo, hi)
    ref = Volume(np.zeros(tuple(hi - lo), np.uint8), ref.affine)
    labels, _ = merge_masks(bone_masks(sk.meshes, ref), DEFAULT_SCHEME, priority=PRIORITY)
    return LabelMap(labels, ref.affine.copy(), {}), sk
