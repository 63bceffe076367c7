"""Background jobs of the GUI: one folder per job, state as JSON on disk.

Layout: ``WORKDIR/jobs/<id>/job.json`` plus whatever the job writes (``input/``, ``output/`` ...).
The id is 128 random bits in hex, so two tabs or two users never share a folder and ids cannot be
guessed. The state file is rewritten atomically at every change, so a page reload, a new tab or a
new app instance over the same work dir finds the job. A failed job keeps the one-line
:class:`~limbseg.errors.LimbsegError` message, exactly as the CLI would print it, with the job's files named
relative to the job folder (:func:`job_relative`), whatever kind of job failed.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import HTTPException

from limbseg.errors import LimbsegError
from limbseg.gui.security import check_job_id
from limbseg.io.atomic import atomic_path

log = logging.getLogger("limbseg.gui")


def job_relative(message: str, job_dir: Path) -> str:
    """A message as the browser sees it: the job's files named relative to the job folder (no server path)."""
    return message.replace(str(job_dir.resolve()) + "/", "").replace(str(job_dir) + "/", "")

#: States: ``new`` (inputs uploaded) -> ``queued`` -> ``running`` -> ``done`` | ``failed``.
ACTIVE_STATES = ("queued", "running")

Progress = Callable[..., None]
JobFn = Callable[[Path, Progress], dict[str, Any]]


class JobStore:
    """Creates, runs and reads jobs under ``workdir/jobs``.

    Jobs run on a small thread pool (default one worker: these machines have few cores and a
    segmentation or training run already uses them all).
    """

    def __init__(self, workdir: str | Path, *, max_workers: int = 1) -> None:
        self.root = Path(workdir).resolve() / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="limbseg-job")
        self._lock = threading.Lock()
        self._recover()

    def _recover(self) -> None:
        """Jobs left queued/running by a previous app instance can no longer finish: mark them failed."""
        for state_file in self.root.glob("*/job.json"):
            try:
                state = json.loads(state_file.read_text())
            except (OSError, ValueError):
                continue
            if state.get("state") in ACTIVE_STATES and state.get("pid_token") != _PROCESS_TOKEN:
                state.update(state="failed", error="interrupted: the GUI was stopped while this job ran")
                self._write(state_file.parent, state)

    # --- state on disk ---------------------------------------------------------------------
    def dir(self, job_id: str) -> Path:
        """The folder of an existing job (404 for a malformed or unknown id)."""
        path = self.root / check_job_id(job_id)
        if not (path / "job.json").is_file():
            raise HTTPException(404, "no such job")
        return path

    def get(self, job_id: str) -> dict[str, Any]:
        return json.loads((self.dir(job_id) / "job.json").read_text())

    def _write(self, job_dir: Path, state: dict[str, Any]) -> None:
        state["updated"] = time.time()
        with atomic_path(job_dir / "job.json") as tmp:
            tmp.write_text(json.dumps(state, indent=1, default=str))

    def update(self, job_id: str, **changes: Any) -> dict[str, Any]:
        with self._lock:
            state = self.get(job_id)
            state.update(changes)
            self._write(self.dir(job_id), state)
            return state

    def create(self, kind: str, **params: Any) -> dict[str, Any]:
        """A new job folder in state ``new``."""
        job_id = secrets.token_hex(16)
        job_dir = self.root / job_id
        job_dir.mkdir()
        state = {"id": job_id, "kind": kind, "state": "new", "progress": 0.0, "message": "",
                 "error": None, "created": time.time(), "params": params, "result": {}}
        self._write(job_dir, state)
        return state

    def list(self, kind: str | None = None) -> list[dict[str, Any]]:
        """All jobs (newest first), optionally of one kind."""
        jobs = []
        for state_file in self.root.glob("*/job.json"):
            try:
                state = json.loads(state_file.read_text())
            except (OSError, ValueError):
                continue
            if kind is None or state.get("kind") == kind:
                jobs.append(state)
        return sorted(jobs, key=lambda s: s.get("created", 0), reverse=True)

    # --- running ---------------------------------------------------------------------------
    def submit(self, job_id: str, fn: JobFn, **params: Any) -> dict[str, Any]:
        """Queue ``fn(job_dir, progress)``; its returned dict becomes the job's ``result``."""
        with self._lock:
            state = self.get(job_id)
            if state["state"] in ACTIVE_STATES:
                raise HTTPException(409, "this job is already running")
            state.update(state="queued", progress=0.0, message="waiting for a free worker", error=None,
                         pid_token=_PROCESS_TOKEN, params={**state.get("params", {}), **params})
            self._write(self.dir(job_id), state)
        self._pool.submit(self._run, job_id, fn)
        return state

    def _run(self, job_id: str, fn: JobFn) -> None:
        job_dir = self.dir(job_id)
        last = [0.0]

        def progress(fraction: float, message: str = "", *extra: Any, **_: Any) -> None:
            now = time.monotonic()
            if now - last[0] < 0.2 and fraction < 1.0:
                return
            last[0] = now
            changes: dict[str, Any] = {"progress": max(0.0, min(1.0, float(fraction))), "message": str(message)}
            if extra and isinstance(extra[0], dict):
                changes["metrics"] = extra[0]
            self.update(job_id, **changes)

        self.update(job_id, state="running", message="started", started=time.time())
        try:
            result = fn(job_dir, progress)
        except LimbsegError as exc:
            self.update(job_id, state="failed", error=job_relative(str(exc), job_dir), finished=time.time())
            log.info("job %s failed: %s", job_id, type(exc).__name__)
            return
        except Exception as exc:  # a bug: keep the GUI alive and say what happened
            log.exception("job %s crashed", job_id)
            self.update(job_id, state="failed", error=job_relative(f"internal error: {type(exc).__name__}: {exc}",
                                                                   job_dir), finished=time.time())
            return
        self.update(job_id, state="done", progress=1.0, message="finished", result=result or {},
                    finished=time.time())

    def shutdown(self, wait: bool = False) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=True)


#: Distinguishes this process's running jobs from those a stopped instance left behind.
_PROCESS_TOKEN = secrets.token_hex(8)
