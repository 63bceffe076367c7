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
    img = nib.orientations.apply_orientation(np.asarray(image.array), ornt)  # a view; slices become float later
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
    """Display window: the 1st and 99.5th percentiles of the non-zero voxels (of a regular subsample)."""
    step = max(1, round((img.size / 4_000_000) ** (1 / 3)))
    sub = img[::step, ::step, ::step] if img.ndim == 3 else img
    fg = sub[sub > 0].astype(np.float32)
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

    g = np.clip((img2d.astype(np.float32) - clim[0]) / (clim[1] - clim[0]), 0, 1)[..., None].repeat(3, axis=-1)
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


def _coarse(mesh, max_faces: int):
    """The mesh decimated to about ``max_faces`` faces (quadric decimation), for drawing only."""
    if len(mesh.faces) <= max_faces:
        return mesh
    return mesh.simplify_quadric_decimation(face_count=max_faces)


# (title, screen-x direction, depth direction towards the viewer) in RAS; screen-y is always superior (+z).
VIEWS = (("front (patient right on the left)", (-1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
         ("from the left (anterior on the left)", (0.0, -1.0, 0.0), (-1.0, 0.0, 0.0)))


def mesh_render(meshes: dict, labels: LabelMap, path: str | Path, *, max_faces: int = 6000) -> Path:
    """Front and side views of the meshes (RAS mm), each bone in its colour, orthographic, Lambert-shaded.

    Meshes are decimated (quadric, ``max_faces`` each) for drawing only; the written mesh files are untouched.
    Triangles are drawn back to front (painter's algorithm) with a headlight from the viewer's upper left.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    colours = {s.name: np.asarray(s.color, dtype=float) / 255 for s in labels.scheme.structures}
    tris, rgb = [], []
    for (name, _side), mesh in meshes.items():
        m = _coarse(mesh, max_faces)
        tris.append(m.vertices[m.faces])
        rgb.append(np.broadcast_to(colours.get(name, np.full(3, 0.7)), (len(m.faces), 3)))
    fig, axes = plt.subplots(1, len(VIEWS), figsize=(6, 7))
    if tris:
        t = np.concatenate(tris)
        base = np.concatenate(rgb)
        normals = np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    for ax, (title, sx, depth) in zip(axes, VIEWS, strict=True):
        ax.set_title(title, fontsize=8)
        ax.set_axis_off()
        if not tris:
            continue
        sx_, d_ = np.asarray(sx), np.asarray(depth)
        xy = np.stack([t @ sx_, t[..., 2]], axis=-1)  # (faces, 3, 2) screen coordinates in mm
        light = d_ + 0.4 * np.array([0.0, 0.0, 1.0]) - 0.4 * sx_
        light /= np.linalg.norm(light)
        shade = 0.35 + 0.65 * np.abs(normals @ light)  # two-sided: decimation may flip a few faces
        order = np.argsort((t @ d_).mean(axis=1))  # far first
        ax.add_collection(PolyCollection(xy[order], facecolors=np.clip(base[order] * shade[order, None], 0, 1),
                                         edgecolors="none", antialiaseds=False), autolim=False)
        ax.set_xlim(xy[..., 0].min() - 5, xy[..., 0].max() + 5)
        ax.set_ylim(xy[..., 1].min() - 5, xy[..., 1].max() + 5)
        ax.set_aspect("equal")
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(str(tmp), dpi=80, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def write_qc(image: Volume, labels: LabelMap, meshes: dict, directory: str | Path) -> list[Path]:
    """Write ``axial_montage.png``, ``coronal.png`` and (when ``meshes`` are given) ``meshes.png`` into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    out = [axial_montage(image, labels, directory / "axial_montage.png"),
           coronal_overlay(image, labels, directory / "coronal.png")]
    if meshes:
        out.append(mesh_render(meshes, labels, directory / "meshes.png"))
    return out
