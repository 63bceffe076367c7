"""Quality-control pictures (matplotlib, Agg backend): axial montage, coronal overlay, mesh render.

Images are reoriented to the closest RAS voxel order (nibabel ``io_orientation``) only for display
and shown in radiological convention (patient right on the left of the picture, anterior or
superior up), with the pixel aspect taken from the voxel spacing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from limbseg.io.atomic import atomic_path
from limbseg.volume import LabelMap, Volume


def _ras_arrays(image: Volume, labels: LabelMap) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, labels, spacing) with axes reordered/flipped to the closest RAS order."""
    import nibabel as nib

    ornt = nib.orientations.io_orientation(image.affine)
    img = nib.orientations.apply_orientation(np.asarray(image.array, dtype=np.float32), ornt)
    lab = nib.orientations.apply_orientation(labels.array, ornt)
    spacing = np.asarray(image.spacing)[ornt[:, 0].astype(int).argsort()]
    return img, lab, spacing


def _colours(labels: LabelMap) -> np.ndarray:
    """RGBA lookup table (256, 4) float, alpha 0.45 for labelled values, 0 for background."""
    lut = np.zeros((256, 4), dtype=np.float32)
    for s in labels.scheme.structures:
        lut[s.value] = (*[c / 255 for c in s.color], 0.45)
    return lut


def _clim(img: np.ndarray) -> tuple[float, float]:
    fg = img[img > 0]
    if fg.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(fg[:: max(1, fg.size // 100_000)], [1, 99.5])
    return float(lo), float(max(hi, lo + 1e-6))


def _panel(img2d: np.ndarray, lab2d: np.ndarray, lut: np.ndarray, clim: tuple[float, float],
           sx: float, sy: float, max_px: int = 320) -> np.ndarray:
    """An RGB picture (rows, cols, 3) float of a slice indexed (x, y): x flipped (radiological), y up.

    Pixels are resampled to square (the smaller spacing), at most ``max_px`` on the long side.
    """
    from scipy import ndimage

    g = np.clip((img2d - clim[0]) / (clim[1] - clim[0]), 0, 1)[..., None].repeat(3, axis=-1)
    colour = lut[lab2d]
    rgb = g * (1 - colour[..., 3:]) + colour[..., :3] * colour[..., 3:]
    rgb = np.transpose(rgb[::-1], (1, 0, 2))[::-1]  # rows: y from high (top) to low; cols: x high -> low
    px = min(sx, sy)
    zoom = np.array([sy / px, sx / px])
    zoom *= min(1.0, max_px / max(rgb.shape[0] * zoom[0], rgb.shape[1] * zoom[1]))
    return np.clip(ndimage.zoom(rgb, (*zoom, 1), order=0), 0, 1)


def axial_montage(image: Volume, labels: LabelMap, path: str | Path, *, n: int = 12, cols: int = 4) -> Path:
    """A grid of ``n`` axial slices spread evenly over the labelled (else whole) range, top first."""
    img, lab, sp = _ras_arrays(image, labels)
    ks = np.flatnonzero(lab.any(axis=(0, 1)))
    lo, hi = (ks[0], ks[-1]) if ks.size else (0, img.shape[2] - 1)
    picks = np.unique(np.linspace(lo, hi, n).round().astype(int))[::-1]
    lut, clim = _colours(labels), _clim(img)
    panels = [_panel(img[:, :, k], lab[:, :, k], lut, clim, sp[0], sp[1], max_px=240) for k in picks]
    h, w = panels[0].shape[:2]
    rows = int(np.ceil(len(panels) / cols))
    sheet = np.zeros((rows * (h + 4), cols * (w + 4), 3))
    for n_, p in enumerate(panels):
        r, c = divmod(n_, cols)
        sheet[r * (h + 4):r * (h + 4) + h, c * (w + 4):c * (w + 4) + w] = p
    return _imsave(sheet, path)


def coronal_overlay(image: Volume, labels: LabelMap, path: str | Path) -> Path:
    """One coronal slice (patient right on the left, superior up) through most labelled voxels."""
    img, lab, sp = _ras_arrays(image, labels)
    counts = (lab > 0).sum(axis=(0, 2))
    j = int(np.argmax(counts)) if counts.any() else img.shape[1] // 2
    panel = _panel(img[:, j, :], lab[:, j, :], _colours(labels), _clim(img), sp[0], sp[2], max_px=900)
    return _imsave(panel, path)


def _imsave(rgb: np.ndarray, path: str | Path) -> Path:
    import matplotlib.image as mpimg

    path = Path(path)
    with atomic_path(path) as tmp:
        mpimg.imsave(str(tmp), np.ascontiguousarray(rgb), format="png")
    return path


def mesh_render(meshes: dict, labels: LabelMap, path: str | Path, *, max_faces: int = 3000) -> Path:
    """A 3D picture of the meshes (RAS mm), each bone in its colour, faces subsampled if needed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    fig = plt.figure(figsize=(4, 5.5))
    ax = fig.add_subplot(projection="3d")
    colours = {s.name: np.asarray(s.color) / 255 for s in labels.scheme.structures}
    allv = []
    for (name, _side), mesh in meshes.items():
        faces = mesh.faces[:: max(1, len(mesh.faces) // max_faces)]
        tris = mesh.vertices[faces]
        ax.add_collection3d(Poly3DCollection(tris, facecolor=colours.get(name, (0.7, 0.7, 0.7)),
                                             edgecolor="none", alpha=0.9))
        allv.append(mesh.vertices)
    if allv:
        v = np.concatenate(allv)
        centre, half = (v.max(0) + v.min(0)) / 2, (v.max(0) - v.min(0)).max() / 2 + 1
        for setter, c in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), centre, strict=True):
            setter(c - half, c + half)
    ax.view_init(elev=10, azim=-90)  # looking from the front (anterior), patient right on the left
    ax.set_xlabel("R (mm)")
    ax.set_ylabel("A (mm)")
    ax.set_zlabel("S (mm)")
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(str(tmp), dpi=80, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def write_qc(image: Volume, labels: LabelMap, meshes: dict, directory: str | Path) -> list[Path]:
    """Write ``axial_montage.png``, ``coronal.png`` and ``meshes.png`` into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    out = [axial_montage(image, labels, directory / "axial_montage.png"),
           coronal_overlay(image, labels, directory / "coronal.png")]
    if meshes:
        out.append(mesh_render(meshes, labels, directory / "meshes.png"))
    return out
