"""What the harness fuzzes: for each way data enters limbseg, a strategy for hostile inputs.

A *case* is ``(files, entry)``: files to write (relative name -> bytes) and the path, relative to
the folder they are written to, that is handed to limbseg. Each target mixes generic byte
mutations of its seed with the structure-aware mutations of its format.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

from tests.fuzz import mutations as M
from tests.fuzz import seeds as S

Case = tuple[dict[str, bytes], str]


@st.composite
def _series_case(draw: st.DrawFn, transfer_syntax: str | None, entry_is_file: bool = False,
                 folder: str = "dcm") -> Case:
    """The DICOM series seed with one (sometimes two) slices mutated."""
    files = dict(S.dicom_series_seed(transfer_syntax))
    pool = list(files.values())
    names = sorted(files)
    for name in draw(st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True)):
        files[name] = draw(st.one_of(M.mutated_bytes(files[name], pool), M.dicom_element_mutation(files[name])))
    entry = f"{folder}/{draw(st.sampled_from(names))}" if entry_is_file else folder
    return {f"{folder}/{n}": b for n, b in files.items()}, entry


@st.composite
def _zip_case(draw: st.DrawFn) -> Case:
    seed = S.dicom_zip_seed()
    how = draw(st.sampled_from(["bytes", "fields", "content"]))
    if how == "bytes":
        data = draw(M.mutated_bytes(seed, list(S.dicom_series_seed().values())))
    elif how == "fields":
        data = draw(M.zip_field_mutation(seed))
    else:
        inner, _ = draw(_series_case(None, folder="x"))
        data = S.zip_bytes({k.removeprefix("x/"): v for k, v in inner.items()})
    return {"scan.zip": data}, "scan.zip"


@st.composite
def _nifti_case(draw: st.DrawFn, gz: bool) -> Case:
    seed = S.nifti_seed()
    inner = draw(st.one_of(M.nifti_header_mutation(seed), M.mutated_bytes(seed), st.just(seed)))
    data = gzip.compress(inner, mtime=0) if gz else inner
    if gz and (inner == seed or draw(st.booleans())):
        data = draw(M.mutated_bytes(data))  # the compressed stream itself
    name = "scan.nii.gz" if gz else "scan.nii"
    return {name: data}, name


@st.composite
def _nrrd_case(draw: st.DrawFn, encoding: str) -> Case:
    seed = S.nrrd_seed(encoding)
    header = M.text_header_mutation(seed, b": ", M.NRRD_VALUES)
    data = draw(st.one_of(header, M.mutated_bytes(seed), header.flatmap(M.mutated_bytes)))
    return {"scan.nrrd": data, "seed.raw": b"\x01\x02" * 200}, "scan.nrrd"


@st.composite
def _mha_case(draw: st.DrawFn, compressed: bool) -> Case:
    seed = S.metaimage_seed(compressed)
    header = M.text_header_mutation(seed, b" = ", M.META_VALUES)
    data = draw(st.one_of(header, M.mutated_bytes(seed), header.flatmap(M.mutated_bytes)))
    return {"scan.mha": data, "seed.raw": b"\x01\x02" * 200}, "scan.mha"


@st.composite
def _mesh_case(draw: st.DrawFn, kind: str) -> Case:
    seed = S.mesh_seed(kind)
    structured = {"ply": M.ply_header_mutation(seed), "ply-ascii": M.ply_header_mutation(seed),
                  "stl": M.stl_count_mutation(seed), "obj": M.obj_mutation(seed)}.get(kind)
    options = [M.mutated_bytes(seed, [S.mesh_seed(k) for k in S.MESH_SUFFIX])]
    if structured is not None:
        options.append(structured)
    name = "bone" + S.MESH_SUFFIX[kind]
    return {name: draw(st.one_of(options))}, name


@st.composite
def _dataset_case(draw: st.DrawFn) -> Case:
    seed = S.dataset_json_seed()
    meta = draw(st.one_of(M.json_mutation(seed), M.mutated_bytes(seed)))
    nii = S.nifti_gz_seed()
    return {"ds/dataset.json": meta, "ds/imagesTr/case_000_0000.nii.gz": nii,
            "ds/labelsTr/case_000.nii.gz": nii}, "ds"


@st.composite
def _manifest_case(draw: st.DrawFn) -> Case:
    seed = S.manifest_seed()
    return {"manifest.csv": draw(st.one_of(M.csv_mutation(seed), M.mutated_bytes(seed)))}, "manifest.csv"


@st.composite
def _bundle_case(draw: st.DrawFn) -> Case:
    files = dict(S.bundle_seed())
    which = draw(st.sampled_from(["model.json", "weights.safetensors", "both"]))
    if which in ("model.json", "both"):
        files["model.json"] = draw(st.one_of(M.json_mutation(files["model.json"]),
                                             M.mutated_bytes(files["model.json"])))
    if which in ("weights.safetensors", "both"):
        files["weights.safetensors"] = draw(st.one_of(M.safetensors_mutation(files["weights.safetensors"]),
                                                      M.mutated_bytes(files["weights.safetensors"])))
    return {f"bundle/{k}": v for k, v in files.items()}, "bundle"


@dataclass(frozen=True)
class Target:
    """One way in: its name, its case strategy and the API call made on the entry path."""

    name: str
    cases: Any
    reader: str  # "image", "series", "mesh", "dataset", "scheme", "manifest", "bundle"
    seed: Callable[[], Case]  #: the unmutated input


def _series_seed(ts: str | None, entry_is_file: bool = False) -> Callable[[], Case]:
    def seed() -> Case:
        files = {f"dcm/{n}": b for n, b in S.dicom_series_seed(ts).items()}
        return files, (sorted(files)[0] if entry_is_file else "dcm")

    return seed


def _one(name: str, make: Callable[[], bytes]) -> Callable[[], Case]:
    return lambda: ({name: make()}, name)


def _dataset_seed() -> Case:
    nii = S.nifti_gz_seed()
    return {"ds/dataset.json": S.dataset_json_seed(), "ds/imagesTr/case_000_0000.nii.gz": nii,
            "ds/labelsTr/case_000.nii.gz": nii}, "ds"


TARGETS = [
    Target("dicom-folder", _series_case(None), "image", _series_seed(None)),
    Target("dicom-series-list", _series_case(None), "series", _series_seed(None)),
    Target("dicom-file", _series_case(None, entry_is_file=True), "image", _series_seed(None, True)),
    Target("dicom-rle", _series_case(RLELossless), "image", _series_seed(RLELossless)),
    Target("dicom-jpeg2000", _series_case(JPEG2000Lossless), "image", _series_seed(JPEG2000Lossless)),
    Target("dicom-jpegls", _series_case(JPEGLSLossless), "image", _series_seed(JPEGLSLossless)),
    Target("dicom-zip", _zip_case(), "image", _one("scan.zip", S.dicom_zip_seed)),
    Target("nifti", _nifti_case(gz=False), "image", _one("scan.nii", S.nifti_seed)),
    Target("nifti-gz", _nifti_case(gz=True), "image", _one("scan.nii.gz", S.nifti_gz_seed)),
    Target("nrrd-raw", _nrrd_case("raw"), "image", _one("scan.nrrd", lambda: S.nrrd_seed("raw"))),
    Target("nrrd-gzip", _nrrd_case("gzip"), "image", _one("scan.nrrd", lambda: S.nrrd_seed("gzip"))),
    Target("metaimage", _mha_case(False), "image", _one("scan.mha", lambda: S.metaimage_seed(False))),
    Target("metaimage-zlib", _mha_case(True), "image", _one("scan.mha", lambda: S.metaimage_seed(True))),
    *(Target(f"mesh-{k}", _mesh_case(k), "mesh", _one("bone" + S.MESH_SUFFIX[k], lambda k=k: S.mesh_seed(k)))
      for k in S.MESH_SUFFIX),
    Target("dataset-json", _dataset_case(), "dataset", _dataset_seed),
    Target("labels-json", _dataset_case(), "scheme", _dataset_seed),
    Target("manifest-csv", _manifest_case(), "manifest", _one("manifest.csv", S.manifest_seed)),
    Target("model-bundle", _bundle_case(), "bundle",
           lambda: ({f"bundle/{k}": v for k, v in S.bundle_seed().items()}, "bundle")),
]

#: Targets whose entry ``limbseg info`` / ``convert`` accept.
CLI_TARGETS = [t for t in TARGETS if t.reader == "image"]


def call_reader(reader: str, path: Any) -> Any:
    """The API entry point of ``reader`` on ``path``."""
    if reader == "image":
        from limbseg.io import read_image

        return read_image(path)
    if reader == "series":
        from limbseg.io.dicom import list_series

        return list_series(path)
    if reader == "mesh":
        from limbseg.io.mesh import read_mesh

        return read_mesh(path)
    if reader == "dataset":
        from limbseg.training.data import read_dataset

        return read_dataset(path)
    if reader == "scheme":
        from limbseg.data.labelmaps import load_scheme

        return load_scheme(path / "dataset.json")
    if reader == "manifest":
        from limbseg.data.prepare import read_manifest
        from limbseg.labels import DEFAULT_SCHEME

        return read_manifest(path, DEFAULT_SCHEME)
    if reader == "bundle":
        from limbseg.models.bundle import load_bundle

        return load_bundle(path)
    raise ValueError(reader)


def warm_up(target: Target) -> None:
    """Read the target's unmutated seed once, outside the per-input limits, so that lazy imports (torch,
    ITK, pylibjpeg) map their libraries before the address-space limit applies."""
    import tempfile
    from pathlib import Path

    from limbseg.errors import LimbsegError

    files, entry = target.seed()
    with tempfile.TemporaryDirectory() as tmp:
        root = S.write_tree(Path(tmp), files)
        try:
            call_reader(target.reader, root / entry)
        except LimbsegError:
            pass
