"""The label scheme as data, and merging per-structure masks into one label map.

The default scheme is the study's: 0 background, 1 tibia, 2 femur, 3 fibula, 4 pelvis.
Other schemes come from a dataset.json ``labels`` entry (nnU-Net v2 style:
``{"background": 0, "tibia": 1, ...}``). Torch-free.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# Display colours (RGB 0-255) chosen to be distinct and close to 3D Slicer's bone palette.
_PALETTE: dict[str, tuple[int, int, int]] = {
    "tibia": (230, 159, 0),
    "femur": (86, 180, 233),
    "fibula": (0, 158, 115),
    "pelvis": (204, 121, 167),
}
_FALLBACK = [(240, 228, 66), (0, 114, 178), (213, 94, 0), (170, 170, 170), (120, 60, 200)]


@dataclass(frozen=True)
class Structure:
    """One labelled structure: its name (lower case, no spaces), integer value and RGB colour."""

    name: str
    value: int
    color: tuple[int, int, int]


@dataclass(frozen=True)
class LabelScheme:
    """An ordered set of structures; value 0 is always background and is not listed."""

    structures: tuple[Structure, ...]

    def __post_init__(self) -> None:
        values = [s.value for s in self.structures]
        names = [s.name for s in self.structures]
        if len(set(values)) != len(values) or len(set(names)) != len(names):
            raise ValueError("label names and values must be unique")
        if any(v <= 0 or v > 255 for v in values):
            raise ValueError("label values must be in 1..255 (0 is background)")

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.structures]

    @property
    def values(self) -> list[int]:
        return [s.value for s in self.structures]

    @property
    def num_classes(self) -> int:
        """Number of classes including background (max value + 1)."""
        return max(self.values, default=0) + 1

    def value_of(self, name: str) -> int:
        for s in self.structures:
            if s.name == name:
                return s.value
        raise KeyError(f"unknown structure {name!r}; known: {', '.join(self.names)}")

    def name_of(self, value: int) -> str:
        for s in self.structures:
            if s.value == value:
                return s.name
        raise KeyError(f"unknown label value {value}")

    def to_dataset_labels(self) -> dict[str, int]:
        """The nnU-Net v2 ``labels`` entry: ``{"background": 0, name: value, ...}``."""
        return {"background": 0, **{s.name: s.value for s in self.structures}}

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready description (used for ``labels.json`` and model bundles)."""
        return {
            "background": 0,
            "structures": [{"name": s.name, "value": s.value, "color": list(s.color)} for s in self.structures],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LabelScheme:
        """Inverse of :meth:`to_json`; also accepts a dataset.json ``labels`` mapping.

        Raises ValueError, TypeError or KeyError for malformed data (an infinite or NaN value included).
        """
        try:
            return cls._from_json(data)
        except OverflowError as exc:  # int(float("inf")): a JSON value of Infinity
            raise ValueError(f"label value is not a finite integer ({exc})") from exc

    @classmethod
    def _from_json(cls, data: Mapping[str, Any]) -> LabelScheme:
        if not isinstance(data, Mapping):
            raise TypeError(f"labels must be a JSON object, not {type(data).__name__}")
        if "structures" in data:
            return cls(tuple(Structure(str(s["name"]), int(s["value"]), tuple(s["color"])) for s in data["structures"]))  # type: ignore[arg-type]
        return cls.from_names({k: int(v) for k, v in data.items() if int(v) != 0})

    @classmethod
    def from_names(cls, mapping: Mapping[str, int]) -> LabelScheme:
        items = sorted(mapping.items(), key=lambda kv: kv[1])
        out = []
        for n, (name, value) in enumerate(items):
            color = _PALETTE.get(name, _FALLBACK[n % len(_FALLBACK)])
            out.append(Structure(name, int(value), color))
        return cls(tuple(out))


DEFAULT_SCHEME = LabelScheme(
    (
        Structure("tibia", 1, _PALETTE["tibia"]),
        Structure("femur", 2, _PALETTE["femur"]),
        Structure("fibula", 3, _PALETTE["fibula"]),
        Structure("pelvis", 4, _PALETTE["pelvis"]),
    )
)


def merge_masks(
    masks: Mapping[str, np.ndarray],
    scheme: LabelScheme = DEFAULT_SCHEME,
    priority: Sequence[str] | None = None,
) -> tuple[np.ndarray, int]:
    """Merge boolean masks (all the same shape) into one uint8 label array.

    Without ``priority`` voxels claimed by two or more structures become background
    (the study's rule). With ``priority`` (names, first wins) they go to the first listed.

    Returns:
        (labels, n_overlap): the label array and the number of voxels claimed more than once.
    """
    if not masks:
        raise ValueError("no masks to merge")
    shapes = {np.shape(m) for m in masks.values()}
    if len(shapes) != 1:
        raise ValueError(f"masks have different shapes: {sorted(shapes)}")
    shape = shapes.pop()
    count = np.zeros(shape, dtype=np.uint8)
    labels = np.zeros(shape, dtype=np.uint8)
    order = list(masks)
    if priority is not None:
        unknown = [p for p in priority if p not in masks]
        if unknown:
            raise ValueError(f"priority names a structure without a mask: {', '.join(unknown)}")
        order = [n for n in masks if n not in priority] + list(reversed(list(priority)))
    for name in order:
        m = np.asarray(masks[name]).astype(bool)
        count += m
        labels[m] = scheme.value_of(name)
    overlap = count > 1
    if priority is None:
        labels[overlap] = 0
    return labels, int(overlap.sum())


def nonzero_box(array: np.ndarray) -> tuple[slice, ...] | None:
    """The bounding box (slices) of the non-zero voxels of ``array``; ``None`` when all are zero."""
    nonzero = np.asarray(array) != 0
    box = []
    for ax in range(nonzero.ndim):
        hit = np.flatnonzero(nonzero.any(axis=tuple(a for a in range(nonzero.ndim) if a != ax)))
        if hit.size == 0:
            return None
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(box)


def structure_boxes(array: np.ndarray, max_label: int) -> list[tuple[slice, ...] | None]:
    """Bounding box (slices into ``array``) of each label value ``1..max_label``; ``None`` where absent.

    Same result as ``scipy.ndimage.find_objects`` but it first reduces the search to the box of all
    non-zero voxels, which is several times faster on large, mostly empty label maps.
    """
    from scipy import ndimage

    outer = nonzero_box(array)
    if outer is None:
        return [None] * max_label
    boxes = ndimage.find_objects(np.ascontiguousarray(array[outer]), max_label=max_label)
    return [None if box is None else tuple(slice(s.start + o.start, s.stop + o.start)
                                           for s, o in zip(box, outer, strict=True))
            for box in boxes]
