"""Where the subjects run: in this process, on a local Dask cluster, or on a running Dask cluster.

- ``workers <= 1`` and no scheduler: one subject after another in this process (no Dask).
- ``workers = N > 1``: a :class:`distributed.LocalCluster` of N worker processes, one task at a time each,
  torch using ``cores // N`` threads in each, so N x threads never exceeds the cores.
- ``scheduler = "tcp://host:8786"``: a running cluster (``dask scheduler`` + ``dask worker`` on each machine);
  its workers need limbseg installed and must see the scans, the model and the output folder at the same
  paths (shared storage).

Each subject is one task (:func:`limbseg.cohort.worker.run_subject`), handed out by Dask's scheduler;
outcomes come back as they finish, in any order.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from distributed import Client, LocalCluster, as_completed
from distributed.diagnostics.plugin import WorkerPlugin

from limbseg.cohort.worker import host_cores, one_line, run_subject
from limbseg.errors import LimbsegError

log = logging.getLogger(__name__)
Outcome = dict[str, Any]
CONNECT_TIMEOUT_S = 20
WAIT_FOR_WORKERS_S = 60


class WorkerSetup(WorkerPlugin):
    """Dask worker plugin: torch's intra-op threads on each worker (:data:`limbseg.cohort.worker.torch_threads`;
    Dask's nanny starts workers with ``OMP_NUM_THREADS=1``), so that the tasks running at once on a host share
    its cores.

    ``torch_threads``: the same number everywhere (the local cluster). Otherwise ``threads_by_host`` (host ->
    the Dask task threads of all its workers) gives ``cores // that``; a host not listed (a worker that joined
    later) gets ``cores // its own nthreads``.
    """

    name = "limbseg-cohort"

    def __init__(self, *, torch_threads: int | None = None, threads_by_host: dict[str, int] | None = None) -> None:
        self.torch_threads = torch_threads
        self.threads_by_host = dict(threads_by_host or {})

    def setup(self, worker: Any) -> None:
        from distributed.comm import get_address_host

        from limbseg.cohort import worker as subject_worker

        tasks_here = self.threads_by_host.get(get_address_host(worker.address)) or worker.state.nthreads
        threads = self.torch_threads or max(1, host_cores() // max(1, tasks_here))
        subject_worker.torch_threads = threads  # applied by run_subject in the thread that runs each subject
        log.debug("limbseg cohort worker %s: %d torch threads", worker.address, threads)


def connect(*, workers: int, scheduler: str | None) -> contextlib.AbstractContextManager[Client]:
    """A client of the running cluster at ``scheduler``, else of a new local cluster of ``workers``."""
    return remote_client(scheduler) if scheduler else local_client(workers)


@contextlib.contextmanager
def local_client(workers: int) -> Iterator[Client]:
    """A client of a fresh local cluster of ``workers`` processes (closed on exit)."""
    import dask

    cores = host_cores()
    if workers > cores:
        log.warning("%d workers on %d cores: the workers will compete for them", workers, cores)
    # Non-daemonic workers may fork, so segment writes its outputs in child processes as it does alone.
    with dask.config.set({"distributed.worker.daemon": False}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
    try:
        with Client(cluster) as client:
            client.register_plugin(WorkerSetup(torch_threads=max(1, cores // workers)))
            yield client
    finally:
        cluster.close()


@contextlib.contextmanager
def remote_client(address: str) -> Iterator[Client]:
    """A client of the running cluster at ``address``, its workers set up for limbseg."""
    try:
        client = Client(address, timeout=f"{CONNECT_TIMEOUT_S}s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise LimbsegError(f"cannot reach the Dask scheduler ({one_line(exc)})", address) from None
    try:
        try:
            client.wait_for_workers(1, timeout=WAIT_FOR_WORKERS_S)
        except TimeoutError:
            raise LimbsegError(f"no Dask worker joined the scheduler within {WAIT_FOR_WORKERS_S} s", address) from None
        hosts: dict[str, int] = {}
        for w in client.scheduler_info(n_workers=-1)["workers"].values():
            hosts[w["host"]] = hosts.get(w["host"], 0) + int(w["nthreads"])
        try:
            client.register_plugin(WorkerSetup(threads_by_host=hosts))
        except Exception as exc:  # noqa: BLE001 - whatever the workers answered, in one line
            raise LimbsegError("the Dask workers cannot set up limbseg (is it installed on every worker?): "
                               + one_line(exc), address) from None
        yield client
    finally:
        client.close()


def submit(client: Client, tasks: list[dict[str, Any]], on_outcome: Callable[[Outcome], None]) -> None:
    """One Dask task per subject; outcomes handed to ``on_outcome`` as they finish. A task whose worker
    died (Dask retries it on another first) becomes a failure."""
    run = uuid.uuid4().hex[:8]
    keys = [f"limbseg-cohort-{run}-{n}-{t['subject']}" for n, t in enumerate(tasks)]
    futures = client.map(run_subject, tasks, key=keys, pure=False)
    by_future = dict(zip(futures, tasks, strict=True))
    try:
        for future in as_completed(futures):
            try:
                outcome = future.result()
            except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker (out of memory): this subject fails
                task = by_future[future]
                outcome = {"subject": task["subject"], "status": "failed", "worker": "", "seconds": None,
                           "peak_memory_mb": None, "error": f"the worker running it died ({one_line(exc)})"}
            on_outcome(outcome)
    finally:
        client.cancel(futures)
