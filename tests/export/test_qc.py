"""QC pictures are written and are real PNG images of a sensible size."""

from __future__ import annotations

import matplotlib.image as mpimg

from limbseg.export.meshes import export_meshes
from limbseg.export.qc import write_qc


def test_qc_pictures(phantom, tmp_path):
    image, labels = phantom
    meshes = export_meshes(labels, tmp_path / "meshes")
    files = write_qc(image, labels, meshes, tmp_path / "qc")
    assert [f.name for f in files] == ["axial_montage.png", "coronal.png", "meshes.png"]
    for f in files:
        pixels = mpimg.imread(str(f))
        assert pixels.shape[0] >= 30 and pixels.shape[1] >= 30
        assert pixels[..., :3].std() > 0.01  # not a blank picture
