"""Virtual subjects and cohorts: the Python API behind ``limbseg synth``.

``synthesize_subject(seed, ...)`` returns the image, the label map and the bone meshes of one
child; ``synthesize_cohort(out_dir, n, seed, ...)`` writes subjects ``seed + i`` (so each
subject is independent of ``n`` and of the number of worker processes)::

    DIR/subjects/<case>/dicom/                 one MR series (uint16)
    DIR/subjects/<case>/masks/<bone>.nii.gz    per-bone masks, both sides
    DIR/subjects/<case>/meshes/<bone>_<side>.ply   LPS mm
    DIR/subjects/<case>/truth/measurements.json    truth morphometrics (limbseg.synth.truth)
    DIR/dataset.json, DIR/imagesTr/<case>_0000.nii.gz, DIR/labelsTr/<case>.nii.gz
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import trimesh

from limbseg.errors import LimbsegError
from limbseg.labels import DEFAULT_SCHEME, merge_masks
from limbseg.synth import anatomy, mri, simulate
from limbseg.synth import distractors as extra_bones
from limbseg.synth.pose import Skeleton, sample_skeleton
from limbseg.synth.ssm import BONES, SIDES
from limbseg.synth.voxel import Grid
from limbseg.volume import LabelMap, Volume

log = logging.getLogger(__name__)
#: Overlapping voxels (a joint touching) go to the first bone listed.
PRIORITY = ("femur", "tibia", "fibula", "pelvis")


@dataclass
class Subject:
    """One virtual child: ``image`` (uint16 Volume), ``labels`` (LabelMap 0-4), per-bone ``masks``
    (bool (I, J, K), both sides), ``meshes`` (``<bone>_<side>`` -> Trimesh in RAS mm), ``info`` and
    ``truth`` (the truth measurements as written to ``truth/measurements.json``; empty if unavailable);
    ``distractors``: the unlabelled bones simulated in the image and in view (name ->
    :class:`limbseg.synth.distractors.Distractor`; empty unless made with ``distractors=True``)."""

    case: str
    seed: int
    image: Volume
    labels: LabelMap
    masks: dict[str, np.ndarray]
    meshes: dict[str, trimesh.Trimesh]
    info: dict[str, Any] = field(default_factory=dict)
    truth: dict[str, Any] = field(default_factory=dict)
    distractors: dict[str, Any] = field(default_factory=dict)


def case_name(seed: int) -> str:
    return f"virtual_{seed:05d}"


def _options(contrast: str, pixel: float, slice_thickness: float, orientation: str,
             matrix: int | None, distractors: bool = False) -> simulate.ScanOptions:
    opts = simulate.ScanOptions(pixel=float(pixel), slice_thickness=float(slice_thickness),
                                orientation=orientation, matrix=matrix, contrast=contrast,
                                distractors=bool(distractors))
    try:
        opts.check()
    except ValueError as exc:
        raise LimbsegError(str(exc)) from exc
    return opts


def bone_masks(meshes: dict[str, trimesh.Trimesh], reference: Volume) -> dict[str, np.ndarray]:
    """Per-bone masks (both sides) by voxelizing the meshes at the reference's voxel centres."""
    from limbseg.data.voxelize import voxelize_mesh

    masks = {}
    for bone in BONES:
        m = np.zeros(reference.shape, bool)
        for side in SIDES:
            m |= voxelize_mesh(meshes[f"{bone}_{side}"], reference)
        masks[bone] = m
    return masks


@dataclass
class SubjectModel:
    """What a subject's image is simulated from: skeleton, body, scan grid, acquisition, the
    distractors (None unless asked for) and the subject's random stream (after the acquisition)."""

    seed: int
    opts: simulate.ScanOptions
    sk: Skeleton
    body: anatomy.Body
    grid: Grid
    acq: mri.Acquisition
    rng: np.random.Generator
    distractors: extra_bones.Distractors | None


def subject_model(seed: int, *, contrast: str = "water", pixel: float = 0.9375, slice_thickness: float = 3.0,
                  orientation: str = "axial", matrix: int | None = None, distractors: bool = False) -> SubjectModel:
    """The model of subject ``seed`` (options as :func:`synthesize_subject`), without its image."""
    opts = _options(contrast, pixel, slice_thickness, orientation, matrix, distractors)
    rng = np.random.default_rng([int(seed), 20240611])
    sk = sample_skeleton(rng)
    body = anatomy.build_body(sk, rng)
    grid = simulate.scan_grid(sk, body, opts)
    acq = mri.sample_acquisition(opts.contrast, rng)
    extra = extra_bones.build(sk, body, extra_bones.distractor_rng(seed)) if opts.distractors else None
    return SubjectModel(int(seed), opts, sk, body, grid, acq, rng, extra)


def synthesize_subject(seed: int, *, contrast: str = "water", pixel: float = 0.9375,
                       slice_thickness: float = 3.0, orientation: str = "axial",
                       matrix: int | None = None, distractors: bool = False) -> Subject:
    """Simulate one child from ``seed`` (deterministic). ``contrast='random'`` draws the tissue
    intensities; the series description follows the contrast. Geometry options as in the CLI.

    ``distractors``: also simulate unlabelled bones (patellae, sacrum and L4-L5, tali, calcanei, and
    in half of the subjects the arms; :mod:`limbseg.synth.distractors`). They are background in the
    labels; the skeleton, labels, masks, meshes and truth are the same as without them (the noise
    and the ``sex`` drawn after it are not), and the ones in view are listed in ``info["distractors"]``."""
    model = subject_model(seed, contrast=contrast, pixel=pixel, slice_thickness=slice_thickness,
                          orientation=orientation, matrix=matrix, distractors=distractors)
    sk, body, grid, acq, rng, extra, opts = (model.sk, model.body, model.grid, model.acq, model.rng,
                                             model.distractors, model.opts)
    array = simulate.simulate_image(sk, body, grid, acq, rng, distractors=extra)
    case = case_name(seed)
    sex = "F" if rng.random() < 0.5 else "M"
    image = Volume(array, grid.affine.copy(), {"description": mri.DESCRIPTIONS[opts.contrast],
                                               "modality": "MR", "source": "limbseg synth"})
    masks = bone_masks(sk.meshes, image)
    labels, _ = merge_masks(masks, DEFAULT_SCHEME, priority=PRIORITY)
    info = {"case": case, "seed": int(seed), "age": round(sk.age, 2), "sex": sex, "contrast": opts.contrast,
            "orientation": opts.orientation, "shape": list(grid.shape),
            "spacing_mm": [round(float(s), 4) for s in grid.spacing],
            "pose": {k: round(float(v), 3) for k, v in sk.info.items()}}
    seen: dict[str, Any] = {}
    if extra is not None:
        seen = {d.name: d for d in extra_bones.in_view(extra, grid)}
        info["distractors"] = extra_bones.describe(list(seen.values()))
        info["arms"] = extra.arms
    return Subject(case, int(seed), image, LabelMap(labels, grid.affine.copy(), {}), masks, sk.meshes, info,
                   truth=_truth(sk, case), distractors=seen)


def _truth(sk: Any, case: str) -> dict[str, Any]:
    """The skeleton's truth measurements as JSON (empty, with a warning, if they cannot be made)."""
    from limbseg.synth.truth import skeleton_truth

    try:
        return skeleton_truth(sk, case).to_json()
    except (ValueError, IndexError, OSError, np.linalg.LinAlgError) as exc:
        log.warning("%s: truth measurements not computed (%s)", case, exc)
        return {}


def write_subject(subject: Subject, out_dir: str | Path) -> None:
    """Write one subject's folder and its dataset case under ``out_dir``."""
    from limbseg.data.prepare import write_dataset_case
    from limbseg.io import write_image
    from limbseg.io.mesh import write_mesh
    from limbseg.synth.dicom_writer import write_mr_series

    root = Path(out_dir) / "subjects" / subject.case
    write_mr_series(subject.image, root / "dicom", case=subject.case, seed=subject.seed,
                    description=subject.image.meta["description"], info=subject.info)
    for bone, mask in subject.masks.items():
        write_image(Volume(mask.astype(np.uint8), subject.image.affine.copy()), root / "masks" / f"{bone}.nii.gz")
    for name, mesh in subject.meshes.items():
        write_mesh(mesh, root / "meshes" / f"{name}.ply", space="LPS")
    if subject.truth:
        from limbseg.io.atomic import atomic_path

        with atomic_path(root / "truth" / "measurements.json") as tmp:
            tmp.write_text(json.dumps(subject.truth, indent=2) + "\n", encoding="utf-8")
    write_dataset_case(out_dir, subject.case, subject.image, subject.labels)


def _make_and_write(args: tuple[int, str, dict[str, Any]]) -> dict[str, Any]:
    seed, out_dir, options = args
    contrast = options.pop("contrast", "water")
    if contrast == "random_mix":
        contrast = mri.CONTRASTS[seed % len(mri.CONTRASTS)]
    subject = synthesize_subject(seed, contrast=contrast, **options)
    write_subject(subject, out_dir)
    return subject.info


def subject_age(seed: int) -> float:
    """The age (years) of subject ``seed`` without simulating it: the first draw of its generator,
    as :func:`limbseg.synth.pose.sample_skeleton` makes it."""
    return float(np.random.default_rng([int(seed), 20240611]).uniform(5.0, 16.0))


def cohort_seeds(n: int, seed: int = 0, ages: tuple[float, float] | None = None) -> list[int]:
    """The seeds of an ``n``-subject cohort: ``seed .. seed + n - 1``, or with ``ages = (lo, hi)`` the
    first ``n`` seeds from ``seed`` upward whose age is in ``[lo, hi)`` (the others are skipped)."""
    if ages is None:
        return [seed + i for i in range(n)]
    lo, hi = (float(a) for a in ages)
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo >= hi or hi <= 5.0 or lo >= 16.0:
        raise LimbsegError(f"the age range must be LO < HI overlapping the cohort's 5-16 years, got {lo:g} {hi:g}")
    seeds: list[int] = []
    candidate = seed
    while len(seeds) < n:
        if lo <= subject_age(candidate) < hi:
            seeds.append(candidate)
        candidate += 1
        if candidate - seed > 1000 * n:
            raise LimbsegError(f"the age range {lo:g}-{hi:g} years is too narrow: under {n} subjects in "
                               f"{1000 * n} seeds")
    return seeds


def synthesize_cohort(out_dir: str | Path, n: int, seed: int = 0, *, jobs: int = 1,
                      progress: Callable[[int, int], None] | None = None, ages: tuple[float, float] | None = None,
                      **options: Any) -> list[dict[str, Any]]:
    """Write ``n`` subjects (seeds ``seed .. seed + n - 1``) and ``dataset.json`` under ``out_dir``.

    ``ages = (lo, hi)`` keeps only children aged ``lo`` to ``hi`` years (:func:`cohort_seeds`: the
    first ``n`` seeds from ``seed`` up whose age is in range; each subject's seed is in its info).

    ``options`` are :func:`synthesize_subject`'s keywords (``distractors=True`` included); ``jobs``
    worker processes share the subjects. ``progress(done, n)`` is called after each subject.
    Returns the subjects' info.
    """
    if n < 1:
        raise LimbsegError(f"the number of subjects must be at least 1, got {n}")
    if jobs < 1:
        raise LimbsegError(f"jobs must be at least 1, got {jobs}")
    _options(options.get("contrast", "water").replace("random_mix", "water"), options.get("pixel", 0.9375),
             options.get("slice_thickness", 3.0), options.get("orientation", "axial"), options.get("matrix"))
    seeds = cohort_seeds(n, seed, ages)
    from limbseg.synth.ssm import ssm_directory

    ssm_directory()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tasks = [(s, str(out), dict(options)) for s in seeds]
    infos: list[dict[str, Any]] = []
    if jobs == 1:
        results = map(_make_and_write, tasks)
    else:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(min(jobs, n))
        results = pool.imap(_make_and_write, tasks)
    for info in results:
        infos.append(info)
        if progress is not None:
            progress(len(infos), n)
    if jobs > 1:
        pool.close()
        pool.join()
    from limbseg.data.prepare import write_dataset_json

    extra: dict[str, Any] = {"source": "limbseg synth (virtual paediatric cohort)", "seed": int(seed),
                             **({"ages": [float(a) for a in ages]} if ages is not None else {}),
                             "subjects": infos, "overlap_rule": f"priority {', '.join(PRIORITY)}"}
    if options.get("distractors"):
        extra["distractors"] = ("unlabelled bones simulated as tissue, label 0: " + ", ".join(extra_bones.KINDS)
                                + f" (arms in {extra_bones.ARMS_PROBABILITY:.0%} of the subjects); per subject in"
                                " subjects[].distractors")
    write_dataset_json(out, DEFAULT_SCHEME, n, extra)
    return infos
