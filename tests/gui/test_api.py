"""API-level tests of the GUI: segment jobs, persistence, downloads and the security checks."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import trimesh
from fastapi.testclient import TestClient

from limbseg.gui.app import create_app
from limbseg.io import read_image

from .conftest import BASE, failing_segment, fake_segment, fake_series, wait_for


def make_client(workdir: Path, **kwargs) -> TestClient:
    kwargs.setdefault("segment_fn", fake_segment)
    kwargs.setdefault("list_series_fn", fake_series)
    kwargs.setdefault("models_dirs", [])
    return TestClient(create_app(workdir, **kwargs), base_url=BASE)


def upload(client: TestClient, files: list[tuple[str, bytes]]):
    return client.post("/api/segment/upload", files=[("files", (name, data)) for name, data in files])


def run_job(client: TestClient, scan_file: Path) -> dict:
    job = upload(client, [("scan.nii.gz", scan_file.read_bytes())]).json()
    assert job["state"] == "new" and job["params"]["scan"] == "input/scan.nii.gz"
    r = client.post(f"/api/jobs/{job['id']}/segment", json={"tta": False})
    assert r.status_code == 200, r.text
    return wait_for(client, job["id"])


def test_page_and_info(tmp_path):
    client = make_client(tmp_path)
    page = client.get("/")
    assert page.status_code == 200 and "seg-viewer" in page.text
    info = client.get("/api/info").json()
    assert info["max_upload_mb"] == 2048 and "version" in info


def test_segment_job_outputs_and_downloads(tmp_path, scan_file):
    client = make_client(tmp_path / "work")
    job = run_job(client, scan_file)
    assert job["state"] == "done", job
    result = job["result"]
    assert result["statistics"][0]["voxels"] == 48
    assert "output/labels.nii.gz" in result["files"]
    assert [s["name"] for s in result["labels"]["structures"]] == ["tibia", "femur", "fibula", "pelvis"]
    jid = job["id"]
    # the viewer's copy of the scan has the input's geometry and voxels
    view = client.get(f"/api/jobs/{jid}/files/view/scan.nii.gz")
    assert view.status_code == 200
    (tmp_path / "v.nii.gz").write_bytes(view.content)
    got, ref = read_image(tmp_path / "v.nii.gz"), read_image(scan_file)
    assert np.array_equal(got.array, ref.array) and np.allclose(got.affine, ref.affine)
    # meshes for NiiVue are the LPS outputs with x and y negated (RAS)
    lps = trimesh.load(io.BytesIO(client.get(f"/api/jobs/{jid}/files/output/meshes/tibia_left.ply").content),
                       file_type="ply", process=False)
    ras = trimesh.load(io.BytesIO(client.get(f"/api/jobs/{jid}/files/{result['meshes'][0]['url']}").content),
                       file_type="ply", process=False)
    assert np.allclose(ras.vertices, lps.vertices * [-1, -1, 1])
    assert np.allclose(ras.vertices.mean(0), [-10, -20, 30])
    # every output in the zip, byte for byte
    z = zipfile.ZipFile(io.BytesIO(client.get(f"/api/jobs/{jid}/outputs.zip").content))
    assert sorted(z.namelist()) == sorted(f.removeprefix("output/") for f in result["files"])
    assert z.read("labels.nii.gz") == client.get(f"/api/jobs/{jid}/files/output/labels.nii.gz").content


def measuring_segment(input: Path, output_dir: Path, **kwargs):  # noqa: A002
    """fake_segment plus measurements.json written by the real writer: the right leg's landmarks are those
    of the measure tests' phantom leg (every value known), the left leg has no femur and a cut tibia."""
    from limbseg.measure import write_measurements
    from limbseg.measure.api import assemble
    from tests.measure.phantom import Leg, leg_parts

    result = fake_segment(input, output_dir, **kwargs)
    missing = {"left": {"femur": "no femur on the left side",
                        "tibia": "the left tibia touches the edge of the field of view (inferior): it may be cut"}}
    write_measurements(assemble("scan", {"right": leg_parts(Leg("right"))[1], "left": {}}, missing, {}),
                       output_dir, qc=False)
    return result


def test_segment_page_shows_the_measurements(tmp_path, scan_file):
    from limbseg.measure.definitions import MEASUREMENTS
    from tests.measure.phantom import Leg, expected

    client = make_client(tmp_path, segment_fn=measuring_segment)
    page = client.get("/").text
    assert 'id="seg-stats"' in page and 'id="seg-measurements"' in page  # the two tables, side by side
    assert "seg-measurements" in client.get("/static/app.js").text
    job = run_job(client, scan_file)
    assert job["state"] == "done", job
    rows = job["result"]["measurements"]
    assert job["result"]["statistics"][0]["voxels"] == 48
    assert [(r["side"], r["measurement"]) for r in rows] == [
        (s, m.name) for s in ("left", "right", "right-left") for m in MEASUREMENTS]
    assert all(set(r) == {"side", "measurement", "value", "unit", "reason"} for r in rows)
    truth = expected(Leg("right"))
    for r in rows:
        unit = next(m.unit for m in MEASUREMENTS if m.name == r["measurement"])
        assert r["unit"] == unit
        if r["side"] == "right":
            assert r["value"] == round(truth[r["measurement"]], 1) and r["reason"] == ""
        else:
            assert r["value"] == "incomplete" and r["reason"], r
    left = {r["measurement"]: r["reason"] for r in rows if r["side"] == "left"}
    assert left["femur_length"] == "no femur on the left side"
    assert "touches the edge of the field of view (inferior)" in left["tibia_length"]
    assert left["fibula_length"] == "landmarks not found: fibula_proximal, fibula_distal"
    assert "left: no femur on the left side" in next(r["reason"] for r in rows if r["side"] == "right-left")
    # a segmentation without measurements.json gives an empty table, not an error
    plain = run_job(make_client(tmp_path / "plain"), scan_file)
    assert plain["state"] == "done" and plain["result"]["measurements"] == []


def test_failed_job_keeps_the_cli_message(tmp_path, scan_file):
    client = make_client(tmp_path, segment_fn=failing_segment)
    job = run_job(client, scan_file)
    assert job["state"] == "failed"
    assert job["error"] == "input/scan.nii.gz: no lower limb found in the scan"
    assert str(tmp_path) not in job["error"]


def test_job_state_survives_a_new_app_instance(tmp_path, scan_file):
    first = make_client(tmp_path)
    job = run_job(first, scan_file)
    second = make_client(tmp_path)  # a restart of the GUI over the same work dir
    again = second.get(f"/api/jobs/{job['id']}").json()
    assert again["state"] == "done" and again["result"] == job["result"]
    assert job["id"] in [j["id"] for j in second.get("/api/jobs?kind=segment").json()]
    assert second.get(f"/api/jobs/{job['id']}/outputs.zip").status_code == 200


def test_a_job_left_running_by_a_stopped_gui_is_marked_failed(tmp_path, scan_file):
    client = make_client(tmp_path)
    job = upload(client, [("scan.nii.gz", scan_file.read_bytes())]).json()
    state_file = tmp_path / "jobs" / job["id"] / "job.json"
    state = json.loads(state_file.read_text())
    state.update(state="running", pid_token="0" * 16)
    state_file.write_text(json.dumps(state))
    again = make_client(tmp_path).get(f"/api/jobs/{job['id']}").json()
    assert again["state"] == "failed" and "interrupted" in again["error"]


def test_two_uploads_get_separate_random_job_folders(tmp_path, scan_file):
    client = make_client(tmp_path)
    a = upload(client, [("scan.nii.gz", scan_file.read_bytes())]).json()["id"]
    b = upload(client, [("scan.nii.gz", scan_file.read_bytes())]).json()["id"]
    assert a != b and len(a) == 32 and int(a, 16) >= 0
    assert (tmp_path / "jobs" / a / "input/scan.nii.gz").is_file()
    assert (tmp_path / "jobs" / b / "input/scan.nii.gz").is_file()


def test_dicom_files_are_stored_under_generated_names(tmp_path):
    client = make_client(tmp_path)
    names = ["DOE^JANE_0001.dcm", "DOE^JANE_0002.dcm", "IM0003"]
    job = upload(client, [(n, b"DICM" + bytes(10)) for n in names]).json()
    assert [s["uid"] for s in job["params"]["series"]] == ["1.2.3", "1.2.4"]
    assert job["params"]["series"][0] == {"uid": "1.2.3", "description": "AutoBind WATER", "orientation": "axial",
                                          "slices": 8, "size": "", "modality": ""}
    stored = sorted(p.name for p in (tmp_path / "jobs" / job["id"]).rglob("*") if p.is_file())
    assert stored == ["file_000.dcm", "file_001.dcm", "file_002.dcm", "job.json"]
    assert "DOE" not in json.dumps(job) and "DOE" not in (tmp_path / "jobs" / job["id"] / "job.json").read_text()


def test_bad_uploads_are_refused_and_leave_nothing(tmp_path, scan_file):
    client = make_client(tmp_path)
    r = upload(client, [("a.nii.gz", scan_file.read_bytes()), ("b.nrrd", b"x")])
    assert r.status_code == 400 and "one zip" in r.json()["detail"]
    r = upload(client, [("scan.zip", b"not a zip")])
    assert r.status_code == 400 and "not a valid zip" in r.json()["detail"]
    assert list((tmp_path / "jobs").iterdir()) == []
    assert client.post("/api/jobs/" + "0" * 32 + "/segment", json={}).status_code == 404


# --- security ---------------------------------------------------------------------------------
def test_upload_size_limit(tmp_path):
    client = make_client(tmp_path, max_upload_mb=0.05)  # 52 kB
    r = upload(client, [("scan.nii.gz", bytes(80_000))])
    assert r.status_code == 413 and "limit" in r.json()["detail"]

    def chunks():  # no Content-Length: the streamed byte count is checked
        yield b'--x\r\nContent-Disposition: form-data; name="files"; filename="a.nii"\r\n\r\n'
        for _ in range(10):
            yield bytes(10_000)
        yield b"\r\n--x--\r\n"

    r = client.post("/api/segment/upload", content=chunks(),
                    headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert r.status_code == 413
    assert list((tmp_path / "jobs").iterdir()) == []


def test_host_header_must_be_allowed(tmp_path):
    client = make_client(tmp_path)
    assert client.get("/api/info").status_code == 200
    assert client.get("/api/info", headers={"Host": "localhost:7860"}).status_code == 200
    for host in ("evil.example", "127.0.0.1.evil.example:7860", "attacker.com:7860"):
        r = client.get("/api/info", headers={"Host": host})
        assert r.status_code == 403, host
    other = TestClient(create_app(tmp_path, allowed_hosts=["lab-pc"], models_dirs=[]), base_url="http://lab-pc:80")
    assert other.get("/api/info").status_code == 200


def test_cross_origin_state_changes_are_refused(tmp_path, scan_file):
    client = make_client(tmp_path)
    files = [("files", ("scan.nii.gz", scan_file.read_bytes()))]
    for origin in ("http://evil.example", "null", "http://127.0.0.1:9999", "https://127.0.0.1:7860"):
        r = client.post("/api/segment/upload", files=files, headers={"Origin": origin})
        assert r.status_code == 403, origin
    r = client.post("/api/segment/upload", files=files, headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    assert list((tmp_path / "jobs").iterdir()) == []
    r = client.post("/api/segment/upload", files=files, headers={"Origin": BASE})
    assert r.status_code == 200


def test_files_cannot_escape_the_job_folder(tmp_path, scan_file):
    client = make_client(tmp_path / "work")
    job = run_job(client, scan_file)
    jid = job["id"]
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    link = tmp_path / "work" / "jobs" / jid / "output" / "link.txt"
    link.symlink_to(secret)
    bad = [
        f"/api/jobs/{jid}/files/output/%2e%2e/job.json",
        f"/api/jobs/{jid}/files/output/..%2f..%2f..%2fsecret.txt",
        f"/api/jobs/{jid}/files/%2Fetc%2Fpasswd",
        f"/api/jobs/{jid}/files/job.json",
        f"/api/jobs/{jid}/files/input/scan.nii.gz",
        f"/api/jobs/{jid}/files/output/link.txt",
        f"/api/jobs/{jid}/files/output",
        "/api/jobs/..%2f..%2fsecret.txt/files/output/labels.nii.gz",
        "/api/jobs/" + "f" * 32 + "/files/output/labels.nii.gz",
        "/api/jobs/XYZ/outputs.zip",
    ]
    for url in bad:
        r = client.get(url)
        assert r.status_code == 404 and b"secret" not in r.content, url
    assert client.get(f"/api/jobs/{jid}/files/output/labels.nii.gz").status_code == 200


def _zip_bytes(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_zip_slip_and_zip_bomb_are_refused(tmp_path):
    client = make_client(tmp_path / "work")
    slip = _zip_bytes({"ok.dcm": b"x", "../../evil.dcm": b"x"})
    r = upload(client, [("scan.zip", slip)])
    assert r.status_code == 400
    assert not (tmp_path / "evil.dcm").exists() and not (tmp_path / "work" / "evil.dcm").exists()
    bomb = _zip_bytes({"a.dcm": bytes(50_000_000)})  # ratio ~1000:1
    r = upload(client, [("scan.zip", bomb)])
    assert r.status_code == 400
    assert list((tmp_path / "work" / "jobs").iterdir()) == []


def test_archive_errors_are_reported_and_clean_up(tmp_path):
    from limbseg.errors import LimbsegError

    def refusing_extract(archive, dest):
        raise LimbsegError("archive entry escapes the destination folder: ../evil", archive)

    client = make_client(tmp_path, safe_extract_fn=refusing_extract)
    r = upload(client, [("scan.zip", _zip_bytes({"../evil": b"x"}))])
    assert r.status_code == 400 and r.json()["detail"] == "upload/file_000.zip: archive entry escapes the destination folder: ../evil"
    assert list((tmp_path / "jobs").iterdir()) == []


def test_measurements_table_keeps_an_implausible_value_and_says_why():
    from limbseg.gui.services import measurement_rows

    doc = {"measurements": [
        {"side": "left", "measurement": "fibula_length", "unit": "mm", "value": 144.06, "status": "implausible",
         "reason": "implausible: fibula length / tibia length = 0.62, outside 0.85 to 1.1; check the segmentation"},
        {"side": "left", "measurement": "femur_length", "unit": "mm", "value": 350.0, "status": "ok", "reason": ""},
        {"side": "right", "measurement": "femur_length", "unit": "mm", "value": None, "status": "incomplete",
         "reason": "no femur on the right side"}]}
    fib, femur, missing = measurement_rows(doc)
    assert fib["value"] == 144.1 and fib["reason"].startswith("implausible: fibula length / tibia length = 0.62")
    assert femur == {"side": "left", "measurement": "femur_length", "value": 350.0, "unit": "mm", "reason": ""}
    assert missing["value"] == "incomplete" and missing["reason"] == "no femur on the right side"
