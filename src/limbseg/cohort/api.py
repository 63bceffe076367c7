"""``cohort()``: many scans through :func:`limbseg.pipeline.segment`, resumably, then the cohort's tables."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from limbseg.cohort import done, tables
from limbseg.cohort.subjects import Subject, read_subjects
from limbseg.cohort.summary import PLOT_DIR, SUMMARY_FILE, age_column, draw_plots, plot_names, summary_text
from limbseg.errors import LimbsegError

log = logging.getLogger(__name__)
#: ``progress(finished, to_run, message)``, called once before the first subject and after each one.
Progress = Callable[[int, int, str], None]


@dataclass
class CohortResult:
    """What :func:`cohort` did: the subjects' ids, those segmented now (``done``), those complete before
    (``skipped``), the failures (id -> one-line error), each run subject's outcome (``seconds``,
    ``peak_memory_mb``, ``worker``), the cohort files written and the wall time (s)."""

    output_dir: Path
    subjects: list[str]
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0


def cohort(
    input: str | Path,  # noqa: A002 - the CLI's name for it
    output_dir: str | Path,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    model: str | Path | None = None,
    device: str = "auto",
    tta: bool = False,
    postprocess: bool = True,
    formats: Sequence[str] = ("ply",),
    progress: Progress | None = None,
) -> CohortResult:
    """Segment every subject of a manifest or folder into ``output_dir/<subject>/`` and write the tables.

    Subjects whose outputs are complete for the same scan, model and options are skipped
    (:mod:`limbseg.cohort.done`); a failed subject is recorded in ``failures.csv`` and the others go on.
    Then ``cohort_statistics.csv``, ``failures.csv``, ``cohort_summary.md`` and ``cohort_plots/*.png``
    (:mod:`limbseg.cohort.tables`, :mod:`limbseg.cohort.summary`) are written, each only when changed.

    Args:
        input: a manifest CSV or a folder of scans (:mod:`limbseg.cohort.subjects`).
        output_dir: the cohort's folder (created).
        workers: 0 or 1: in this process, no Dask; N > 1: a local Dask cluster of N processes.
        scheduler: address of a running Dask scheduler (``tcp://host:8786``); then ``workers`` is not used.
        model: bundle folder (default: the shipped model); loaded once per worker.
        device, tta, postprocess, formats: as for :func:`~limbseg.pipeline.segment`.
        progress: see :data:`Progress`.

    Raises:
        LimbsegError: a bad manifest or folder, model, option or scheduler (nothing is run then).
    """
    t0 = time.perf_counter()
    if workers < 0:
        raise LimbsegError(f"--workers must be 0 or more, not {workers}")
    output_dir = Path(output_dir).expanduser().resolve()
    subjects = read_subjects(input, exclude=output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise LimbsegError("output exists and is not a folder", output_dir)
    _check_formats(formats)
    model_path, model_key = model_identity(model)
    options = {"device": device, "tta": tta, "postprocess": postprocess, "formats": tuple(formats)}
    key_options = {"model": model_key, "tta": tta, "postprocess": postprocess, "formats": list(formats)}
    result = CohortResult(output_dir, [s.id for s in subjects])
    tasks = _plan(subjects, output_dir, result.skipped, {"model": model_path, "options": options}, key_options)
    log.info("%d subjects: %d to segment, %d complete already", len(subjects), len(tasks), len(result.skipped))
    report = progress or (lambda finished, total, message: None)

    def on_outcome(outcome: dict[str, Any]) -> None:
        result.outcomes.append(outcome)
        if outcome["status"] == "done":
            result.done.append(outcome["subject"])
        else:
            result.failed[outcome["subject"]] = outcome["error"]
            log.warning("%s failed: %s", outcome["subject"], outcome["error"])
        report(len(result.outcomes), len(tasks), f"{outcome['subject']}: {outcome['status']}")

    with _runner(bool(tasks), workers=workers, scheduler=scheduler) as run:
        output_dir.mkdir(parents=True, exist_ok=True)
        for s in subjects:
            done.remove_leftovers(output_dir, s.id)
        for task in tasks:
            done.forget(Path(task["output"]))
        report(0, len(tasks), "starting")
        run(tasks, on_outcome)
    result.files = write_tables(subjects, output_dir, result.failed)
    result.seconds = time.perf_counter() - t0
    return result


def _plan(subjects: list[Subject], output_dir: Path, skipped: list[str], common: dict[str, Any],
          key_options: dict[str, Any]) -> list[dict[str, Any]]:
    """The tasks of the subjects not complete (the others' ids appended to ``skipped``); reads only, so that
    nothing is written before the workers are there."""
    tasks = []
    for s in subjects:
        key = {"scan": str(s.scan), "input": done.input_fingerprint(s.scan), **key_options}
        if done.is_complete(output_dir / s.id, key):
            skipped.append(s.id)
        else:
            tasks.append({"subject": s.id, "scan": str(s.scan), "output": str(output_dir / s.id), "key": key,
                          **common})
    return tasks


Runner = Callable[[list[dict[str, Any]], Callable[[dict[str, Any]], None]], None]


def _in_process(tasks: list[dict[str, Any]], on_outcome: Callable[[dict[str, Any]], None]) -> None:
    from limbseg.cohort.worker import run_subject

    for task in tasks:
        on_outcome(run_subject(task))


@contextlib.contextmanager
def _runner(needed: bool, *, workers: int, scheduler: str | None) -> Iterator[Runner]:
    """How the tasks run: in this process, or on Dask (cluster started or scheduler reached here, so that a
    bad address fails before anything is written; not at all when nothing is to be done)."""
    if not needed or (scheduler is None and workers <= 1):
        yield _in_process
        return
    from limbseg.cohort import cluster  # imports Dask

    with cluster.connect(workers=workers, scheduler=scheduler) as client:
        yield functools.partial(cluster.submit, client)


def _check_formats(formats: Sequence[str]) -> None:
    from limbseg.pipeline import MESH_FORMATS

    bad = [f for f in formats if f not in MESH_FORMATS]
    if bad:
        raise LimbsegError(f"unknown mesh format {', '.join(bad)} (choose from {', '.join(MESH_FORMATS)})")


def model_identity(model: str | Path | None) -> tuple[str | None, str]:
    """(the path each worker loads, None for its shipped model; a digest of ``model.json`` and the weights'
    size, recorded in each subject's marker so that a retrained model redoes the cohort)."""
    from limbseg.models.bundle import CONFIG, WEIGHTS, default_bundle_path

    path = Path(model).expanduser().resolve() if model is not None else default_bundle_path()
    try:
        digest = hashlib.sha256((path / CONFIG).read_bytes())
        digest.update(str((path / WEIGHTS).stat().st_size).encode())
    except OSError:
        message = "no such model bundle" if model is not None else "the default model is not installed (pass --model BUNDLE)"
        raise LimbsegError(message, path) from None
    return (str(path) if model is not None else None), digest.hexdigest()[:16]


def write_tables(subjects: list[Subject], output_dir: Path, failed: dict[str, str]) -> list[Path]:
    """``cohort_statistics.csv``, ``failures.csv``, ``cohort_summary.md`` and the plots, from every subject
    complete now (its marker) and this run's failures; each file is (re)written only when it changed."""
    extras = tables.extra_columns(subjects)
    complete = [s for s in subjects if done.read_marker(output_dir / s.id) is not None and s.id not in failed]
    rows = [r for s in complete for r in tables.subject_rows(s, output_dir / s.id, extras)]
    scans = {s.id: str(s.scan) for s in subjects}
    failures = [{"subject": k, "scan": scans[k], "error": v} for k, v in failed.items()]
    stats_path, failures_path = output_dir / tables.STATISTICS_FILE, output_dir / tables.FAILURES_FILE
    summary_path = output_dir / SUMMARY_FILE
    changed = tables.write_if_changed(stats_path, tables.statistics_text(rows, extras))
    tables.write_if_changed(failures_path, tables.failures_text(failures))
    age = age_column(extras)
    plot_dir = output_dir / PLOT_DIR
    plots = plot_names(age)
    if changed or not all((plot_dir / p).is_file() for p in plots):
        draw_plots(rows, plot_dir, age)
    text = summary_text(rows, subjects=len(subjects), complete=len(complete), failed=len(failed), age=age,
                        plots=plots)
    tables.write_if_changed(summary_path, text)
    return [stats_path, failures_path, summary_path, *(plot_dir / p for p in plots)]
