"""Every input that crashed limbseg in fuzzing (docs/reliability.md) is refused with one LimbsegError line."""

from __future__ import annotations

from pathlib import Path

import pytest

from limbseg.errors import LimbsegError
from limbseg.io import read_image
from tests.fuzz import regressions
from tests.fuzz.contract import check_cli_result, check_refusal, input_limits, run_cli
from tests.fuzz.seeds import write_tree

#: Corrupt inputs make the parsers warn a lot; the contract is about errors, not warnings.
pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.mark.parametrize("name", sorted(regressions.CASES))
def test_refused_with_one_line(tmp_path, name):
    files, entry = regressions.CASES[name]()
    root = write_tree(tmp_path / "in", files)
    with input_limits(), pytest.raises(LimbsegError) as info:
        read_image(root / entry)
    check_refusal(info.value, root / entry, root)


@pytest.mark.parametrize("name", sorted(regressions.CASES))
def test_cli_exits_2_and_writes_nothing(tmp_path, name):
    files, entry = regressions.CASES[name]()
    root = write_tree(tmp_path / "in", files)
    out = tmp_path / "out" / "scan.nii.gz"
    for argv, output in ((["info", str(root / entry)], None), (["convert", str(root / entry), "-o", str(out)], out)):
        rc, _, err = run_cli(argv)
        assert check_cli_result(rc, err, root / entry, output, root=root) == "refused"


def test_corrupt_vr_names_the_slice_and_the_problem(tmp_path):
    files, entry = regressions.corrupt_vr()
    root = write_tree(tmp_path, files)
    with pytest.raises(LimbsegError, match=r"slice_001\.dcm: truncated or corrupt DICOM file "
                                           r"\(NotImplementedError: Unknown Value Representation 'ZZ'"):
        read_image(root / entry)


def test_zip_errors_name_the_archive_and_member(tmp_path):
    files, entry = regressions.zip_with_corrupt_vr()
    root = write_tree(tmp_path, files)
    with pytest.raises(LimbsegError) as info:
        read_image(root / entry)
    assert str(info.value).startswith(f"{root / entry}: export/slice_001.dcm: truncated or corrupt DICOM file")
    assert "limbseg-zip-" not in str(info.value)


def test_huge_declared_sizes_are_refused_before_allocating(tmp_path):
    for recipe in (regressions.nifti_huge_dims, regressions.metaimage_huge_dims, regressions.nrrd_huge_sizes):
        files, entry = recipe()
        root = write_tree(tmp_path / recipe.__name__, files)
        with input_limits(memory=256 << 20), pytest.raises(LimbsegError, match="truncated"):
            read_image(root / entry)


def test_metaio_message_replaces_the_itk_source_location(tmp_path):
    files, entry = regressions.metaimage_without_element_type()
    root = write_tree(tmp_path, files)
    with pytest.raises(LimbsegError, match=r"MetaImage file \(RuntimeError: ElementType required and not defined"):
        read_image(root / entry)


def test_lengths_past_the_end_of_file_allocate_nothing(tmp_path):
    files, entry = regressions.huge_pixel_length()
    root = write_tree(tmp_path, files)
    with input_limits(memory=256 << 20):
        assert read_image(root / entry).shape == (8, 6, 3)


@pytest.mark.parametrize("recipe", ["infinite_label_value", "labels_as_a_list"])
def test_bad_label_schemes_are_refused(tmp_path, recipe):
    from limbseg.data.labelmaps import load_scheme
    from limbseg.training.data import read_dataset

    files, entry = getattr(regressions, recipe)()
    root = write_tree(tmp_path, files)
    for call, path in ((load_scheme, root / entry / "dataset.json"), (read_dataset, root / entry)):
        with pytest.raises(LimbsegError) as info:
            call(path)
        check_refusal(info.value, path, root)


def test_guard_keeps_limbseg_errors_and_passes_interrupts():
    from limbseg.io.guard import reading

    with pytest.raises(LimbsegError, match=r"^x\.nii: truncated or corrupt NIfTI file \(KeyError: 'dim'\)$"):
        with reading(Path("x.nii"), "NIfTI file"):
            raise KeyError("dim")
    with pytest.raises(LimbsegError, match="^own message$"):
        with reading("x.nii"):
            raise LimbsegError("own message")
    with pytest.raises(KeyboardInterrupt):
        with reading("x.nii"):
            raise KeyboardInterrupt
    with pytest.raises(LimbsegError, match=r"\(ValueError: first line\)$"):
        with reading("x.nii"):
            raise ValueError("first line\nsecond line")
