"""`limbseg info` / `limbseg convert` on good and bad inputs: one line, exit 2, nothing written."""

from __future__ import annotations

import zipfile

import nibabel as nib
import numpy as np
import pytest

from limbseg.cli import main
from limbseg.io import read_image
from tests.io.dicom_factory import affine_from, write_series


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def assert_refused(capsys, tmp_path, source, *extra: str, match: str) -> str:
    out_file = tmp_path / "out" / "result.nii.gz"
    rc, _, err = run(capsys, "convert", str(source), "-o", str(out_file), *extra)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert match in lines[0]
    assert "Traceback" not in err
    assert not out_file.exists()
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    return lines[0]


def test_convert_dicom_then_info(tmp_path, stored, capsys):
    write_series(tmp_path / "dcm", stored, affine_from((0.8, 1.1, 3.0)), series_uid="1.2.44", description="legs")
    rc, out, _ = run(capsys, "convert", str(tmp_path / "dcm"), "-o", str(tmp_path / "scan.nrrd"))
    assert rc == 0 and "wrote" in out
    back = read_image(tmp_path / "scan.nrrd")
    np.testing.assert_array_equal(back.array, stored)
    rc, out, _ = run(capsys, "info", str(tmp_path / "dcm"))
    assert rc == 0
    assert "*  1.2.44  legs" in out and "16x12x8" in out and "axial" in out
    assert "spacing (mm):    0.8 x 1.1 x 3" in out and "value range:     " in out
    rc, out, _ = run(capsys, "info", str(tmp_path / "scan.nrrd"))
    assert rc == 0 and "shape (i, j, k): (16, 12, 8)" in out and "uint16" in out


def test_missing_path(tmp_path, capsys):
    assert_refused(capsys, tmp_path, tmp_path / "nope", match="no such file or folder")


def test_empty_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert_refused(capsys, tmp_path, tmp_path / "empty", match="folder is empty")


def test_folder_without_dicom(tmp_path, capsys):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("hello")
    (tmp_path / "docs" / "b").write_bytes(b"\0" * 500)
    assert_refused(capsys, tmp_path, tmp_path / "docs", match="no DICOM images found among 2 files")


@pytest.mark.parametrize("keep", [0.5, 0.25])
def test_truncated_file(tmp_path, stored, capsys, keep):
    paths = write_series(tmp_path / "dcm", stored, affine_from((1, 1, 2)))
    data = paths[3].read_bytes()
    paths[3].write_bytes(data[: int(len(data) * keep)] if keep > 0.4 else data[:300])
    line = assert_refused(capsys, tmp_path, tmp_path / "dcm", match="truncated or corrupt")
    assert paths[3].name in line


def test_missing_slice_refused_then_resampled(tmp_path, stored, capsys):
    write_series(tmp_path / "dcm", stored, affine_from((1, 1, 2)), skip_slices=(3,))
    assert_refused(capsys, tmp_path, tmp_path / "dcm", match="1 missing slice(s)")
    rc, _, _ = run(capsys, "convert", str(tmp_path / "dcm"), "-o", str(tmp_path / "r.nii.gz"), "--allow-resample")
    assert rc == 0
    vol = read_image(tmp_path / "r.nii.gz")
    assert vol.shape == (16, 12, 8) and vol.spacing[2] == pytest.approx(2.0)
    np.testing.assert_allclose(vol.array[:, :, 3], (stored[:, :, 2] + stored[:, :, 4].astype(float)) / 2, atol=1e-3)
    np.testing.assert_array_equal(vol.array[:, :, 5], stored[:, :, 5])


def test_uneven_spacing_refused_then_resampled(tmp_path, stored, capsys):
    positions = [0, 3, 6, 9, 12.5, 15.5, 18.5, 21.5]
    write_series(tmp_path / "dcm", stored, affine_from((1, 1, 3)), positions_mm=positions)
    assert_refused(capsys, tmp_path, tmp_path / "dcm", match="uneven slice spacing")
    rc, _, _ = run(capsys, "convert", str(tmp_path / "dcm"), "-o", str(tmp_path / "r.nii.gz"), "--allow-resample")
    assert rc == 0
    vol = read_image(tmp_path / "r.nii.gz")
    assert vol.spacing[2] == pytest.approx(3.0) and vol.shape == (16, 12, 8)
    assert vol.array.dtype == np.float32


@pytest.mark.parametrize("size", [100000, 30000])
def test_absurd_nifti_header(tmp_path, capsys, size):
    # NIfTI-1 dims are int16 (at most 32767), so 100000^3 needs a NIfTI-2 header.
    header = nib.Nifti2Header() if size > 32767 else nib.Nifti1Header()
    header.set_data_dtype(np.int16)
    header.set_data_shape((size, size, size))
    (tmp_path / "huge.nii").write_bytes(header.binaryblock + b"\0" * 4 + b"\0" * 64)
    assert_refused(capsys, tmp_path, tmp_path / "huge.nii", match=f"header declares ({size}, {size}, {size}) voxels")


def test_absurd_dicom_size(tmp_path, stored, capsys):
    import pydicom

    for path in write_series(tmp_path / "dcm", stored, affine_from((1, 1, 2))):
        ds = pydicom.dcmread(path)
        ds.Rows, ds.Columns = 65535, 65535
        ds.save_as(path)
    assert_refused(capsys, tmp_path, tmp_path / "dcm", match="header declares (65535, 65535, 8) voxels")


def test_nonfinite_refused_then_cleaned(tmp_path, capsys):
    data = np.ones((6, 5, 4), dtype=np.float32)
    data[1, 2, 3] = np.nan
    data[0, 0, 0] = np.inf
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 3.0, 1.0])), tmp_path / "nan.nii.gz")
    assert_refused(capsys, tmp_path, tmp_path / "nan.nii.gz", match="2 voxels are NaN or Inf")
    rc, _, _ = run(capsys, "convert", str(tmp_path / "nan.nii.gz"), "-o", str(tmp_path / "c.mha"),
                   "--clean-nonfinite")
    assert rc == 0
    vol = read_image(tmp_path / "c.mha")
    assert vol.array[1, 2, 3] == 0 and vol.array[0, 0, 0] == 0 and vol.array.sum() == 6 * 5 * 4 - 2


def test_zip_with_traversal_refused(tmp_path, stored, capsys):
    paths = write_series(tmp_path / "dcm", stored, affine_from((1, 1, 2)))
    with zipfile.ZipFile(tmp_path / "scan.zip", "w") as zf:
        for p in paths:
            zf.write(p, p.name)
        zf.writestr("../evil", b"owned")
    assert_refused(capsys, tmp_path, tmp_path / "scan.zip", match="'../evil' points outside")
    assert not (tmp_path / "evil").exists()


def test_unknown_series_lists_available(tmp_path, stored, capsys):
    write_series(tmp_path / "dcm", stored, affine_from((1, 1, 2)), series_uid="1.2.3.4")
    assert_refused(capsys, tmp_path, tmp_path / "dcm", "--series", "9.9", match="series 9.9 not found; available: 1.2.3.4")


def test_unsupported_output_and_debug_traceback(tmp_path, stored, capsys):
    write_series(tmp_path / "dcm", stored, affine_from((1, 1, 2)))
    rc, _, err = run(capsys, "convert", str(tmp_path / "dcm"), "-o", str(tmp_path / "x.png"))
    assert rc == 2 and "unsupported output format" in err and not (tmp_path / "x.png").exists()
    rc, _, err = run(capsys, "convert", str(tmp_path / "nope"), "-o", str(tmp_path / "x.nii"), "--debug")
    assert rc == 2 and "Traceback" in err


def test_duplicate_positions_refused(tmp_path, stored, capsys):
    write_series(tmp_path / "dcm", stored, affine_from((1, 1, 2)), series_uid="1.2.8")
    write_series(tmp_path / "dcm", stored, affine_from((1, 1, 2)), series_uid="1.2.8", seed=9)
    assert_refused(capsys, tmp_path, tmp_path / "dcm", match="8 slices share a position")
