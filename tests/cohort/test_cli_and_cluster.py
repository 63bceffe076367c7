"""The command's errors, the Python API's name, a running scheduler (``--scheduler``) and the worker plugin."""

from __future__ import annotations

import csv
import types

import pytest

import limbseg
from limbseg.cli import build_parser, main
from limbseg.cohort import cluster
from limbseg.errors import LimbsegError


def test_cohort_command_is_listed():
    assert "cohort" in build_parser().format_help()


def test_limbseg_cohort_is_callable_before_and_after_importing_the_package():
    import limbseg.cohort as package

    assert callable(limbseg.cohort) and callable(package)
    with pytest.raises(LimbsegError, match="no such manifest or folder"):
        limbseg.cohort("/nonexistent/manifest.csv", "/tmp/unused")


@pytest.mark.parametrize("extra", [[], ["--workers", "-1"], ["--model", "/nonexistent/bundle"],
                                   ["--scheduler", "tcp://127.0.0.1:1"]])
def test_errors_are_one_line_exit_2_nothing_written(tmp_path, capsys, monkeypatch, extra):
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 1)
    (tmp_path / "m.csv").write_text("subject,scan\na,a.nii.gz\n")
    source = tmp_path / ("missing.csv" if not extra else "m.csv")
    assert main(["cohort", str(source), "-o", str(tmp_path / "out"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("limbseg cohort: error: ") and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_workers_and_scheduler_exclude_each_other(tmp_path):
    with pytest.raises(SystemExit) as info:
        main(["cohort", str(tmp_path), "-o", str(tmp_path / "o"), "--workers", "2", "--scheduler", "tcp://x:1"])
    assert info.value.code == 2


def test_worker_plugin_shares_the_cores(monkeypatch):
    from limbseg.cohort import worker as subject_worker

    monkeypatch.setattr(cluster, "host_cores", lambda: 8)
    monkeypatch.setattr(subject_worker, "torch_threads", None)
    worker = types.SimpleNamespace(address="tcp://10.0.0.5:4000", state=types.SimpleNamespace(nthreads=2))
    cluster.WorkerSetup(threads_by_host={"10.0.0.5": 4}).setup(worker)
    assert subject_worker.torch_threads == 2
    cluster.WorkerSetup(threads_by_host={"10.0.0.9": 1}).setup(worker)  # host not listed: its own nthreads
    assert subject_worker.torch_threads == 4
    cluster.WorkerSetup(torch_threads=1).setup(worker)
    assert subject_worker.torch_threads == 1


@pytest.mark.slow
def test_running_scheduler(tiny_bundle, manifest, tmp_path, monkeypatch):
    """``scheduler=ADDRESS``: the subjects go to an existing cluster's workers (threads here, for speed)."""
    import torch
    from distributed import LocalCluster

    two = tmp_path / "two.csv"
    lines = manifest.read_text().replace("scans/", f"{manifest.parent}/scans/").splitlines()
    two.write_text("\n".join([lines[0], lines[1], lines[-1]]) + "\n")  # s0 and the broken scan
    from limbseg.cohort import worker as subject_worker

    monkeypatch.setattr(subject_worker, "torch_threads", None)  # the plugin sets it in this process
    threads = torch.get_num_threads()
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as local:
        try:
            result = limbseg.cohort(two, tmp_path / "out", scheduler=local.scheduler_address, model=tiny_bundle,
                                    device="cpu")
        finally:
            torch.set_num_threads(threads)
    assert result.done == ["s0"] and list(result.failed) == ["bad"]
    with open(tmp_path / "out" / "failures.csv", newline="") as fh:
        assert [r["subject"] for r in csv.DictReader(fh)] == ["bad"]
