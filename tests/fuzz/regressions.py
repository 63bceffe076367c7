"""Recipes for the inputs that crashed limbseg (or would have) in fuzzing, kept as regression cases.

Each recipe returns a case ``(files, entry)`` built from the seeds, so the bytes are small and
reproducible. ``CLI_CASES`` are also run through the real console script.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Callable

from tests.fuzz import seeds as S
from tests.fuzz.mutations import NIFTI_FIELDS, dicom_elements

Case = tuple[dict[str, bytes], str]


def set_element(data: bytes, tag: tuple[int, int], *, vr: bytes | None = None, value: bytes | None = None,
                length: int | None = None) -> bytes:
    """``data`` (an explicit-VR little-endian file) with one element's VR, value or length field replaced."""
    out = bytearray(data)
    for tag_at, len_at, size, old_length in dicom_elements(data):
        if struct.unpack_from("<HH", data, tag_at) != tag:
            continue
        if vr is not None:
            out[tag_at + 4:tag_at + 6] = vr
        if value is not None:
            out[len_at + size:len_at + size + old_length] = value
            out[len_at:len_at + size] = len(value).to_bytes(size, "little")
        if length is not None:
            out[len_at:len_at + size] = length.to_bytes(size, "little")
        return bytes(out)
    raise KeyError(tag)


def _series(**changes: bytes) -> dict[str, bytes]:
    files = dict(S.dicom_series_seed())
    files.update(changes)
    return {f"dcm/{n}": b for n, b in files.items()}


def corrupt_vr() -> Case:
    """Issue #18: PixelSpacing's VR 'DS' replaced by 'ZZ' -> pydicom's NotImplementedError escaped (exit 1)."""
    bad = set_element(S.dicom_series_seed()["slice_001.dcm"], (0x0028, 0x0030), vr=b"ZZ")
    return _series(**{"slice_001.dcm": bad}), "dcm"


def empty_rows() -> Case:
    """Rows (0028,0010) with an empty value: ``int(None)`` raised TypeError while building the slice header."""
    bad = set_element(S.dicom_series_seed()["slice_000.dcm"], (0x0028, 0x0010), value=b"")
    return _series(**{"slice_000.dcm": bad}), "dcm"


def shifted_file_meta() -> Case:
    """One byte deleted at the start of the file meta group: pydicom then reads a value whose length field
    says ~3.5 GB from a 1 kB file, and Python allocated all of it (MemoryError under the harness' limit)."""
    data = S.dicom_series_seed()["slice_000.dcm"]
    return _series(**{"slice_000.dcm": data[:132] + data[133:]}), "dcm"


def huge_pixel_length() -> Case:
    """PixelData's length field says 4 GB - 2 (the data is 96 bytes, the last in the file): the decoder asked
    Python for 4 GB. Now the read is bounded by the file, and the slice reads normally."""
    bad = set_element(S.dicom_series_seed()["slice_002.dcm"], (0x7FE0, 0x0010), length=0xFFFFFFFE)
    return _series(**{"slice_002.dcm": bad}), "dcm"


def file_without_image() -> Case:
    """``limbseg info FILE`` on a DICOM file without pixel data (raw data SOP class) next to a valid series:
    ``next()`` found no series holding it and raised StopIteration."""
    import io
    import tempfile
    from pathlib import Path

    import pydicom

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "x.dcm").write_bytes(S.dicom_series_seed()["slice_001.dcm"])
        ds = pydicom.dcmread(Path(tmp) / "x.dcm")
    del ds.PixelData, ds.Rows, ds.Columns
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.66"
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return {**_series(), "dcm/notes.dcm": buf.getvalue()}, "dcm/notes.dcm"


def zip_with_corrupt_vr() -> Case:
    """The corrupt-VR series in a zip: the error named the deleted temporary extraction folder, not the zip."""
    files, _ = corrupt_vr()
    return {"scan.zip": S.zip_bytes({k.removeprefix("dcm/"): v for k, v in files.items()})}, "scan.zip"


def _zip_with(*, data_byte: int | None = None, flags: int | None = None, method: int | None = None) -> Case:
    """The DICOM zip seed with its first entry changed in place: the first byte of its compressed data, or its
    general-purpose flags / compression method (in the local and the central header alike)."""
    import struct

    data = bytearray(S.dicom_zip_seed())
    name_len, extra_len = struct.unpack_from("<HH", data, 26)
    central = data.index(b"PK\x01\x02")
    if data_byte is not None:
        data[30 + name_len + extra_len] = data_byte
    if flags is not None:
        struct.pack_into("<H", data, 6, flags)
        struct.pack_into("<H", data, central + 8, flags)
    if method is not None:
        struct.pack_into("<H", data, 8, method)
        struct.pack_into("<H", data, central + 10, method)
    return {"scan.zip": bytes(data)}, "scan.zip"


def zip_with_corrupt_deflate() -> Case:
    """A deflate stream whose first block has the reserved type 3: ``zlib.error`` escaped the extraction (the
    GUI answered the upload with HTTP 500; found by the GUI upload fuzzer at 2,000 inputs)."""
    return _zip_with(data_byte=0x07)


def zip_with_encrypted_entry() -> Case:
    """An entry flagged as encrypted: zipfile raises RuntimeError (password required)."""
    return _zip_with(flags=0x0001)


def zip_with_unknown_compression() -> Case:
    """An entry compressed by method 77 (none such): zipfile raises NotImplementedError."""
    return _zip_with(method=77)


def _nifti_with(**fields: object) -> bytes:
    data = bytearray(S.nifti_seed())
    for name, value in fields.items():
        at, fmt = NIFTI_FIELDS[name]
        struct.pack_into(fmt, data, at, value)
    return bytes(data)


def nifti_huge_dims() -> Case:
    """A 700-byte .nii.gz whose header declares 2000 x 2000 x 500 int16 voxels (4 GB): nibabel allocated 4 GB
    before finding the data short."""
    data = gzip.compress(_nifti_with(dim1=2000, dim2=2000, dim3=500), mtime=0)
    return {"scan.nii.gz": data}, "scan.nii.gz"


def nifti_huge_dims_uncompressed() -> Case:
    return {"scan.nii": _nifti_with(dim1=2000, dim2=2000, dim3=500)}, "scan.nii"


def metaimage_huge_dims() -> Case:
    """A MetaImage whose DimSize says 1000 x 1000 x 500 over 384 bytes of data: ITK allocated 1 GB."""
    data = S.metaimage_seed().replace(b"DimSize = 8 6 4", b"DimSize = 1000 1000 500")
    return {"scan.mha": data}, "scan.mha"


def metaimage_outside_data_file() -> Case:
    """ElementDataFile pointing outside the header's folder (here /dev/zero, which never ends)."""
    data = S.metaimage_seed()
    head = data[:data.index(b"ElementDataFile")]
    return {"scan.mha": head + b"ElementDataFile = /dev/zero\n"}, "scan.mha"


def nrrd_huge_sizes() -> Case:
    data = S.nrrd_seed().replace(b"sizes: 8 6 4", b"sizes: 2000 2000 500")
    return {"scan.nrrd": data}, "scan.nrrd"


def nrrd_outside_data_file() -> Case:
    head = S.nrrd_seed().split(b"\n\n", 1)[0]
    return {"scan.nrrd": head + b"\ndata file: /dev/zero\n\n"}, "scan.nrrd"


def invalid_uid_splits_series() -> Case:
    """SeriesInstanceUID of one slice made invalid: pydicom warned (and logged) "Invalid value for VR UI" on
    stderr before limbseg's error line (no 3D series left), so the real process printed several lines."""
    bad = set_element(S.dicom_series_seed()["slice_000.dcm"], (0x0020, 0x000E), value=b"1.2.abc\\9" + b"7" * 80)
    return _series(**{"slice_000.dcm": bad}), "dcm"


def nifti_bad_sizeof_hdr() -> Case:
    """sizeof_hdr 0 and the data cut short: nibabel's own stderr handler printed "sizeof_hdr should be 348"
    before the error line."""
    return {"scan.nii": _nifti_with(sizeof_hdr=0)[:-40]}, "scan.nii"


def metaimage_without_element_type() -> Case:
    """No ElementType line: MetaIO printed four lines to the C stderr ("ElementType required and not
    defined." ...) and ITK's exception text was a source location."""
    data = S.metaimage_seed()
    return {"scan.mha": data.replace(b"ElementType = MET_SHORT\n", b"")}, "scan.mha"


def metaimage_huge_ndims() -> Case:
    """``NDims = 65535 65535 65535``: MetaIO (inside SimpleITK) crashed the whole process with a segmentation
    fault in ReadImageInformation (found by the long run)."""
    return {"scan.mha": S.metaimage_seed().replace(b"NDims = 3", b"NDims = 65535 65535 65535")}, "scan.mha"


def infinite_label_value() -> Case:
    """A dataset.json label value of ``-Infinity`` (valid in Python's JSON): ``int()`` raised OverflowError,
    which ``load_scheme``, ``read_dataset`` and ``load_bundle`` did not expect (found by the long run)."""
    meta = S.dataset_json_seed().replace(b'"value": 4', b'"value": -Infinity')
    assert meta != S.dataset_json_seed()
    nii = S.nifti_gz_seed()
    return {"ds/dataset.json": meta, "ds/imagesTr/case_000_0000.nii.gz": nii, "ds/labelsTr/case_000.nii.gz": nii}, "ds"


def labels_as_a_list() -> Case:
    """dataset.json ``labels`` given as a list: ``.items()`` raised AttributeError (found by the long run)."""
    files, entry = infinite_label_value()
    files["ds/dataset.json"] = b'{"labels": [1, 2], "file_ending": ".nii.gz"}'
    return files, entry


#: name -> recipe; every one must be refused with one LimbsegError line, within the harness' limits.
CASES: dict[str, Callable[[], Case]] = {f.__name__: f for f in (
    corrupt_vr, empty_rows, shifted_file_meta, file_without_image, zip_with_corrupt_vr, nifti_huge_dims,
    nifti_huge_dims_uncompressed, metaimage_huge_dims, metaimage_outside_data_file, nrrd_huge_sizes,
    nrrd_outside_data_file, invalid_uid_splits_series, nifti_bad_sizeof_hdr, metaimage_without_element_type,
    metaimage_huge_ndims, zip_with_corrupt_deflate, zip_with_encrypted_entry, zip_with_unknown_compression)}

#: The ones also run through the real ``limbseg`` process.
CLI_CASES = {n: CASES[n] for n in ("corrupt_vr", "shifted_file_meta", "zip_with_corrupt_vr", "nifti_huge_dims",
                                   "metaimage_huge_dims", "nrrd_outside_data_file", "invalid_uid_splits_series",
                                   "nifti_bad_sizeof_hdr", "metaimage_without_element_type",
                                   "metaimage_huge_ndims", "zip_with_corrupt_deflate")}
