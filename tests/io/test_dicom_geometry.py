"""DICOM geometry and voxels equal SimpleITK/GDCM's for many orientations and orderings."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import SimpleITK as sitk

from limbseg.io import read_image, write_image
from limbseg.io.dicom import list_series, read_dicom
from limbseg.io.sitk import sitk_to_volume
from tests.io.dicom_factory import PATIENT_ID, PATIENT_NAME, affine_from, rotation, write_series

# Columns are the RAS directions of i, j, k, as scanners write them (k = row x column cosine).
CASES = {
    "axial": np.eye(3),
    "coronal": np.array([[-1, 0, 0], [0, 0, -1], [0, -1, 0]], dtype=float).T,
    "sagittal": np.array([[0, -1, 0], [0, 0, -1], [1, 0, 0]], dtype=float).T,
    "double-oblique": rotation("x", 20) @ rotation("y", 15),
}
LABELS = {"axial": "axial", "coronal": "coronal", "sagittal": "sagittal", "double-oblique": "oblique"}


def sitk_read(folder) -> tuple[np.ndarray, np.ndarray]:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    vol = sitk_to_volume(reader.Execute())
    return vol.array, vol.affine


@pytest.mark.parametrize("name", list(CASES))
def test_geometry_matches_sitk(tmp_path, stored, name):
    affine = affine_from((0.8, 1.1, 3.0), (12.5, -40.0, 101.0), CASES[name])
    write_series(tmp_path, stored, affine, rescale=(0.5, -10.0), reverse_instance_numbers=True)
    vol = read_dicom(tmp_path)
    ref_array, ref_affine = sitk_read(tmp_path)
    assert vol.shape == (16, 12, 8)
    np.testing.assert_allclose(vol.affine, ref_affine, atol=0.01)
    np.testing.assert_allclose(vol.affine, affine, atol=1e-4)
    assert vol.array.dtype == np.float32
    np.testing.assert_allclose(vol.array, ref_array, atol=1e-4)
    np.testing.assert_array_equal(vol.array, (stored * 0.5 - 10.0).astype(np.float32))
    assert vol.meta["orientation"] == LABELS[name]
    assert vol.meta["spacing"] == pytest.approx((0.8, 1.1, 3.0), abs=1e-4)


@pytest.mark.parametrize("reverse", [False, True])
def test_integer_data_kept_and_sorted_by_position(tmp_path, stored, reverse):
    affine = affine_from((1.1, 0.8, 2.5), (0, 0, -30), rotation("z", 30))
    paths = write_series(tmp_path, stored.astype(np.int16) - 500, affine, shuffle_names=True,
                         reverse_instance_numbers=reverse)
    vol = read_dicom(tmp_path)
    assert vol.array.dtype == np.int16
    np.testing.assert_array_equal(vol.array, stored.astype(np.int16) - 500)
    ref_array, ref_affine = sitk_read(tmp_path)
    np.testing.assert_array_equal(vol.array, ref_array)
    np.testing.assert_allclose(vol.affine, ref_affine, atol=0.01)
    assert vol.meta["dicom_files"] == [str(p) for p in paths]


def test_meta_has_provenance_but_no_patient_data(tmp_path, stored, caplog):
    write_series(tmp_path / "a" / "b", stored, affine_from((1, 1, 2)), description="T1 legs", series_uid="1.2.3")
    (tmp_path / "notes.txt").write_text("not dicom")
    with caplog.at_level(logging.DEBUG):
        vol = read_image(tmp_path)
    assert vol.meta["series_uid"] == "1.2.3"
    assert vol.meta["description"] == "T1 legs" and vol.meta["modality"] == "MR"
    assert vol.meta["n_slices"] == 8 and len(vol.meta["dicom_files"]) == 8
    assert "reading series 1.2.3 (T1 legs, 8 slices)" in caplog.text
    text = repr(vol.meta) + caplog.text
    assert PATIENT_NAME not in text and PATIENT_ID not in text and "Secret" not in text


def test_single_file_reads_its_series(tmp_path, stored):
    paths = write_series(tmp_path, stored, affine_from((1, 1, 2)), series_uid="1.2.3.1")
    write_series(tmp_path, stored[:, :, :4], affine_from((1, 1, 2)), series_uid="1.2.3.2", seed=5)
    small = [p for p in tmp_path.iterdir() if p not in paths][0]
    vol = read_image(small)
    assert vol.meta["series_uid"] == "1.2.3.2" and vol.shape == (16, 12, 4)


def test_two_series_and_localizer(tmp_path, stored):
    from tests.io.dicom_factory import write_localizer

    write_series(tmp_path, stored, affine_from((1, 1, 2)), series_uid="1.2.9.1", description="big")
    write_series(tmp_path, stored[:, :, :5], affine_from((1, 1, 2), rotation=rotation("x", 90)),
                 series_uid="1.2.9.2", description="small", seed=3)
    write_series(tmp_path, stored, affine_from((1, 1, 2)), series_uid="1.2.9.3", description="ct",
                 modality="CT", seed=4)
    write_localizer(tmp_path, series_uid="1.2.9.4")
    series = {s.key: s for s in list_series(tmp_path)}
    assert set(series) == {"1.2.9.1", "1.2.9.2", "1.2.9.3", "1.2.9.4:1", "1.2.9.4:2", "1.2.9.4:3"}
    assert not any(series[f"1.2.9.4:{n}"].is_image for n in (1, 2, 3))
    assert {series[f"1.2.9.4:{n}"].orientation for n in (1, 2, 3)} == {"axial", "coronal", "sagittal"}
    assert series["1.2.9.2"].orientation == "coronal" and series["1.2.9.2"].n_slices == 5
    assert read_dicom(tmp_path).meta["series_uid"] == "1.2.9.1"  # largest MR, not the CT
    small = read_dicom(tmp_path, series_uid="1.2.9.2")
    assert small.shape == (16, 12, 5) and small.meta["orientation"] == "coronal"


def test_mixed_orientations_in_one_series_are_split(tmp_path, stored):
    write_series(tmp_path, stored, affine_from((1, 1, 2)), series_uid="1.2.7")
    write_series(tmp_path, stored[:, :, :4], affine_from((1, 1, 2), rotation=rotation("x", 90)),
                 series_uid="1.2.7", seed=8)
    keys = sorted(s.key for s in list_series(tmp_path))
    assert keys == ["1.2.7:1", "1.2.7:2"]
    assert read_dicom(tmp_path).shape == (16, 12, 8)
    assert read_dicom(tmp_path, series_uid="1.2.7:2").meta["orientation"] == "coronal"


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_round_trip_exact(tmp_path, stored, suffix):
    affine = affine_from((0.8, 1.1, 3.0), (5, 6, 7), rotation("x", 20) @ rotation("y", 15))
    write_series(tmp_path / "dcm", stored, affine, rescale=(0.25, 3.0))
    vol = read_dicom(tmp_path / "dcm")
    out = write_image(vol, tmp_path / f"out{suffix}")
    back = read_image(out)
    assert back.array.dtype == vol.array.dtype
    np.testing.assert_array_equal(back.array, vol.array)
    np.testing.assert_allclose(back.affine, vol.affine, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["dcm", f"out{suffix}"])


@pytest.mark.parametrize("rescale", [(1.0, 0.0), (0.5, -10.0)])
def test_many_slices_cross_read_blocks(tmp_path, rescale):
    """37 slices (two full 16-slice read blocks and a partial one), shuffled names: voxels land in order."""
    stored = np.random.default_rng(3).integers(0, 4000, size=(9, 7, 37)).astype(np.uint16)
    write_series(tmp_path, stored, affine_from((1.0, 1.0, 2.0), (0, 0, 0), np.eye(3)), rescale=rescale,
                 shuffle_names=True)
    vol = read_dicom(tmp_path)
    expected = stored if rescale == (1.0, 0.0) else (stored * rescale[0] + rescale[1]).astype(np.float32)
    assert vol.array.dtype == expected.dtype
    np.testing.assert_array_equal(vol.array, expected)
