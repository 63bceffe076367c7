"""safe_extract refuses traversal, absolute paths, links, and archives over the limits."""

from __future__ import annotations

import stat
import zipfile

import numpy as np
import pytest

from limbseg.errors import LimbsegError
from limbseg.io.archive import safe_extract
from limbseg.io.dicom import read_dicom, read_source_datasets
from tests.io.dicom_factory import affine_from, write_series


def make_zip(path, entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def test_extracts_nested_files(tmp_path):
    z = make_zip(tmp_path / "a.zip", {"x/y/one.txt": b"1", "two.txt": b"22"})
    files = safe_extract(z, tmp_path / "out")
    assert sorted(p.name for p in files) == ["one.txt", "two.txt"]
    assert (tmp_path / "out" / "x" / "y" / "one.txt").read_bytes() == b"1"


@pytest.mark.parametrize("name", ["../evil.txt", "a/../../evil.txt", "/abs/evil.txt", "..\\evil.txt",
                                  "C:/evil.txt"])
def test_refuses_paths_outside(tmp_path, name):
    z = make_zip(tmp_path / "a.zip", {"ok.txt": b"1", name: b"evil"})
    with pytest.raises(LimbsegError, match="outside"):
        safe_extract(z, tmp_path / "out" / "dest")
    assert not list((tmp_path / "out").rglob("*"))  # nothing written at all
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "evil.txt").exists()


def test_refuses_symlinks(tmp_path):
    z = tmp_path / "a.zip"
    with zipfile.ZipFile(z, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(LimbsegError, match="symbolic link"):
        safe_extract(z, tmp_path / "out")


def test_limits(tmp_path):
    z = make_zip(tmp_path / "a.zip", {f"{n}.txt": b"abc" for n in range(5)})
    with pytest.raises(LimbsegError, match="5 entries, over the limit of 4"):
        safe_extract(z, tmp_path / "out", max_entries=4)
    with pytest.raises(LimbsegError, match="expands to"):
        safe_extract(z, tmp_path / "out", max_bytes=10)
    bomb = make_zip(tmp_path / "bomb.zip", {"zeros.bin": bytes(4 << 20)})
    with pytest.raises(LimbsegError, match="compression ratio"):
        safe_extract(bomb, tmp_path / "out")
    assert not (tmp_path / "out" / "zeros.bin").exists()


def test_not_a_zip(tmp_path):
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(LimbsegError, match="not a readable zip archive"):
        safe_extract(tmp_path / "bad.zip", tmp_path / "out")


def test_read_dicom_from_zip(tmp_path):
    stored = np.arange(16 * 12 * 8, dtype=np.uint16).reshape(16, 12, 8)
    paths = write_series(tmp_path / "src" / "series", stored, affine_from((1, 1, 2)), series_uid="1.2.5")
    z = tmp_path / "scan.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in paths:
            zf.write(p, p.relative_to(tmp_path / "src").as_posix())
    vol = read_dicom(z)
    np.testing.assert_array_equal(vol.array, stored)
    assert vol.meta["dicom_archive"] == str(z)
    assert vol.meta["dicom_files"] == [f"series/{p.name}" for p in paths]
    datasets = read_source_datasets(vol.meta)
    assert [d.InstanceNumber for d in datasets] == list(range(1, 9))
