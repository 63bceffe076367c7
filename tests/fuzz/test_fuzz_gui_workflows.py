"""Fuzzing the GUI's other ways in: prepare uploads (manifest, scans with masks), training requests and job
file paths. Every answer is 200 or 4xx, never 500; a refused request leaves no job folder; nothing is written
or served outside the work folder; a prepare job on hostile files ends ``failed`` with one line that names no
server path; after everything the app still answers.

The real prepare runs (on the tiny seed files); training is faked (its inputs are what is fuzzed here).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import event, given
from hypothesis import strategies as st

from limbseg.gui.app import create_app
from tests.fuzz import mutations as M
from tests.fuzz import seeds as S
from tests.fuzz.contract import fuzz_settings, input_limits
from tests.gui.conftest import BASE, fake_segment, tiny_scan, wait_for

pytestmark = pytest.mark.filterwarnings("ignore")

_names = st.sampled_from(["scan.nii.gz", "mask.nii.gz", "a.dcm", "scan.zip", "../../evil.nii.gz", "", "x.csv",
                          "a" * 300 + ".nii.gz", "\x00.nii", "scan.NII.GZ", "m.nrrd", "con.nii.gz", "m.txt"])
_structures = st.sampled_from(["femur", "tibia", "fibula", "pelvis", "../femur", "", "a/b", "\x00", "x" * 300,
                               " femur", "femur.nii", "..", "con", "tibia"])


def _blobs() -> st.SearchStrategy[bytes]:
    seeds = [S.nifti_gz_seed(), S.dicom_zip_seed(), b"", b"\x1f\x8b" + bytes(30)]
    return st.one_of(st.sampled_from(seeds),
                     st.builds(lambda b: gzip.compress(b, mtime=0), M.nifti_header_mutation(S.nifti_seed())),
                     M.mutated_bytes(S.nifti_gz_seed(), max_ops=2))


def _tree(root: Path) -> set[Path]:
    return set(root.rglob("*")) if root.exists() else set()


def _job_folders(jobs: Path) -> set[Path]:
    """The job folders (jobs already running write inside theirs meanwhile)."""
    return set(jobs.iterdir()) if jobs.exists() else set()


def _fake_train(dataset: Path, run_dir: Path, options: dict[str, Any], progress: Any) -> Any:
    run_dir.mkdir(parents=True, exist_ok=True)
    return SimpleNamespace(summary={"options": sorted(options)})


@pytest.fixture
def app_client(tmp_path):
    workdir = tmp_path / "work"
    client = TestClient(create_app(workdir, segment_fn=fake_segment, train_fn=_fake_train, models_dirs=[],
                                   max_upload_mb=1), base_url=BASE, raise_server_exceptions=True)
    return client, workdir, tmp_path


def _refused_cleanly(r: Any, before: set[Path], jobs: Path, tmp_path: Path) -> None:
    assert r.status_code in (200, 400, 404, 413, 422), (r.status_code, r.text)
    if r.status_code != 200:
        assert _job_folders(jobs) == before, "a refused request left a job folder"
        assert str(tmp_path) not in r.text, r.text


def _finished_jobs_fail_cleanly(client: TestClient, ids: list[str], tmp_path: Path) -> None:
    for job_id in ids:
        job = wait_for(client, job_id, timeout=60)
        if job["state"] == "failed":
            message = str(job.get("error", ""))
            assert message and "\n" not in message.strip() and "Traceback" not in message, job
            assert not message.startswith("internal error"), job  # an exception that is not a LimbsegError
            assert str(tmp_path) not in message, message


def test_prepare_uploads_answer_4xx_or_fail_in_the_job(app_client):
    client, workdir, tmp_path = app_client
    jobs, started = workdir / "jobs", []

    scan = st.tuples(st.one_of(st.just("scan.nii.gz"), _names), _blobs())
    mask = st.tuples(st.one_of(st.just("mask.nii.gz"), _names), _blobs(), st.one_of(st.just(0), st.integers(-2, 3)),
                     st.one_of(st.just("femur"), _structures))

    @fuzz_settings(0.6)

    @given(scans=st.lists(scan, min_size=1, max_size=2) | st.lists(scan, max_size=0),
           masks=st.lists(mask, max_size=3), extra_case=st.lists(st.integers(-1, 2), max_size=1) | st.just([]))
    def check(scans, masks, extra_case):
        before = _job_folders(jobs)
        files = [("scans", (n, d)) for n, d in scans] + [("masks", (n, d)) for n, d, _, _ in masks]
        data = {"mask_case": [str(c) for _, _, c, _ in masks] + [str(c) for c in extra_case],
                "mask_structure": [s for _, _, _, s in masks]}
        with input_limits():
            r = client.post("/api/prepare/cases", files=files or None, data=data)
        _refused_cleanly(r, before, jobs, tmp_path)
        if r.status_code == 200:
            started.append(r.json()["id"])
        outside = {p for p in _tree(tmp_path) if p != workdir and not p.is_relative_to(workdir)}
        assert not outside, f"wrote outside the work folder: {outside}"
        seen.add(r.status_code)
        event(f"HTTP {r.status_code}")

    seen: set[int] = set()
    check()
    assert 200 in seen and seen - {200}, f"the inputs reached only {seen}"
    _finished_jobs_fail_cleanly(client, started, tmp_path)
    assert client.get("/api/info").status_code == 200


def test_manifest_uploads_answer_4xx_or_fail_in_the_job(app_client):
    client, workdir, tmp_path = app_client
    jobs, started = workdir / "jobs", []

    @fuzz_settings(0.6)
    @given(name=_names, data=st.one_of(M.csv_mutation(S.manifest_seed()), M.mutated_bytes(S.manifest_seed())))
    def check(name, data):
        before = _job_folders(jobs)
        with input_limits():
            r = client.post("/api/prepare/manifest", files=[("manifest", (name, data))])
        _refused_cleanly(r, before, jobs, tmp_path)
        if r.status_code == 200:
            started.append(r.json()["id"])
        event(f"HTTP {r.status_code}")

    check()
    _finished_jobs_fail_cleanly(client, started, tmp_path)
    assert client.get("/api/info").status_code == 200


_json_values = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                         st.text(max_size=40), st.sampled_from(["loo", "resnet34", "../../etc", "job:x", "dir:..",
                                                                "dir:../../", "0", "-1", "1e309"]))


def test_training_requests_answer_4xx(app_client):
    client, workdir, tmp_path = app_client
    jobs = workdir / "jobs"
    (workdir / "datasets" / "d1").mkdir(parents=True)
    (workdir / "datasets" / "d1" / "dataset.json").write_bytes(S.dataset_json_seed())
    import torch  # noqa: F401 - resolving a model id imports torch: load it before the per-input memory limit
    keys = ["dataset_id", "encoder", "epochs", "batch_size", "folds", "image_size", "init_from", "extra"]
    valid = {"encoder": st.sampled_from(["resnet18", "resnet34"]) | _json_values,
             "epochs": st.integers(1, 3) | _json_values, "batch_size": st.integers(1, 4) | _json_values,
             "folds": st.sampled_from([None, "loo", "3", "1", "x"]) | _json_values,
             "image_size": st.sampled_from([None, 64]) | _json_values, "init_from": st.none() | _json_values}

    good = {"encoder": st.sampled_from(["resnet18", "resnet34"]), "epochs": st.integers(1, 3),
            "folds": st.sampled_from([None, "loo", "3"]), "image_size": st.sampled_from([None, 64])}

    @fuzz_settings(0.6)
    @given(body=st.one_of(st.fixed_dictionaries({"dataset_id": st.just("dir:d1")}, optional=good),
                          st.dictionaries(st.sampled_from(keys), _json_values, max_size=6),
                          st.fixed_dictionaries({"dataset_id": st.just("dir:d1")}, optional=valid),
                          _json_values))
    def check(body):
        before = _job_folders(jobs)
        with input_limits():
            r = client.post("/api/train", content=json.dumps(body).encode(),  # NaN and Infinity sent as tokens
                            headers={"content-type": "application/json"})
        _refused_cleanly(r, before, jobs, tmp_path)
        seen.add(r.status_code)
        event(f"HTTP {r.status_code}")

    seen: set[int] = set()
    check()
    assert 200 in seen and seen - {200}, f"the requests reached only {seen}"
    assert client.get("/api/info").status_code == 200


def test_job_file_paths_never_reach_outside_the_job(app_client):
    client, workdir, tmp_path = app_client
    scan_file = tiny_scan(tmp_path / "scan.nii.gz")
    (tmp_path / "secret.txt").write_text("secret")
    up = client.post("/api/segment/upload", files=[("files", ("scan.nii.gz", scan_file.read_bytes()))])
    assert up.status_code == 200, up.text
    job_id = up.json()["id"]
    (workdir / "jobs" / job_id / "output").mkdir()
    (workdir / "jobs" / job_id / "output" / "labels.json").write_text("{}")
    parts = st.sampled_from(["..", ".", "input", "output", "labels.json", "scan.nii.gz", "secret.txt", "%2e%2e", "..%2f", "%00", "",
                             "/", "\\", "~", "con", "a" * 300, "job.json", str(tmp_path).lstrip("/")])

    index = client.get("/").content

    @fuzz_settings(1.0)
    @given(job=st.one_of(st.just(job_id), st.text(max_size=12), parts),
           path=st.lists(parts, min_size=1, max_size=6).map("/".join))
    def check(job, path):
        r = client.get(f"/api/jobs/{quote(job, safe='%')}/files/{quote(path, safe='/%')}")
        assert r.status_code in (200, 400, 403, 404, 405, 422), (r.status_code, r.text[:200])
        assert b"secret" not in r.content
        if r.status_code == 200 and not r.headers["content-type"].startswith("application/json") \
                and r.content != index:
            # a file: the bytes of one inside the jobs folder ("files/.." is normalised by the URL itself
            # into an API path such as /api/jobs/<id>, which answers JSON, or into "/", the page)
            assert any(p.is_file() and p.read_bytes() == r.content for p in (workdir / "jobs").rglob("*")), path
        event(f"HTTP {r.status_code}")

    check()
    assert client.get(f"/api/jobs/{job_id}/files/output/labels.json").status_code == 200
    assert client.get(f"/api/jobs/{job_id}/files/{up.json()['params']['scan']}").status_code == 404  # inputs: not served


# --- what this harness found (each failed before its fix) ------------------------------------------------
def test_nan_or_infinity_in_a_request_is_a_one_line_422(app_client):
    """FastAPI's default 422 echoes the values sent; a NaN there made the answer itself fail (HTTP 500)."""
    client = app_client[0]
    for token in ("NaN", "Infinity", "-Infinity"):
        r = client.post("/api/train", content=f'{{"dataset_id": "x", "epochs": {token}}}'.encode(),
                        headers={"content-type": "application/json"})
        assert r.status_code == 422, r.text
        assert r.json()["detail"] == "invalid request: epochs: Input should be a finite number", r.text
    r = client.post("/api/train", json={"epochs": 0})
    assert r.status_code == 422 and "dataset_id: Field required" in r.json()["detail"]


def test_a_file_name_too_long_for_the_file_system_is_404(app_client):
    client, workdir, tmp_path = app_client
    up = client.post("/api/segment/upload",
                     files=[("files", ("scan.nii.gz", tiny_scan(tmp_path / "scan.nii.gz").read_bytes()))])
    r = client.get(f"/api/jobs/{up.json()['id']}/files/{'a' * 300}")  # OSError: File name too long
    assert r.status_code == 404, r.text


def test_a_failed_prepare_job_names_its_files_relative_to_the_job(app_client):
    client, workdir, tmp_path = app_client
    r = client.post("/api/prepare/manifest", files=[("manifest", ("m.csv", b"no,columns\n1,2\n"))])
    job = wait_for(client, r.json()["id"])
    assert job["state"] == "failed" and job["error"].startswith("input/manifest"), job
    assert str(tmp_path) not in job["error"]
