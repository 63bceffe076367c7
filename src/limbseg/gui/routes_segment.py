"""Segment tab: upload a scan, pick a series, run :func:`limbseg.pipeline.segment`, serve the outputs.

* ``POST /api/segment/upload`` (multipart ``files``): a zip of a DICOM folder, several DICOM files,
  or one NIfTI/NRRD/MetaImage file -> a new job with its series list.
* ``POST /api/jobs/{id}/segment`` (JSON ``series_uid``, ``model_id``, ``tta``, ``roi_start_mm``, ``roi_end_mm``) -> runs in the background.
* ``GET /api/jobs/{id}/outputs.zip`` every output in one zip.

A finished job's result holds the statistics rows and the measurements rows (per side: name, value,
unit, or ``incomplete`` with the reason; from ``output/measurements.json``), shown side by side.

Uploaded files are stored as ``upload/file_000.<ext>`` (never under their own names); a zip is
extracted with :func:`limbseg.io.archive.safe_extract` (entry count, size, ratio and path checks).
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

from fastapi import FastAPI, File, HTTPException, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel

from limbseg.errors import LimbsegError
from limbseg.gui.jobs import job_relative
from limbseg.gui.security import upload_suffix
from limbseg.gui.services import measurement_rows, series_rows, to_jsonable

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
ZIP_NAME = "limbseg-outputs.zip"


class SegmentRequest(BaseModel):
    series_uid: str | None = None
    model_id: str | None = None
    tta: bool = False
    roi_start_mm: float | None = None
    roi_end_mm: float | None = None


async def save_uploads(files: list[UploadFile], folder: Path, prefix: str = "file") -> list[Path]:
    """Copy uploads to ``folder/<prefix>_000<ext>`` ...; the client's file names are discarded."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, upload in enumerate(files):
        path = folder / f"{prefix}_{n:03d}{upload_suffix(upload.filename)}"
        with path.open("wb") as out:
            while chunk := await upload.read(1 << 20):
                out.write(chunk)
        paths.append(path)
    return paths


def arrange_scan(paths: list[Path], job_dir: Path, state: Any) -> Path:
    """Turn saved uploads into one scan input: a volume file or a DICOM folder ``input/scan``."""
    scan_dir = job_dir / "input" / "scan"
    if not paths:
        raise LimbsegError("no file uploaded")
    if len(paths) == 1 and paths[0].name.endswith(".zip"):
        if not zipfile.is_zipfile(paths[0]):
            raise LimbsegError("the uploaded .zip is not a valid zip archive")
        scan_dir.mkdir(parents=True)
        state.services.safe_extract(paths[0], scan_dir)
        paths[0].unlink()
        return scan_dir
    if len(paths) == 1 and paths[0].name.endswith(VOLUME_SUFFIXES):
        target = job_dir / "input" / ("scan" + upload_suffix(paths[0].name))
        target.parent.mkdir(parents=True, exist_ok=True)
        paths[0].replace(target)
        return target
    if any(not p.name.endswith(".dcm") for p in paths):
        raise LimbsegError("upload either one zip, one NIfTI/NRRD file, or several DICOM files")
    scan_dir.mkdir(parents=True)
    for p in paths:
        p.replace(scan_dir / p.name)
    return scan_dir


def register(app: FastAPI, state: Any) -> None:
    jobs = state.jobs

    @app.post("/api/segment/upload")
    async def upload_scan(files: list[UploadFile] = File(...)) -> dict[str, Any]:  # noqa: B008
        job = jobs.create("segment")
        job_dir = jobs.dir(job["id"])
        try:
            paths = await save_uploads(files, job_dir / "upload")
            scan = arrange_scan(paths, job_dir, state)
            series = series_rows(state.services.list_series(scan)) if scan.is_dir() else []
        except LimbsegError as exc:
            shutil.rmtree(job_dir, ignore_errors=True)
            raise HTTPException(400, job_relative(str(exc), job_dir)) from None
        shutil.rmtree(job_dir / "upload", ignore_errors=True)
        scan_rel = str(scan.relative_to(job_dir))
        return jobs.update(job["id"], params={"scan": scan_rel, "series": series, "n_files": len(files)})

    @app.post("/api/jobs/{job_id}/segment")
    def run_segment(job_id: str, request: SegmentRequest) -> dict[str, Any]:
        job = jobs.get(job_id)
        if job["kind"] != "segment" or "scan" not in job["params"]:
            raise HTTPException(400, "this job has no uploaded scan")
        model = state.model_path(request.model_id)
        fn = _segment_job(state, job["params"]["scan"], request, model)
        return jobs.submit(job_id, fn, series_uid=request.series_uid, model=str(model) if model else "default",
                           tta=request.tta)

    @app.get("/api/jobs/{job_id}/outputs.zip")
    def outputs_zip(job_id: str) -> FileResponse:
        path = jobs.dir(job_id) / ZIP_NAME
        if not path.is_file():
            raise HTTPException(404, "no outputs yet")
        return FileResponse(path, filename=ZIP_NAME, media_type="application/zip")


def _segment_job(state: Any, scan_rel: str, request: SegmentRequest, model: Path | None) -> Any:
    def run(job_dir: Path, progress: Any) -> dict[str, Any]:
        from limbseg.io import read_image, write_image

        scan = job_dir / scan_rel
        progress(0.01, "reading the scan for the viewer")
        volume = read_image(scan, series_uid=request.series_uid)
        write_image(volume, job_dir / "view" / "scan.nii.gz")
        del volume
        output = job_dir / "output"
        if output.exists():
            shutil.rmtree(output)
        result = state.services.segment(  # a LimbsegError fails the job (its message relative to job_dir)
            scan, output, model=model, series_uid=request.series_uid, tta=request.tta,
            roi_start_mm=request.roi_start_mm, roi_end_mm=request.roi_end_mm,
            progress=lambda f, m="", *a, **k: progress(0.05 + 0.9 * float(f), m),
        )
        progress(0.96, "packing the outputs")
        meshes = _ras_meshes(output, job_dir / "view" / "meshes")
        files = sorted(str(p.relative_to(job_dir)) for p in output.rglob("*") if p.is_file())
        _zip_folder(output, job_dir / ZIP_NAME)
        statistics = getattr(result, "statistics", None)
        if statistics is None and (output / "statistics.json").is_file():
            statistics = json.loads((output / "statistics.json").read_text())
        labels = json.loads((output / "labels.json").read_text()) if (output / "labels.json").is_file() else None
        measured = output / "measurements.json"
        measurements = measurement_rows(json.loads(measured.read_text())) if measured.is_file() else []
        return {"files": files, "meshes": meshes, "statistics": to_jsonable(statistics),
                "measurements": measurements, "labels": labels,
                "timings": to_jsonable(getattr(result, "timings", {}))}

    return run


def _ras_meshes(output: Path, view_dir: Path) -> list[dict[str, str]]:
    """Copies of ``output/meshes/*.ply`` in RAS mm for NiiVue (the outputs are LPS mm, for 3D Slicer).

    LPS -> RAS negates x and y: a rotation by 180 degrees about z, so face winding is unchanged.
    """
    import trimesh

    rows = []
    view_dir.mkdir(parents=True, exist_ok=True)
    for ply in sorted((output / "meshes").glob("*.ply")):
        mesh = trimesh.load(ply, process=False, force="mesh")
        mesh.vertices = mesh.vertices * [-1.0, -1.0, 1.0]
        target = view_dir / ply.name
        target.write_bytes(mesh.export(file_type="ply"))
        rows.append({"name": ply.stem, "url": f"view/meshes/{ply.name}"})
    return rows


def _zip_folder(folder: Path, zip_path: Path) -> None:
    from limbseg.io.atomic import atomic_path

    with atomic_path(zip_path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(folder).as_posix())
