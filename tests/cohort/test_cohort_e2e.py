"""End to end: 3 small subjects + 1 broken scan through a 2-worker local Dask cluster; resuming after a second
run, a deleted label map, an interrupted subject and a killed command."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import limbseg
from limbseg import pipeline
from limbseg.cli import main
from limbseg.cohort.done import MARKER, is_complete, read_marker

pytestmark = pytest.mark.slow
SUBJECTS = {"s0", "s1", "s2"}


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def first_run(tiny_bundle, manifest, tmp_path_factory):
    out = tmp_path_factory.mktemp("cohort") / "out"
    calls = []
    result = limbseg.cohort(manifest, out, workers=2, model=tiny_bundle, device="cpu",
                            progress=lambda done, total, message: calls.append((done, total)))
    return result, out, calls


def _copy(first_run, tmp_path) -> Path:
    shutil.copytree(first_run[1], tmp_path / "out")
    return tmp_path / "out"


def test_two_workers_three_done_one_failure(first_run, ages):
    result, out, calls = first_run
    assert set(result.done) == SUBJECTS and result.skipped == []
    assert list(result.failed) == ["bad"] and "broken.nii.gz" in result.failed["bad"]
    assert calls[0] == (0, 4) and calls[-1] == (4, 4)
    assert len({o["worker"] for o in result.outcomes}) <= 2
    cores = len(os.sched_getaffinity(0))
    assert {o["torch_threads"] for o in result.outcomes if o["status"] == "done"} == {max(1, cores // 2)}
    failures = _rows(out / "failures.csv")
    assert [(r["subject"], r["error"]) for r in failures] == [("bad", result.failed["bad"])]
    assert "\n" not in failures[0]["error"]
    table = _rows(out / "cohort_statistics.csv")
    for name in SUBJECTS:
        assert read_marker(out / name) is not None and (out / name / "labels.nii.gz").is_file()
        own = _rows(out / name / "statistics.csv")
        mine = [r for r in table if r["subject"] == name]
        assert [(r["structure"], r["side"]) for r in mine] == [(r["structure"], r["side"]) for r in own]
        assert {r["age"] for r in mine} == {ages[name]}
        assert [r["volume_cm3"] for r in mine if r["side"] != "right-left"] == \
               [r["volume_cm3"] for r in own if r["side"] != "right-left"]
    assert "bad" not in {r["subject"] for r in table}
    assert {r["side"] for r in table} >= {"left", "right", "right-left"}
    summary = (out / "cohort_summary.md").read_text()
    assert "4 subjects: 3 complete, 1 failed" in summary and "## Against age (`age`)" in summary
    for png in ("left_right.png", "volume_vs_age.png", "length_vs_age.png"):
        assert f"(cohort_plots/{png})" in summary and (out / "cohort_plots" / png).stat().st_size > 1000
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_second_run_does_nothing(first_run, tiny_bundle, manifest, tmp_path):
    out = _copy(first_run, tmp_path)
    before = _mtimes(out)
    result = limbseg.cohort(manifest, out, workers=1, model=tiny_bundle, device="cpu")
    assert result.done == [] and set(result.skipped) == SUBJECTS and list(result.failed) == ["bad"]
    assert _mtimes(out) == before  # no subject, table or picture written again


def test_deleted_labels_redo_only_that_subject(first_run, tiny_bundle, manifest, tmp_path):
    out = _copy(first_run, tmp_path)
    (out / "s1" / "labels.nii.gz").unlink()
    untouched = _mtimes(out / "s0")
    result = limbseg.cohort(manifest, out, workers=1, model=tiny_bundle, device="cpu")
    assert result.done == ["s1"] and set(result.skipped) == {"s0", "s2"}
    assert pipeline.READ_PROCESS is False  # torch is in use here: segment's forked reader could hang on it
    assert (out / "s1" / "labels.nii.gz").is_file() and _mtimes(out / "s0") == untouched


def test_interrupted_subject_is_completed(first_run, tiny_bundle, manifest, tmp_path):
    """What a killed run leaves: a folder without its marker, the temporary folder of the next one."""
    out = _copy(first_run, tmp_path)
    (out / "s2" / MARKER).unlink()
    (out / "s2" / "statistics.csv").unlink()
    for leftover in (".s2.k3j2h1.partial", ".s0.x8f0a2.partial", ".s2.old"):
        (out / leftover).mkdir()
        (out / leftover / "labels.nii.gz").write_bytes(b"half")
    result = limbseg.cohort(manifest, out, workers=0, model=tiny_bundle, device="cpu")
    assert result.done == ["s2"] and (out / "s2" / "statistics.csv").is_file()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    assert len([r for r in _rows(out / "cohort_statistics.csv") if r["subject"] == "s2"]) == 12


def test_killed_command_is_completed_by_a_rerun(tiny_bundle, manifest, tmp_path):
    """``limbseg cohort FOLDER`` killed (SIGKILL, with its children) after its first subject; running it again
    does the rest and leaves nothing temporary."""
    folder = tmp_path / "scans"
    folder.mkdir()
    for name in ("s0", "s1"):
        shutil.copy(manifest.parent / "scans" / f"{name}.nii.gz", folder)
    out = folder / "cohort"  # inside the folder of scans: not taken for one
    args = ["cohort", str(folder), "-o", str(out), "--model", str(tiny_bundle), "--device", "cpu"]
    proc = subprocess.Popen([sys.executable, "-m", "limbseg", *args], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while not (out / "s0" / MARKER).is_file():
            assert proc.poll() is None and time.monotonic() < deadline, "the first subject did not finish"
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    first = (out / "s0" / MARKER).stat().st_mtime_ns
    assert not (out / "s1" / MARKER).exists() and not (out / "cohort_statistics.csv").exists()
    assert main(args) == 0
    assert (out / "s0" / MARKER).stat().st_mtime_ns == first  # not redone
    assert all(is_complete(out / name, read_marker(out / name)["key"]) for name in ("s0", "s1"))
    assert {r["subject"] for r in _rows(out / "cohort_statistics.csv")} == {"s0", "s1"}
    assert _rows(out / "failures.csv") == []
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
