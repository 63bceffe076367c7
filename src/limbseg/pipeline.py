"""``segment()``: the one place that knows the whole sequence from a scan to all outputs.

read -> network region (:mod:`limbseg.segmentation.region`: automatic ROI, the whole scan's intensity window) -> crop
(native grid) -> :class:`~limbseg.segmentation.predict.Predictor`
(canonical axial slices, optional flip TTA, fold ensemble, back to the native grid) -> post-processing ->
outputs written into a temporary folder, then moved to ``output_dir`` (nothing partial is left).

Outputs (docs/segment.md): ``labels.nii.gz``, ``labels.json``, ``segmentation.seg.nrrd``,
``segmentation.dcm`` (DICOM input only), ``meshes/<bone>_<side>.<fmt>``, ``statistics.csv``,
``statistics.json``, ``measurements.csv``/``.json`` with ``landmarks_<side>.mrk.json`` (:mod:`limbseg.measure`),
``qc/*.png``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from limbseg.errors import LimbsegError
from limbseg.forking import FORK_AVAILABLE, fork_call
from limbseg.volume import LabelMap, Volume

if TYPE_CHECKING:
    from limbseg.segmentation.sides import Sides

log = logging.getLogger(__name__)
Progress = Callable[[float, str], None]
MESH_FORMATS = ("ply", "stl", "obj")
OUTPUT_PROCESS = FORK_AVAILABLE  # DICOM SEG, meshes, statistics and QC in forked children (see write_outputs)
READ_PROCESS = FORK_AVAILABLE  # read the scan and find the ROI in a forked child while the model loads


@dataclass
class SegmentResult:
    """What :func:`segment` produced: the label map (native grid), statistics rows, files and timings (s)."""

    labels: LabelMap
    statistics: list[dict[str, Any]]
    output_dir: Path
    files: list[Path] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def load_model(model: Any = None) -> Any:
    """A :class:`~limbseg.models.bundle.ModelBundle` from a path, a loaded bundle, or the shipped default."""
    from limbseg.models.bundle import ModelBundle, default_bundle_path, load_bundle

    if isinstance(model, ModelBundle):
        return model
    path = Path(model) if model is not None else default_bundle_path()
    if model is None and not (path / "model.json").is_file():
        raise LimbsegError("the default model is not installed (pass --model BUNDLE)", path)
    if not path.exists():
        raise LimbsegError("no such model bundle", path)
    return load_bundle(path)


def preload_output_modules() -> None:
    """Import what :func:`write_outputs` needs (about 1.5 s of imports) in a background thread.

    :func:`segment` starts it before inference, whose convolutions release the GIL, so the imports no
    longer sit on the single-threaded path after it. Importing twice is safe (Python's import locks).
    """
    import threading

    def run() -> None:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import highdicom.seg  # noqa: F401
            import matplotlib.pyplot  # noqa: F401

            import limbseg.export.dicom_seg  # noqa: F401
            import limbseg.export.meshes  # noqa: F401
            import limbseg.export.qc  # noqa: F401
            import limbseg.export.seg_nrrd  # noqa: F401
            import limbseg.export.statistics  # noqa: F401
        except Exception:  # noqa: BLE001 - only a warm-up: write_outputs imports (and reports) for real
            log.debug("preloading the output modules failed", exc_info=True)

    threading.Thread(target=run, name="limbseg-preload", daemon=True).start()


def write_outputs(
    image: Volume, labels: LabelMap, directory: Path, *, formats: Sequence[str] = ("ply",),
    midline_x: float | None = None, extra_json: dict[str, Any] | None = None, sides: Sides | None = None,
) -> tuple[list[Path], list[dict[str, Any]]]:
    """Write every output file for one scan into ``directory`` (which must exist).

    ``sides`` (a :class:`~limbseg.segmentation.sides.Sides`) says which side each bone is on; default:
    decided from the bones and the DICOM header, ``midline_x`` a hint. ``labels.json`` records it.

    Four independent groups run in parallel: the label files; the DICOM SEG; meshes -> mesh picture; and
    statistics -> slice pictures. The last three run in forked child processes where fork is available
    (:data:`OUTPUT_PROCESS`), else all four run in threads.

    Returns:
        (files written, statistics rows).
    """
    if sides is None:
        from limbseg.segmentation.sides import assign_sides, dicom_header

        sides = assign_sides(labels, header=dicom_header(image.meta), midline_x=midline_x)

    def label_files() -> list[Path]:
        from limbseg.export.seg_nrrd import write_seg_nrrd
        from limbseg.io import write_image

        files = [write_image(labels, directory / "labels.nii.gz")]
        doc = {**labels.scheme.to_json(), "sides": sides.to_json(), **(extra_json or {})}
        (directory / "labels.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        return [*files, directory / "labels.json", write_seg_nrrd(labels, directory / "segmentation.seg.nrrd")]

    def dicom_seg() -> list[Path]:
        if not image.meta.get("dicom_files"):
            return []
        from limbseg.export.dicom_seg import write_dicom_seg
        from limbseg.io.dicom import read_source_datasets

        try:
            sources = read_source_datasets(image.meta, stop_before_pixels=True)
            return [write_dicom_seg(labels, sources, directory / "segmentation.dcm")]
        except (ValueError, AttributeError, TypeError, KeyError) as exc:  # a source quirk highdicom refuses
            log.warning("DICOM SEG not written: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return []

    def meshes() -> list[Path]:
        from limbseg.export.meshes import export_meshes
        from limbseg.export.qc import mesh_render

        shapes = export_meshes(labels, directory / "meshes", formats=tuple(formats), sides=sides)
        files = sorted((directory / "meshes").iterdir())
        if shapes:
            (directory / "qc").mkdir(exist_ok=True)
            files.append(mesh_render(shapes, labels, directory / "qc" / "meshes.png"))
        return files

    def measurements() -> tuple[list[Path], list[dict[str, Any]]]:
        from limbseg.export.qc import write_qc
        from limbseg.export.statistics import compute_statistics, write_statistics

        rows = compute_statistics(labels, image, sides=sides)
        files = write_statistics(rows, directory, sides=sides)
        return files + write_qc(image, labels, {}, directory / "qc"), rows

    def morphometrics() -> list[Path]:
        from limbseg.measure import measure_labels, write_measurements

        try:
            return write_measurements(measure_labels(labels, midline_x=measure_midline(sides, labels)), directory)
        except (ValueError, np.linalg.LinAlgError) as exc:  # a label map measure cannot read: say so, go on
            log.warning("measurements not written: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return []

    # Only the label files (zlib, which releases the GIL) are written here. The other groups are Python-heavy
    # (highdicom, trimesh, matplotlib): as threads they would take turns holding the GIL, so where fork is
    # available each runs in a child process that inherits the arrays copy-on-write.
    groups = [label_files, dicom_seg, meshes, measurements, morphometrics]
    if OUTPUT_PROCESS:
        children = [fork_call(group, f"limbseg-{group.__name__}") for group in groups[1:]]
        try:
            results = [label_files()] + [child.result() for child in children]
        finally:
            for child in children:
                child.cancel()
    else:
        with ThreadPoolExecutor(max_workers=len(groups)) as pool:
            results = [job.result() for job in [pool.submit(group) for group in groups]]
    label_paths, seg_paths, mesh_paths, (table_paths, rows), measure_paths = results
    return [*label_paths, *seg_paths, *mesh_paths, *table_paths, *measure_paths], rows


def measure_midline(sides: Sides, labels: LabelMap) -> float | None:
    """The midline for :func:`limbseg.measure.measure_labels` that puts each leg on its decided side: the
    sides' midline; for one leg of known side, a line beside it on the other side; else None (estimated)."""
    if sides.midline_x is not None:
        return float(sides.midline_x)
    if len(sides.legs) == 1 and sides.legs[0].side in ("left", "right"):
        lo, hi = sides.legs[0].x_mm
        return float(lo) - 1000.0 if sides.legs[0].side == "right" else float(hi) + 1000.0
    return None


def _has_locator(model: Any) -> bool:
    """Whether the bundle (path, loaded bundle or the default) has a coarse 3D stage; reads model.json only."""
    from limbseg.models.bundle import ModelBundle, default_bundle_path

    if isinstance(model, ModelBundle):
        return model.locator_state is not None
    try:
        path = Path(model) if model is not None else default_bundle_path()
        return json.loads((path / "model.json").read_text(encoding="utf-8")).get("locator") is not None
    except (OSError, ValueError, AttributeError):
        return False  # the model loader reports what is wrong with the bundle


def _load_predictor(model: Any, device: str) -> tuple[Any, Any]:
    """(bundle, Predictor) for ``segment``: the model loaded (or taken as given) and built on ``device``."""
    from limbseg.segmentation.predict import Predictor

    bundle = load_model(model)
    return bundle, Predictor(bundle, device=device)


def segment(
    input: str | Path,  # noqa: A002 - the API's documented name
    output_dir: str | Path,
    *,
    model: Any = None,
    series_uid: str | None = None,
    device: str = "auto",
    tta: bool = False,
    postprocess: bool = True,
    formats: Sequence[str] = ("ply",),
    roi_start_mm: float | None = None,
    roi_end_mm: float | None = None,
    progress: Progress | None = None,
) -> SegmentResult:
    """Segment one scan and write all outputs into ``output_dir`` (see the module docstring).

    Args:
        input: DICOM folder or zip, NIfTI or NRRD file.
        output_dir: created or replaced only once everything is written.
        model: bundle folder or loaded ModelBundle (default: the shipped model).
        series_uid: which DICOM series to read (default: the largest MR series).
        device: "auto", "cpu", "cuda" or "mps".
        tta: also predict the left-right mirrored slices and average.
        postprocess: the study's per-slice cleaning + largest component per bone and side.
        formats: mesh formats among "ply", "stl", "obj".
        roi_start_mm, roi_end_mm: hand-set limits along RAS z (mm), overriding the automatic ROI.
        progress: optional callable(fraction in [0, 1], message).
    """
    from limbseg.io import read_image
    from limbseg.io.atomic import atomic_dir
    from limbseg.segmentation.postprocess import postprocess as clean
    from limbseg.segmentation.region import body_window, find_region

    report = progress or (lambda fraction, message: None)
    bad = [f for f in formats if f not in MESH_FORMATS]
    if bad:
        raise LimbsegError(f"unknown mesh format {', '.join(bad)} (choose from {', '.join(MESH_FORMATS)})")
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise LimbsegError("output exists and is not a folder", output_dir)
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    # The network library's import and the model's construction (seconds, in a thread) overlap reading the
    # scan and finding the ROI, which run in a forked child where possible: they are Python-heavy, so as a
    # thread beside the imports they would wait for the GIL. The child is forked before the thread starts.
    def read_and_find_roi() -> tuple[Volume, Any, float]:
        image = read_image(input, series_uid=series_uid)
        seconds = time.perf_counter() - t0
        if _has_locator(model):  # located in this process once the model is loaded: no torch in a forked child
            return image, None, seconds
        return image, find_region(image, start_mm=roi_start_mm, end_mm=roi_end_mm), seconds

    reading = fork_call(read_and_find_roi, "limbseg-read") if READ_PROCESS else None
    loader = ThreadPoolExecutor(max_workers=1)
    loading = loader.submit(_load_predictor, model, device)
    loader.shutdown(wait=False)
    report(0.02, "reading")
    try:
        image, region, t["read"] = reading.result() if reading is not None else read_and_find_roi()
    finally:
        if reading is not None:
            reading.cancel()
    t["roi"] = time.perf_counter() - t0 - sum(t.values())
    bundle, predictor = loading.result()
    t["load_model"] = time.perf_counter() - t0 - sum(t.values())  # the wait left after reading
    if region is None:  # the bundle's coarse 3D stage finds the region (about 1.5 s)
        region = find_region(image, start_mm=roi_start_mm, end_mm=roi_end_mm,
                             normalisation=predictor.preprocessing.get("normalisation"), locator=predictor.locator)
        t["locate"] = time.perf_counter() - t0 - sum(t.values())
    roi = region.roi
    norm = predictor.preprocessing.get("normalisation", {})
    percentiles = (float(norm.get("lower", 0.5)), float(norm.get("upper", 99.5)))
    if percentiles != (0.5, 99.5):  # find_region used the default percentiles
        region.window = body_window(image, *percentiles)
    report(0.1, "segmenting")
    preload_output_modules()
    labels = predictor.predict_scan(image, region, lambda f, m: report(0.1 + 0.7 * f, m), tta=tta)
    labels = LabelMap(labels.array, image.affine.copy(), {}, scheme=predictor.scheme)
    t["inference"] = time.perf_counter() - t0 - sum(t.values())
    from limbseg.segmentation.sides import assign_sides, dicom_header

    # sides from the bones; the ROI's midline is a hint only when the ROI saw two legs (not set by hand)
    sides = assign_sides(labels, header=dicom_header(image.meta),
                         midline_x=roi.midline_x_mm if roi.crotch_z_mm is not None else None)
    if postprocess:
        labels = clean(labels, sides=sides)
    t["postprocess"] = time.perf_counter() - t0 - sum(t.values())
    report(0.85, "writing outputs")
    extra = {"model": bundle.name, "roi": roi.to_json(), "postprocess": postprocess, "tta": tta,
             "source": image.meta.get("source"), "sides": sides.to_json()}
    with atomic_dir(output_dir) as tmp:
        files, rows = write_outputs(image, labels, tmp, formats=formats, sides=sides, extra_json=extra)
        files = [output_dir / f.relative_to(tmp) for f in files]
    t["outputs"] = time.perf_counter() - t0 - sum(t.values())
    t["total"] = time.perf_counter() - t0
    report(1.0, "done")
    return SegmentResult(labels, rows, output_dir, files, t)


def segment_many(inputs: Sequence[str | Path], output_root: str | Path, *, progress: Progress | None = None,
                 **options: Any) -> list[SegmentResult]:
    """Segment several scans in turn into ``output_root/<input name>``; one progress for all.

    The model is loaded once. Options are those of :func:`segment`.
    """
    options["model"] = load_model(options.get("model"))
    names = [_output_name(p) for p in inputs]
    if len(set(names)) != len(names):
        raise LimbsegError("two inputs have the same name; segment them into separate folders")
    results = []
    n = len(inputs)
    for idx, (path, name) in enumerate(zip(inputs, names, strict=True)):
        def sub(f: float, m: str, idx: int = idx, name: str = name) -> None:
            if progress:
                progress((idx + f) / n, f"{name}: {m}")

        results.append(segment(path, Path(output_root) / name, progress=sub, **options))
    return results


def _output_name(path: str | Path) -> str:
    name = Path(path).name
    for ext in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".zip"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name
