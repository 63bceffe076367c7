"""What runs on a worker: one subject through :func:`limbseg.pipeline.segment`, then its completion marker.

:func:`run_subject` never raises for a bad scan: it returns an outcome (``status`` ``"done"`` or
``"failed"`` with the one-line ``error``), so one broken scan costs one row in ``failures.csv``.
The model bundle is loaded once per worker process and kept (:func:`cached_model`, keyed by the bundle's
path). Nothing here needs Dask: the same function runs in-process and on Dask workers.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import resource
import socket
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
_MODELS: dict[str, Any] = {}
_MODELS_LOCK = threading.Lock()
#: torch intra-op threads for the subjects of this process; set on Dask workers by their plugin
#: (:class:`limbseg.cohort.cluster.WorkerSetup`), None in-process (torch's default).
torch_threads: int | None = None


def cached_model(model: str | None) -> Any:
    """The :class:`~limbseg.models.bundle.ModelBundle` at ``model`` (None: the shipped one), loaded once
    per process."""
    from limbseg.pipeline import load_model

    key = str(model) if model is not None else ""
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = load_model(model)
        return _MODELS[key]


def one_line(exc: BaseException) -> str:
    """The error as one line: a :class:`~limbseg.errors.LimbsegError`'s message, else ``Type: message``."""
    from limbseg.errors import LimbsegError

    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    if isinstance(exc, LimbsegError):
        return line or type(exc).__name__
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def peak_memory_mb() -> float:
    """Peak resident memory (MiB) of this process and of the largest child it waited for (forked output
    writers): ``getrusage`` maxima in KiB on Linux."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, children) / 1024.0, 1)


def _use_torch_threads() -> None:
    """Apply :data:`torch_threads` in the calling thread: with OpenMP the setting belongs to each thread, so
    it is made where the subject runs, not only where the plugin ran."""
    if torch_threads is not None:
        import torch

        if torch.get_num_threads() != torch_threads:
            torch.set_num_threads(torch_threads)


def _safe_forks() -> None:
    """Keep :func:`~limbseg.pipeline.segment` from forking where a child could hang or is not allowed.

    ``segment`` reads the scan and runs the coarse 3D stage (torch) in a forked child while the model loads.
    Here the model is loaded already (:func:`cached_model`), so that overlap gains nothing, and once this
    process has used torch's OpenMP thread pool (the model's loading, any previous subject) a forked child
    that uses torch waits forever on it: so the scan is read in this process (``READ_PROCESS``, for the rest
    of the process's life). A daemonic process (a Dask worker with ``distributed.worker.daemon: true``) may not
    start children at all: then the outputs are written in threads too (``OUTPUT_PROCESS``).
    """
    from limbseg import pipeline

    pipeline.READ_PROCESS = False
    if multiprocessing.current_process().daemon:
        pipeline.OUTPUT_PROCESS = False


def run_subject(task: dict[str, Any]) -> dict[str, Any]:
    """Segment one subject into ``task["output"]`` and mark it done.

    ``task``: ``subject`` (id), ``scan``, ``output`` (the subject's folder), ``key`` (what the marker records,
    see :mod:`limbseg.cohort.done`), ``model`` (bundle path or None) and ``options`` (keyword arguments of
    :func:`~limbseg.pipeline.segment`). Returns ``subject, status, error, seconds, peak_memory_mb, worker``
    (host:pid) and, when segmented, ``torch_threads``.
    """
    from limbseg.cohort.done import write_marker

    t0 = time.perf_counter()
    outcome: dict[str, Any] = {"subject": task["subject"], "status": "done", "error": "",
                               "worker": f"{socket.gethostname()}:{os.getpid()}"}
    try:
        from limbseg.pipeline import segment

        _safe_forks()
        _use_torch_threads()
        model = cached_model(task["model"])
        result = segment(task["scan"], task["output"], model=model, **task["options"])
        import torch

        outcome["torch_threads"] = torch.get_num_threads()
        seconds = round(time.perf_counter() - t0, 2)
        write_marker(Path(task["output"]), task["key"],
                     {"subject": task["subject"], "seconds": seconds, "worker": outcome["worker"],
                      "timings": {k: round(v, 3) for k, v in result.timings.items()}})
    except Exception as exc:  # noqa: BLE001 - recorded as the subject's failure; the cohort goes on
        log.debug("subject %s failed", task["subject"], exc_info=True)
        outcome.update(status="failed", error=one_line(exc))
    outcome.update(seconds=round(time.perf_counter() - t0, 2), peak_memory_mb=peak_memory_mb())
    return outcome


def host_cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
