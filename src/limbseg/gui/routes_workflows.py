"""Prepare, Train and Models tabs.

* ``POST /api/prepare/manifest`` (multipart ``manifest``: CSV with absolute paths, as for
  ``limbseg prepare``) or ``POST /api/prepare/cases`` (multipart ``scans`` + ``masks`` with
  ``mask_case``/``mask_structure``) -> a prepare job writing ``dataset/`` via
  :func:`limbseg.data.prepare.prepare`; ``GET /api/jobs/{id}/dataset`` lists its cases.
* ``GET /api/datasets``: finished prepare jobs + ``WORKDIR/datasets/<name>/dataset.json``.
* ``POST /api/train`` -> a training job (:func:`limbseg.training.train`) writing ``run/``;
  ``GET /api/jobs/{id}/history``: ``run/history.csv`` rows and ``run/summary.json``.
* ``GET /api/models``, ``GET /api/models/{id}``: bundles (:func:`limbseg.models.bundle.list_bundles`).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from fastapi import FastAPI, File, Form, HTTPException, UploadFile
from pydantic import BaseModel, Field

from limbseg.errors import LimbsegError
from limbseg.gui.routes_segment import save_uploads
from limbseg.gui.security import check_name, upload_suffix
from limbseg.gui.services import prepare_rows, to_jsonable


class TrainRequest(BaseModel):
    dataset_id: str
    encoder: str = "resnet34"
    folds: str | None = None          # None, "loo" or an integer as text
    epochs: int = Field(10, ge=1, le=10_000)
    batch_size: int = Field(8, ge=1, le=512)
    image_size: int | None = Field(None, ge=32, le=1024)
    init_from: str | None = None      # a model id from /api/models


def register(app: FastAPI, state: Any) -> None:
    _prepare_routes(app, state)
    _train_routes(app, state)
    _model_routes(app, state)


# --- prepare -------------------------------------------------------------------------------
def _submit_prepare(state: Any, job_id: str, manifest: Path) -> dict[str, Any]:
    def run(job_dir: Path, progress: Any) -> dict[str, Any]:
        report = to_jsonable(state.services.prepare(manifest, job_dir / "dataset", progress))
        return {"report": report, "checks": prepare_rows(report)}

    return state.jobs.submit(job_id, run)


def _prepare_routes(app: FastAPI, state: Any) -> None:
    jobs = state.jobs

    @app.post("/api/prepare/manifest")
    async def prepare_manifest(manifest: UploadFile = File(...)) -> dict[str, Any]:  # noqa: B008
        job = jobs.create("prepare", source="manifest")
        (path,) = await save_uploads([manifest], jobs.dir(job["id"]) / "input", prefix="manifest")
        return _submit_prepare(state, job["id"], path)

    @app.post("/api/prepare/cases")
    async def prepare_cases(
        scans: list[UploadFile] = File(...),  # noqa: B008
        masks: list[UploadFile] = File(...),  # noqa: B008
        mask_case: list[int] = Form(...),  # noqa: B008
        mask_structure: list[str] = Form(...),  # noqa: B008
    ) -> dict[str, Any]:
        if not (len(masks) == len(mask_case) == len(mask_structure)):
            raise HTTPException(400, "each mask needs a case number and a structure name")
        if any(not 0 <= c < len(scans) for c in mask_case):
            raise HTTPException(400, "a mask refers to a case that was not uploaded")
        structures = sorted({check_name(s, "structure name") for s in mask_structure})
        job = jobs.create("prepare", source="upload", cases=len(scans))
        cases_dir = jobs.dir(job["id"]) / "input" / "cases"
        rows: list[dict[str, str]] = []
        for n, scan in enumerate(scans):
            case = f"case_{n + 1:03d}"
            (path,) = await save_uploads([scan], cases_dir / case, prefix="scan")
            rows.append({"id": case, "scan": str(path.resolve())})
        for upload, c, name in zip(masks, mask_case, mask_structure, strict=True):
            target = cases_dir / rows[c]["id"] / f"{name}{upload_suffix(upload.filename)}"
            (saved,) = await save_uploads([upload], target.parent, prefix=f"tmp_{name}")
            saved.replace(target)
            rows[c][name] = str(target.resolve())
        manifest = cases_dir.parent / "manifest.csv"
        with manifest.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["id", "scan", *structures])
            writer.writeheader()
            writer.writerows(rows)
        return _submit_prepare(state, job["id"], manifest)

    @app.get("/api/jobs/{job_id}/dataset")
    def dataset_cases(job_id: str) -> dict[str, Any]:
        root = jobs.dir(job_id) / "dataset"
        return {"cases": _dataset_cases(root, "dataset"), "dataset": _read_json(root / "dataset.json")}

    @app.get("/api/datasets")
    def datasets() -> list[dict[str, Any]]:
        return [{k: v for k, v in d.items() if k != "path"} for d in _datasets(state)]


def _dataset_cases(root: Path, url_prefix: str) -> list[dict[str, str]]:
    cases = []
    for image in sorted((root / "imagesTr").glob("*_0000.nii.gz")):
        case = image.name.removesuffix("_0000.nii.gz")
        label = root / "labelsTr" / f"{case}.nii.gz"
        cases.append({"case": case, "image": f"{url_prefix}/imagesTr/{image.name}",
                      "label": f"{url_prefix}/labelsTr/{label.name}" if label.is_file() else ""})
    return cases


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _datasets(state: Any) -> list[dict[str, Any]]:
    rows = []
    for job in state.jobs.list("prepare"):
        path = state.jobs.root / job["id"] / "dataset"
        if job.get("state") == "done" and (path / "dataset.json").is_file():
            rows.append({"id": f"job:{job['id']}", "name": f"prepared {_date(job)}", "path": path,
                         "cases": len(list((path / "imagesTr").glob("*_0000.nii.gz")))})
    for path in sorted((state.workdir / "datasets").glob("*/dataset.json")):
        rows.append({"id": f"dir:{path.parent.name}", "name": path.parent.name, "path": path.parent,
                     "cases": len(list((path.parent / "imagesTr").glob("*_0000.nii.gz")))})
    return rows


def _date(job: dict[str, Any]) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M", time.localtime(job.get("created", 0)))


# --- train ---------------------------------------------------------------------------------
def _train_routes(app: FastAPI, state: Any) -> None:
    jobs = state.jobs

    @app.post("/api/train")
    def start_training(request: TrainRequest) -> dict[str, Any]:
        found = {d["id"]: d["path"] for d in _datasets(state)}
        if request.dataset_id not in found:
            raise HTTPException(400, "unknown dataset (prepare one first, or put it in WORKDIR/datasets)")
        options: dict[str, Any] = {"encoder": request.encoder, "epochs": request.epochs,
                                   "batch_size": request.batch_size}
        if request.folds:
            options["folds"] = "loo" if request.folds == "loo" else _int(request.folds, "folds")
        if request.image_size:
            options["image_size"] = request.image_size
        if request.init_from:
            options["init_from"] = state.model_path(request.init_from)
        dataset = found[request.dataset_id]
        job = jobs.create("train")

        def run(job_dir: Path, progress: Any) -> dict[str, Any]:
            result = state.services.train(dataset, job_dir / "run", options, progress)
            return {"summary": to_jsonable(getattr(result, "summary", None))}

        return jobs.submit(job["id"], run, dataset=request.dataset_id, **to_jsonable(options))

    @app.get("/api/jobs/{job_id}/history")
    def history(job_id: str) -> dict[str, Any]:
        run = jobs.dir(job_id) / "run"
        rows: list[dict[str, Any]] = []
        if (run / "history.csv").is_file():
            with (run / "history.csv").open(newline="") as f:
                rows = [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]
        return {"history": rows, "summary": _read_json(run / "summary.json"),
                "curves": (run / "curves.png").is_file()}


def _int(text: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise LimbsegError(f"{what} must be an integer or 'loo'") from None
    if value < 2:
        raise LimbsegError(f"{what} must be at least 2")
    return value


def _number(value: str | None) -> Any:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return value


# --- models --------------------------------------------------------------------------------
def _model_routes(app: FastAPI, state: Any) -> None:
    @app.get("/api/models")
    def models() -> list[dict[str, Any]]:
        return to_jsonable(state.models())

    @app.get("/api/models/{model_id}")
    def model_card(model_id: str) -> dict[str, Any]:
        path = state.model_path(model_id)
        card = _read_json(path / "model.json") if path else None
        if card is None:
            raise HTTPException(404, "no model card")
        return card
