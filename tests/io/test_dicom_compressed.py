"""Compressed transfer syntaxes decode to the same voxels; a missing plugin is named."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from pydicom.uid import JPEG2000Lossless, JPEGLosslessSV1, JPEGLSLossless, RLELossless

from limbseg.cli import main
from limbseg.io.dicom import read_dicom
from limbseg.io.sitk import sitk_to_volume
from tests.io.dicom_factory import affine_from, read_back, rotation, write_series


def _encoder_or_skip(uid: str) -> None:
    from pydicom.pixels import get_encoder

    try:
        encoder = get_encoder(uid)
    except (NotImplementedError, ValueError):
        pytest.skip(f"pydicom has no encoder for {uid}, so no test data can be made")
    if not encoder.is_available:
        pytest.skip(f"no encoder plugin installed for {uid}: {encoder.missing_dependencies}")


@pytest.mark.parametrize("uid", [RLELossless, JPEG2000Lossless, JPEGLSLossless, JPEGLosslessSV1],
                         ids=["rle", "jpeg2000", "jpegls", "jpeg-lossless"])
def test_compressed_series_decodes_exactly(tmp_path, uid):
    _encoder_or_skip(uid)
    # 32 x 32 pixels: OpenJPEG's default 6 resolution levels need at least 32 pixels a side.
    stored = np.random.default_rng(1).integers(0, 4000, size=(32, 32, 4)).astype(np.uint16)
    affine = affine_from((0.8, 1.1, 3.0), (1, 2, 3), rotation("x", 20) @ rotation("y", 15))
    paths = write_series(tmp_path, stored, affine, transfer_syntax=uid)
    assert read_back(paths[0]).file_meta.TransferSyntaxUID == uid
    vol = read_dicom(tmp_path)
    np.testing.assert_array_equal(vol.array, stored)
    np.testing.assert_allclose(vol.affine, affine, atol=1e-4)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path)))
    np.testing.assert_array_equal(sitk_to_volume(reader.Execute()).array, stored)


def test_missing_plugin_is_named(tmp_path, capsys, monkeypatch):
    _encoder_or_skip(JPEG2000Lossless)
    stored = np.random.default_rng(1).integers(0, 4000, size=(32, 32, 4)).astype(np.uint16)
    write_series(tmp_path / "dcm", stored, affine_from((1, 1, 2)), transfer_syntax=JPEG2000Lossless)

    class Unavailable:
        is_available = False

    import pydicom.pixels

    monkeypatch.setattr(pydicom.pixels, "get_decoder", lambda uid: Unavailable())
    rc = main(["convert", str(tmp_path / "dcm"), "-o", str(tmp_path / "out.nii.gz")])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert "install pylibjpeg-openjpeg" in err and "JPEG 2000" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out.nii.gz").exists()
