"""``limbseg convert INPUT -o OUTPUT``: DICOM / NIfTI / NRRD / MetaImage to NIfTI, NRRD or MetaImage."""

from __future__ import annotations

import argparse
from pathlib import Path

from limbseg.cli import add_command

OUTPUT_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")


def register(subparsers: argparse._SubParsersAction) -> None:  # noqa: SLF001
    parser = add_command(subparsers, "convert", run, "convert a scan to NIfTI, NRRD or MetaImage, keeping its geometry")
    parser.add_argument("input", type=Path, help="DICOM folder, .zip, DICOM file, NIfTI, NRRD or MetaImage")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="output file; the format follows the extension (.nii.gz, .nii, .nrrd, .mha)")
    parser.add_argument("--series", metavar="UID", default=None,
                        help="DICOM series to read (default: the largest MR image series)")
    parser.add_argument("--allow-resample", action="store_true",
                        help="resample a DICOM series with missing slices or uneven spacing (linear, along k)")
    parser.add_argument("--clean-nonfinite", action="store_true", help="set NaN/Inf voxels to 0 instead of failing")


def run(args: argparse.Namespace) -> int:
    from limbseg.errors import LimbsegError
    from limbseg.io import read_image, write_image

    if not args.output.name.lower().endswith(OUTPUT_SUFFIXES):
        raise LimbsegError("unsupported output format (use .nii.gz, .nii, .nrrd or .mha)", args.output)
    volume = read_image(args.input, series_uid=args.series, allow_resample=args.allow_resample,
                        clean_nonfinite=args.clean_nonfinite)
    write_image(volume, args.output)
    spacing = " x ".join(f"{s:.4g}" for s in volume.spacing)
    print(f"wrote {args.output} ({'x'.join(map(str, volume.shape))} voxels, {spacing} mm, {volume.array.dtype})")
    return 0
