"""limbseg: automatic segmentation of children's lower-limb bones in MRI, with exact geometry.

The Python API that the CLI and the GUI both call::

    import limbseg
    vol = limbseg.read_image("scan_dir/")            # Volume: array (i, j, k) + RAS affine
    result = limbseg.segment("scan_dir/", "out/")    # LabelMap + statistics, all outputs written
    limbseg.cohort("manifest.csv", "cohort/", workers=2)  # many scans, resumable, on Dask
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Volume": ("limbseg.volume", "Volume"),
    "LabelMap": ("limbseg.volume", "LabelMap"),
    "LabelScheme": ("limbseg.labels", "LabelScheme"),
    "DEFAULT_SCHEME": ("limbseg.labels", "DEFAULT_SCHEME"),
    "LimbsegError": ("limbseg.errors", "LimbsegError"),
    "read_image": ("limbseg.io", "read_image"),
    "write_image": ("limbseg.io", "write_image"),
    "segment": ("limbseg.pipeline", "segment"),
    "cohort": ("limbseg.cohort", "cohort"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'limbseg' has no attribute {name!r}")


__all__ = list(_LAZY) + ["__version__"]
