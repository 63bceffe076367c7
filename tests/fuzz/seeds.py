"""Seed corpora of the fuzzing harness: small valid files of every kind limbseg reads, made here.

Each ``*_seed`` function returns the bytes of one small valid input (or, for folders, a mapping of
relative file names to bytes), seeded so the corpus is the same on every run. The mutations of
:mod:`tests.fuzz.mutations` start from these.
"""

from __future__ import annotations

import functools
import gzip
import io
import json
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from limbseg.volume import Volume
from tests.io.dicom_factory import affine_from, rotation, write_series

#: (i, j, k) voxels of the image seeds: tiny, so that one input takes milliseconds.
SHAPE = (8, 6, 4)


def _stored(shape: tuple[int, int, int] = SHAPE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4000, size=shape).astype(np.uint16)


def _affine() -> np.ndarray:
    return affine_from((0.8, 1.1, 3.0), (-3.0, 7.0, 12.5), rotation("x", 10))


@functools.cache
def dicom_series_seed(transfer_syntax: str | None = None) -> dict[str, bytes]:
    """A 3-slice MR series (8x6 pixels; 32x32 for compressed syntaxes) as {file name: bytes}."""
    shape = (32, 32, 3) if transfer_syntax else (8, 6, 3)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_series(tmp, _stored(shape), _affine(), shuffle_names=False, transfer_syntax=transfer_syntax,
                             series_uid="1.2.826.0.1.3680043.8.498.1", study_uid="1.2.826.0.1.3680043.8.498.2",
                             rescale=(2.0, -100.0))
        return {p.name: p.read_bytes() for p in paths}


def zip_bytes(files: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in sorted(files.items()):
            zf.writestr(f"export/{name}", data)
    return buf.getvalue()


@functools.cache
def dicom_zip_seed() -> bytes:
    """The plain DICOM series seed in a deflated zip (under ``export/``)."""
    return zip_bytes(dicom_series_seed())


def _volume() -> Volume:
    return Volume(_stored().astype(np.int16), _affine(), {})


def _written(suffix: str) -> bytes:
    from limbseg.io import write_image

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"seed{suffix}"
        write_image(_volume(), path)
        return path.read_bytes()


@functools.cache
def nifti_seed() -> bytes:
    """An uncompressed single-file NIfTI-1 (352-byte header, int16 voxels)."""
    return _written(".nii")


@functools.cache
def nifti_gz_seed() -> bytes:
    return gzip.compress(nifti_seed(), mtime=0)


@functools.cache
def nrrd_seed(encoding: str = "raw") -> bytes:
    """A NRRD file in LPS space with ``raw`` or ``gzip`` encoding."""
    import nrrd

    from limbseg.io.nrrd import lps_header

    vol = _volume()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "seed.nrrd"
        nrrd.write(str(path), vol.array, {**lps_header(vol), "encoding": encoding}, index_order="F")
        data = path.read_bytes()
    head, sep, body = data.partition(b"\n\n")  # drop pynrrd's comment lines (they hold today's date)
    return b"\n".join(ln for ln in head.split(b"\n") if not ln.startswith(b"#")) + sep + body


@functools.cache
def metaimage_seed(compressed: bool = False) -> bytes:
    """A single-file MetaImage (.mha), uncompressed or zlib-compressed."""
    import SimpleITK as sitk

    from limbseg.io.sitk import volume_to_sitk

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "seed.mha"
        sitk.WriteImage(volume_to_sitk(_volume()), str(path), useCompression=compressed)
        return path.read_bytes()


@functools.cache
def mesh_seed(kind: str) -> bytes:
    """A closed box (12 triangles) as binary PLY, ASCII PLY, binary STL, ASCII STL or OBJ."""
    import trimesh

    box = trimesh.creation.box(extents=(10.0, 20.0, 30.0))
    box.apply_translation((5.0, -4.0, 60.0))
    if kind == "ply":
        return trimesh.exchange.ply.export_ply(box, encoding="binary")
    if kind == "ply-ascii":
        return trimesh.exchange.ply.export_ply(box, encoding="ascii")
    if kind == "stl":
        return trimesh.exchange.stl.export_stl(box)
    if kind == "stl-ascii":
        return trimesh.exchange.stl.export_stl_ascii(box).encode()
    if kind == "obj":
        return trimesh.exchange.obj.export_obj(box, include_normals=False, include_texture=False).encode()
    raise ValueError(kind)


MESH_SUFFIX = {"ply": ".ply", "ply-ascii": ".ply", "stl": ".stl", "stl-ascii": ".stl", "obj": ".obj"}


def labels_json() -> dict:
    from limbseg.labels import DEFAULT_SCHEME

    return DEFAULT_SCHEME.to_json()


@functools.cache
def dataset_json_seed() -> bytes:
    """dataset.json of a one-case nnU-Net v2 dataset (``subjects`` mapping included)."""
    meta = {"channel_names": {"0": "MRI"}, "labels": labels_json(), "numTraining": 1, "file_ending": ".nii.gz",
            "subjects": {"case_000": "s000"}, "name": "fuzz"}
    return json.dumps(meta, indent=2).encode()


@functools.cache
def manifest_seed() -> bytes:
    """A manifest CSV with two cases (scan, a mask and two meshes; paths relative to the CSV)."""
    return (b"id,scan,tibia,femur\n"
            b"case_a,scans/a.nii.gz,masks/a_tibia.nii.gz,meshes/a_femur_left.ply;meshes/a_femur_right.ply\n"
            b"case_b,scans/b.nii.gz,masks/b_tibia.nii.gz,\n")


@functools.cache
def bundle_seed() -> dict[str, bytes]:
    """A tiny but complete model bundle (a plain 2D U-Net with 4 features a level, ~20 kB): {'model.json': ..., 'weights.safetensors': ...}."""
    from limbseg.labels import DEFAULT_SCHEME
    from limbseg.models.bundle import save_bundle
    from limbseg.models.factory import build_model

    arch = {"arch": "unet2d", "in_channels": 3, "classes": DEFAULT_SCHEME.num_classes,
            "features": [4, 4, 4, 4, 4, 4]}
    model = build_model(arch)
    with tempfile.TemporaryDirectory() as tmp:
        out = save_bundle(Path(tmp) / "bundle", [model], {
            "architecture": arch, "labels": DEFAULT_SCHEME.to_json(),
            "preprocessing": {"spacing_mm": 2.0, "tile": [64, 64], "channels": "2.5d",
                              "normalisation": {"method": "percentile", "lower": 0.5, "upper": 99.5}}})
        return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    """Write {relative name: bytes} under ``root``; return ``root``."""
    for name, data in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root
