"""``limbseg labels merge`` and ``limbseg labels from-mesh``: per-structure masks or meshes -> one label map."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from limbseg.cli import add_command
from limbseg.errors import LimbsegError

if TYPE_CHECKING:
    from limbseg.data.labelmaps import LabelReport
    from limbseg.volume import LabelMap


def register(subparsers: argparse._SubParsersAction) -> None:  # noqa: SLF001
    parser = add_command(subparsers, "labels", _no_subcommand, "build a label map from masks or meshes")
    sub = parser.add_subparsers(dest="labels_command", metavar="SUBCOMMAND")
    merge = add_command(sub, "merge", run_merge, "merge per-structure binary masks into one label map")
    merge.add_argument("--scan", required=True, help="the scan whose grid the labels take (DICOM folder, NIfTI, NRRD)")
    merge.add_argument("--mask", action="append", default=[], metavar="NAME=PATH", required=True,
                       help="a structure's binary mask image (repeat per structure)")
    _common_options(merge)
    mesh = add_command(sub, "from-mesh", run_from_mesh, "voxelize closed surface meshes into a label map")
    mesh.add_argument("--reference", required=True, help="the scan whose grid the labels take")
    mesh.add_argument("--mesh", action="append", default=[], metavar="NAME=PATH", required=True,
                      help="a structure's closed mesh (.ply, .stl, .obj); repeat; the same name twice is united")
    mesh.add_argument("--space", choices=["LPS", "RAS"], default="LPS",
                      help="coordinate convention of the mesh files (3D Slicer writes LPS)")
    _common_options(mesh)


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--priority", default=None, metavar="A,B,...",
                        help="overlap rule: the first listed structure wins (default: overlaps become background)")
    parser.add_argument("--labels", default=None, metavar="JSON",
                        help="dataset.json or labels.json with the label scheme (default: tibia 1, femur 2, fibula 3, pelvis 4)")
    parser.add_argument("-o", "--output", required=True, help="output label image (.nii.gz, .nii, .nrrd)")


def _no_subcommand(args: argparse.Namespace) -> int:
    raise LimbsegError("choose a subcommand: limbseg labels merge | limbseg labels from-mesh")


def _check_output(path: str) -> Path:
    out = Path(path)
    if not out.name.lower().endswith((".nii.gz", ".nii", ".nrrd")):
        raise LimbsegError("unsupported output format (use .nii.gz, .nii or .nrrd)", out)
    return out


def run_merge(args: argparse.Namespace) -> int:
    from limbseg.data.labelmaps import load_scheme, merge_label_masks, parse_name_paths, parse_priority
    from limbseg.io import read_image

    out = _check_output(args.output)
    scheme = load_scheme(args.labels)
    pairs = parse_name_paths(args.mask, "--mask")
    names = [n for n, _ in pairs]
    if len(set(names)) != len(names):
        raise LimbsegError("--mask names a structure twice (merge the masks first, or use one per structure)")
    scan = read_image(args.scan)
    masks = {n: read_image(p) for n, p in pairs}
    labels, report = merge_label_masks(scan, masks, scheme, parse_priority(args.priority), dict(pairs))
    return _write(labels, report, out)


def run_from_mesh(args: argparse.Namespace) -> int:
    from limbseg.data.labelmaps import labels_from_meshes, load_scheme, parse_name_paths, parse_priority
    from limbseg.io import read_image
    from limbseg.io.mesh import read_mesh

    out = _check_output(args.output)
    scheme = load_scheme(args.labels)
    pairs = parse_name_paths(args.mesh, "--mesh")
    paths: dict[str, list[str]] = {}
    for name, p in pairs:
        paths.setdefault(name, []).append(p)
    reference = read_image(args.reference)
    meshes = {n: [read_mesh(p, space=args.space) for p in ps] for n, ps in paths.items()}
    labels, report = labels_from_meshes(reference, meshes, scheme, parse_priority(args.priority), paths)
    return _write(labels, report, out)


def _write(labels: LabelMap, report: LabelReport, out: Path) -> int:
    from limbseg.io import write_image

    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    write_image(labels, out)
    voxel_ml = labels.voxel_volume_mm3 / 1000.0
    for name, n in report.voxels.items():
        print(f"{name:<10} {n:>10} voxels  {n * voxel_ml:9.1f} ml")
    print(f"overlapping voxels: {report.overlap_voxels}")
    print(f"wrote {out}")
    return 0


__all__: Sequence[str] = ["register"]
