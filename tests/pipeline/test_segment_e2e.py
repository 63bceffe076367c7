"""End to end: a tiny random-weight model on small body phantoms, through the API and the CLI."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from segment_phantoms import body_phantom, make_phantom, write_dicom_series

from limbseg.cli import main
from limbseg.io import read_image, write_image
from limbseg.labels import DEFAULT_SCHEME
from limbseg.pipeline import segment, segment_many, write_outputs
from limbseg.volume import LabelMap, Volume

pytestmark = pytest.mark.slow


def _legs(tmp_path, affine=None, name="scan.nii.gz"):
    vol = body_phantom(300, 800)
    if affine is not None:
        vol = Volume(vol.array, affine, {})
    path = tmp_path / name
    write_image(vol, path)
    return vol, path


def _check_outputs(out, vol, crotch_tol=12.0):
    for name in ("labels.nii.gz", "labels.json", "segmentation.seg.nrrd", "statistics.csv", "statistics.json",
                 "measurements.csv", "measurements.json", "qc/axial_montage.png", "qc/coronal.png"):
        assert (out / name).is_file(), name
    rows = json.loads((out / "measurements.json").read_text())
    assert rows, "measurements.json is empty"
    img = nib.load(str(out / "labels.nii.gz"))
    assert img.shape == vol.shape and img.get_data_dtype() == np.uint8
    np.testing.assert_allclose(img.affine, vol.affine, atol=1e-5)
    labels = np.asarray(img.dataobj)
    stats = json.loads((out / "statistics.json").read_text())["structures"]
    for s in DEFAULT_SCHEME.structures:
        assert sum(r["voxels"] for r in stats if r["structure"] == s.name) == int((labels == s.value).sum())
    assert json.loads((out / "labels.json").read_text())["roi"]["crotch_z_mm"] == pytest.approx(600, abs=crotch_tol)


def test_segment_nifti_axial(tiny_bundle, tmp_path):
    vol, path = _legs(tmp_path)
    result = segment(path, tmp_path / "out", model=tiny_bundle, device="cpu", tta=True)
    _check_outputs(tmp_path / "out", vol)
    assert result.labels.same_grid(vol) and result.timings["total"] > 0
    assert not (tmp_path / "out" / "segmentation.dcm").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


@pytest.mark.parametrize("kind", ["sagittal", "oblique"])
def test_segment_keeps_sagittal_and_oblique_geometry(tiny_bundle, tmp_path, kind):
    base = body_phantom(300, 800)
    if kind == "sagittal":
        affine = base.affine[:, [1, 2, 0, 3]]
        vol = Volume(np.ascontiguousarray(base.array.transpose(1, 2, 0)), affine, {})
    else:
        c, s = np.cos(np.deg2rad(12)), np.sin(np.deg2rad(12))
        rot = np.array([[c, 0, s, 0], [0, 1, 0, 0], [-s, 0, c, 0], [0, 0, 0, 1.0]])
        vol = Volume(base.array, rot @ base.affine, {})
    write_image(vol, tmp_path / "scan.nii.gz")
    segment(tmp_path / "scan.nii.gz", tmp_path / "out", model=tiny_bundle, device="cpu")
    _check_outputs(tmp_path / "out", vol, crotch_tol=25.0)  # the 12 degree tilt lowers the crotch by ~13 mm


def test_write_outputs_from_dicom(tmp_path):
    """Known labels, DICOM input: the SEG references the series and its frames equal labels.nii.gz."""
    import highdicom as hd
    import pydicom

    image, labels = make_phantom()
    files = write_dicom_series(image, tmp_path / "dicom")
    dicom = read_image(tmp_path / "dicom")
    assert dicom.same_grid(image)
    out = tmp_path / "out"
    out.mkdir()
    lab = LabelMap(labels.array, dicom.affine.copy(), {})
    written, rows = write_outputs(dicom, lab, out, formats=("ply", "obj"))
    seg = hd.seg.segread(str(out / "segmentation.dcm"))
    uids = [pydicom.dcmread(str(f)).SOPInstanceUID for f in files]
    frames = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=[1, 2, 3, 4],
                                               combine_segments=True)
    np.testing.assert_array_equal(frames.transpose(2, 1, 0), np.asarray(nib.load(str(out / "labels.nii.gz")).dataobj))
    assert {p.name for p in (out / "meshes").iterdir()} >= {"tibia_right.ply", "tibia_left.obj", "femur_right.ply"}
    assert (out / "qc" / "meshes.png").is_file()
    assert json.loads((out / "labels.json").read_text())["sides"]["rule"] == "two legs"
    assert json.loads((out / "statistics.json").read_text())["sides"]["rule"] == "two legs"


def test_write_outputs_one_leg_side_from_the_dicom_header(tmp_path):
    """One leg, no pelvis: the side comes from the series' Laterality; every bone whole on that side."""
    import pydicom

    image, labels = make_phantom()
    one = labels.array.copy()
    one[20:] = 0  # keep the leg at small i only (RAS x +40: it would be "right" by coordinates)
    files = write_dicom_series(image, tmp_path / "dicom")
    for f in files:
        ds = pydicom.dcmread(str(f))
        ds.Laterality = "L"
        ds.save_as(str(f))
    dicom = read_image(tmp_path / "dicom")
    out = tmp_path / "out"
    out.mkdir()
    written, rows = write_outputs(dicom, LabelMap(one, dicom.affine.copy(), {}), out)
    assert sorted(p.name for p in (out / "meshes").iterdir()) == ["femur_left.ply", "tibia_left.ply"]
    assert json.loads((out / "labels.json").read_text())["sides"]["rule"] == "header Laterality=L"
    tibia = {r["side"]: r["voxels"] for r in rows if r["structure"] == "tibia"}
    assert tibia == {"left": int((one == 1).sum()), "right": 0}


def test_outputs_same_in_threads_and_child_processes(tmp_path, monkeypatch):
    """The forked-children path (Linux) and the thread fallback (elsewhere) write the same files and rows."""
    import limbseg.pipeline as pipeline

    image, labels = make_phantom()
    written = {}
    for in_process in (True, False):
        monkeypatch.setattr(pipeline, "OUTPUT_PROCESS", in_process)
        out = tmp_path / str(in_process)
        out.mkdir()
        files, rows = write_outputs(image, LabelMap(labels.array, image.affine.copy(), {}), out)
        written[in_process] = (sorted(f.relative_to(out).as_posix() for f in files), rows)
        assert all(f.is_file() for f in files)
    assert written[True] == written[False]
    assert "qc/meshes.png" in written[True][0] and "statistics.json" in written[True][0]


def test_segment_same_without_fork(tiny_bundle, tmp_path, monkeypatch):
    """The thread-only path (platforms without fork) gives the same labels, statistics and files."""
    import limbseg.pipeline as pipeline

    _, path = _legs(tmp_path)
    forked = segment(path, tmp_path / "forked", model=tiny_bundle, device="cpu")
    monkeypatch.setattr(pipeline, "READ_PROCESS", False)
    monkeypatch.setattr(pipeline, "OUTPUT_PROCESS", False)
    threads = segment(path, tmp_path / "threads", model=tiny_bundle, device="cpu")
    np.testing.assert_array_equal(forked.labels.array, threads.labels.array)
    assert forked.statistics == threads.statistics
    assert sorted(f.relative_to(tmp_path / "forked") for f in forked.files) == \
        sorted(f.relative_to(tmp_path / "threads") for f in threads.files)


class _Located(Exception):
    """Raised by the test's locator stand-in once it has recorded where it ran."""


def test_the_locator_runs_in_the_main_process(tiny_bundle, tmp_path, monkeypatch):
    """The coarse 3D stage (torch) must run in the main process, never in the forked reading child: torch in a
    child forked from a parent that has already run torch deadlocks (limbseg demo, segment_many, the GUI). The
    stand-in records its process id; had it run in the child, the record would be lost with the child."""
    import os

    import torch
    from tests.conftest import add_tiny_locator

    import limbseg.pipeline as pipeline
    from limbseg.segmentation.locate import Locator

    torch.ones(64, 64) @ torch.ones(64, 64)  # the parent has used torch, as in segment_many's second scan
    bundle, _ = add_tiny_locator(tiny_bundle, tmp_path / "with-locator")
    ran_in = []

    def locate(self, volume):
        ran_in.append(os.getpid())
        raise _Located

    monkeypatch.setattr(Locator, "locate", locate)
    monkeypatch.setattr(pipeline, "READ_PROCESS", pipeline.FORK_AVAILABLE)
    _, path = _legs(tmp_path)
    with pytest.raises(_Located):
        segment(path, tmp_path / "out", model=bundle, device="cpu")
    assert ran_in == [os.getpid()]
    assert not (tmp_path / "out").exists()


def test_segment_many(tiny_bundle, tmp_path):
    _, a = _legs(tmp_path, name="a.nii.gz")
    _, b = _legs(tmp_path, name="b.nii.gz")
    seen = []
    results = segment_many([a, b], tmp_path / "out", model=tiny_bundle, device="cpu",
                           progress=lambda f, m: seen.append(f))
    assert [r.output_dir.name for r in results] == ["a", "b"]
    assert (tmp_path / "out" / "b" / "labels.nii.gz").is_file()
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)


def _bad(tmp_path, capsys, *args):
    rc = main(["segment", *map(str, args), "-o", str(tmp_path / "out"), "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "error" in err
    assert not (tmp_path / "out").exists()
    return err


def test_bad_inputs_exit_2_and_write_nothing(tiny_bundle, tmp_path, capsys):
    _, scan = _legs(tmp_path)
    assert "no such file" in _bad(tmp_path, capsys, tmp_path / "missing.nii.gz", "--model", tiny_bundle)
    trunk = tmp_path / "trunk.nii.gz"
    write_image(body_phantom(700, 1250), trunk)
    assert "no lower limb" in _bad(tmp_path, capsys, trunk, "--model", tiny_bundle)
    assert "no such model" in _bad(tmp_path, capsys, scan, "--model", tmp_path / "nothing")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "model.json").write_text((tiny_bundle / "model.json").read_text())
    (corrupt / "weights.safetensors").write_bytes(b"not weights")
    assert "corrupt" in _bad(tmp_path, capsys, scan, "--model", corrupt)
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    cfg = json.loads((tiny_bundle / "model.json").read_text())
    cfg["labels"] = {"background": 0, "tibia": 1}
    (wrong / "model.json").write_text(json.dumps(cfg))
    (wrong / "weights.safetensors").write_bytes((tiny_bundle / "weights.safetensors").read_bytes())
    assert "classes" in _bad(tmp_path, capsys, scan, "--model", wrong)


def test_cli_segment_ok(tiny_bundle, tmp_path, capsys):
    vol, scan = _legs(tmp_path)
    rc = main(["segment", str(scan), "-o", str(tmp_path / "out"), "--model", str(tiny_bundle), "--device", "cpu",
               "--formats", "ply", "stl"])
    assert rc == 0
    _check_outputs(tmp_path / "out", vol)
    assert "files in" in capsys.readouterr().out
