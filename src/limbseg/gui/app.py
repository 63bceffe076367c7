"""The GUI's FastAPI application: a static page (NiiVue viewer) over a small JSON API.

Routes (all JSON unless said otherwise):

* ``GET /`` the page; ``/static/...`` its assets (``static/vendor/niivue.umd.js`` from npm).
* ``GET /api/info`` version, limits, whether the viewer bundle is installed.
* ``GET /api/jobs[?kind=]``, ``GET /api/jobs/{id}`` job states (from disk).
* ``GET /api/jobs/{id}/files/{path}`` a file of the job (``output/``, ``view/``, ``run/``, ``dataset/``, zip).
* Segment, prepare, train and models routes: :mod:`limbseg.gui.routes_segment`,
  :mod:`limbseg.gui.routes_workflows`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from limbseg import __version__
from limbseg.errors import LimbsegError
from limbseg.gui.jobs import JobStore
from limbseg.gui.security import BodySizeLimitMiddleware, HostOriginMiddleware, safe_child
from limbseg.gui.services import Services

STATIC_DIR = Path(__file__).parent / "static"
DEFAULT_ALLOWED_HOSTS = ("127.0.0.1", "localhost", "[::1]")
#: Top-level entries of a job folder that may be served.
SERVED_TOP = ("output", "view", "run", "dataset", "limbseg-outputs.zip")


class GuiState:
    """What the routes share: the job store, the services and the model folders."""

    def __init__(self, workdir: Path, services: Services, models_dirs: Sequence[Path] | None,
                 max_upload_mb: float) -> None:
        self.workdir = workdir
        self.jobs = JobStore(workdir)
        self.services = services
        self.extra_models_dirs = [Path(p) for p in models_dirs] if models_dirs is not None else None
        self.max_upload_mb = max_upload_mb

    def models_dirs(self) -> list[Path]:
        """Bundle folders: the configured ones (default: the shipped model's) + finished training runs."""
        dirs = list(self.extra_models_dirs) if self.extra_models_dirs is not None else \
            self.services.default_models_dirs()
        for job in self.jobs.list("train"):
            if job.get("state") == "done":
                dirs.append(self.jobs.root / job["id"] / "run")
        return dirs

    def models(self) -> list[dict[str, Any]]:
        """list_bundles over every model folder, each row with a stable ``id`` (hash of its path)."""
        rows: list[dict[str, Any]] = []
        seen = set()
        for directory in self.models_dirs():
            if not directory.is_dir():
                continue
            try:
                found = self.services.list_bundles(directory)
            except LimbsegError:
                continue
            for row in found:
                path = str(Path(row.get("path", "")).resolve())
                if path in seen:
                    continue
                seen.add(path)
                rows.append({**row, "path": path, "id": hashlib.sha1(path.encode()).hexdigest()[:16]})
        return rows

    def model_path(self, model_id: str | None) -> Path | None:
        """The bundle chosen by id; None (the default model) when no id is given."""
        if not model_id:
            return None
        for row in self.models():
            if row["id"] == model_id:
                return Path(row["path"])
        raise LimbsegError(f"unknown model id {model_id!r} (reload the Models tab)")


def create_app(
    workdir: str | Path,
    *,
    max_upload_mb: float = 2048,
    allowed_hosts: Sequence[str] = DEFAULT_ALLOWED_HOSTS,
    models_dirs: Sequence[str | Path] | None = None,
    services: Services | None = None,
    **service_overrides: Any,
) -> FastAPI:
    """Build the GUI app over ``workdir`` (job folders live in ``workdir/jobs``).

    Args:
        workdir: folder for job folders; created if missing.
        max_upload_mb: largest request body accepted (MiB); larger uploads get HTTP 413.
        allowed_hosts: host names the ``Host`` header may carry (any port); ``"*"`` allows all.
        models_dirs: folders searched for model bundles (default: the shipped model's folder);
            finished training runs are always added.
        services / service_overrides: replace library calls, e.g. ``segment=fake`` in tests
            (names: the fields of :class:`~limbseg.gui.services.Services`).
    """
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    services = services or Services()
    for name, fn in service_overrides.items():
        name = name.removesuffix("_fn")
        if not hasattr(services, name):
            raise TypeError(f"unknown service {name!r}")
        setattr(services, name, fn)
    state = GuiState(workdir, services, [Path(p) for p in models_dirs] if models_dirs is not None else None,
                     max_upload_mb)
    app = FastAPI(title="limbseg", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.gui = state
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=int(max_upload_mb * 2**20))
    app.add_middleware(HostOriginMiddleware, allowed_hosts=allowed_hosts)

    @app.exception_handler(LimbsegError)
    async def _limbseg_error(request: Request, exc: LimbsegError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_message(exc)}, status_code=422)

    _common_routes(app, state)
    from limbseg.gui import routes_segment, routes_workflows

    routes_segment.register(app, state)
    routes_workflows.register(app, state)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def validation_message(exc: RequestValidationError) -> str:
    """One line naming each invalid field and why, without echoing the values sent (FastAPI's default answer
    repeats them, and a NaN or an infinity there made the answer itself fail: HTTP 500)."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "form"))
        parts.append(f"{where or 'request'}: {err.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts)[:500]


def _common_routes(app: FastAPI, state: GuiState) -> None:
    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        return {
            "version": __version__,
            "max_upload_mb": state.max_upload_mb,
            "viewer": (STATIC_DIR / "vendor" / "niivue.umd.js").is_file(),
        }

    @app.get("/api/jobs")
    def list_jobs(kind: str | None = None) -> list[dict[str, Any]]:
        return state.jobs.list(kind)

    @app.get("/api/jobs/{job_id}")
    def get_job(job_id: str) -> dict[str, Any]:
        return state.jobs.get(job_id)

    @app.get("/api/jobs/{job_id}/files/{path:path}")
    def job_file(job_id: str, path: str) -> FileResponse:
        job_dir = state.jobs.dir(job_id).resolve()
        target = safe_child(job_dir, path)
        if target.relative_to(job_dir).parts[0] not in SERVED_TOP:
            raise HTTPException(404, "no such file")
        return FileResponse(target, filename=target.name)
