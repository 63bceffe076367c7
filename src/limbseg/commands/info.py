"""``limbseg info INPUT [--series UID]``: list DICOM series and describe an image."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from limbseg.cli import add_command
from limbseg.volume import Volume


def register(subparsers: argparse._SubParsersAction) -> None:  # noqa: SLF001
    parser = add_command(subparsers, "info", run, "describe a scan: DICOM series, shape, spacing, geometry")
    parser.add_argument("input", type=Path, help="DICOM folder, .zip, DICOM file, NIfTI, NRRD or MetaImage")
    parser.add_argument("--series", metavar="UID", default=None, help="DICOM series to describe (default: "
                        "the largest MR image series)")


def series_table(path: Path) -> str:
    """A text table of the DICOM stacks under ``path``; '*' marks the one read by default."""
    from limbseg.io.dicom import list_series
    from limbseg.io.dicom_series import default_series

    series = list_series(path)
    default = default_series(series)
    rows = [("", "series", "description", "modality", "orientation", "slices", "size (i x j x k)")]
    for s in series:
        mark = "*" if default is not None and s.key == default.key else ("" if s.is_image else "-")
        rows.append((mark, s.key, s.description or "-", s.modality or "-", s.orientation,
                     str(s.n_slices), s.size_label))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.append("* read by default; - localizer or too few slices for a 3D image")
    return "\n".join(lines)


def describe_volume(volume: Volume) -> str:
    """Shape, spacing (mm), orientation, RAS affine, dtype and value range of a volume."""
    import nibabel as nib

    arr = volume.array
    finite = arr[np.isfinite(arr)] if np.issubdtype(arr.dtype, np.floating) else arr
    value_range = f"{finite.min()} .. {finite.max()}" if finite.size else "no finite values"
    axcodes = "".join(nib.aff2axcodes(volume.affine))
    lines = [
        f"shape (i, j, k): {volume.shape}",
        "spacing (mm):    " + " x ".join(f"{s:.4g}" for s in volume.spacing),
        f"orientation:     {axcodes} (RAS axis codes of i, j, k)"
        + (f", {volume.meta['orientation']} slices" if "orientation" in volume.meta else ""),
        f"dtype:           {arr.dtype}",
        f"value range:     {value_range}",
        "affine (voxel -> RAS mm):",
    ]
    lines += ["  " + " ".join(f"{v:10.4f}" for v in row) for row in volume.affine]
    for key in ("series_uid", "description", "modality"):
        if volume.meta.get(key):
            lines.append(f"{key}: {volume.meta[key]}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from limbseg.errors import LimbsegError
    from limbseg.io import image_kind, read_image

    if not args.input.exists():
        raise LimbsegError("no such file or folder", args.input)
    if image_kind(args.input) in ("dicom", "zip", "dicom-file"):
        print(series_table(args.input))
        print()
    volume = read_image(args.input, series_uid=args.series, allow_resample=False)
    print(describe_volume(volume))
    return 0
