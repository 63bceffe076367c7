"""The library functions the GUI calls, gathered so that tests can replace them.

The defaults are the real API (imported lazily, on first use): :func:`limbseg.pipeline.segment`,
:func:`limbseg.training.train`, :func:`limbseg.data.prepare.prepare`,
:func:`limbseg.models.bundle.list_bundles`, :func:`limbseg.io.dicom.list_series` and
:func:`limbseg.io.archive.safe_extract`. The GUI holds no pipeline logic of its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _segment(input: Path, output_dir: Path, **kwargs: Any) -> Any:  # noqa: A002
    from limbseg.pipeline import segment

    return segment(input, output_dir, **kwargs)


def _train(dataset_dir: Path, run_dir: Path, options: dict[str, Any], progress: Callable[..., None]) -> Any:
    from limbseg.training import TrainOptions, train

    return train(dataset_dir, run_dir, TrainOptions(**options), progress=progress)


def _prepare(manifest: Path, output_dir: Path, progress: Callable[..., None]) -> Any:
    from limbseg.data.labelmaps import load_scheme
    from limbseg.data.prepare import prepare_dataset

    progress(0.02, "importing the cases")

    def on_case(done: int, total: int, case_id: str) -> None:
        progress(0.02 + 0.96 * done / total, f"imported {done} of {total} cases (last: {case_id})")

    result = prepare_dataset(manifest, output_dir, load_scheme(None), progress=False, on_case=on_case)
    return result.as_dict()


def _list_bundles(*dirs: Path) -> list[dict[str, Any]]:
    from limbseg.models.bundle import list_bundles

    return list_bundles(*dirs)


def _default_models_dirs() -> list[Path]:
    """The shipped model's folder (a folder that does not exist is skipped by the Models tab)."""
    from limbseg.models.bundle import default_bundle_path

    return [default_bundle_path().parent]


def _list_series(path: Path) -> list[Any]:
    from limbseg.io.dicom import list_series

    return list_series(path)


def _safe_extract(archive: Path, dest: Path) -> Any:
    from limbseg.io.archive import safe_extract

    return safe_extract(archive, dest)


@dataclass
class Services:
    """Callables the GUI uses; every one defaults to the real limbseg API."""

    segment: Callable[..., Any] = _segment
    train: Callable[[Path, Path, dict[str, Any], Callable[..., None]], Any] = _train
    prepare: Callable[[Path, Path, Callable[..., None]], Any] = _prepare
    list_bundles: Callable[..., list[dict[str, Any]]] = _list_bundles
    list_series: Callable[[Path], list[Any]] = _list_series
    safe_extract: Callable[[Path, Path], Any] = _safe_extract
    default_models_dirs: Callable[[], list[Path]] = _default_models_dirs


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, paths and numpy scalars -> plain JSON values (arrays and volumes are dropped)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if not _is_bulky(getattr(obj, f.name))}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items() if not _is_bulky(v)}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        return obj.item()
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


def _is_bulky(value: Any) -> bool:
    return hasattr(value, "shape") and getattr(value, "ndim", 0) > 0 or hasattr(value, "array")


def series_rows(items: list[Any]) -> list[dict[str, Any]]:
    """Normalise ``list_series`` output to {uid, description, orientation, slices, size, modality}."""
    rows = []
    for item in items:
        d = dict(item) if isinstance(item, dict) else {k: getattr(item, k) for k in dir(item)
                                                         if not k.startswith("_") and k not in ("files", "headers")}
        uid = d.get("key") or d.get("series_uid") or d.get("uid") or d.get("SeriesInstanceUID")
        rows.append({
            "uid": uid,
            "description": d.get("description") or d.get("SeriesDescription") or "",
            "orientation": d.get("orientation", ""),
            "slices": d.get("n_slices") or d.get("slices") or d.get("num_slices") or d.get("count") or "",
            "size": d.get("size_label") or d.get("size") or d.get("shape") or "",
            "modality": d.get("modality", ""),
        })
    return rows


def measurement_rows(doc: Any) -> list[dict[str, Any]]:
    """The GUI's measurements table from a ``measurements.json`` document (:mod:`limbseg.measure`):
    one row per side and measurement (``side, measurement, value, unit, reason``), ``value`` rounded to
    0.1 or ``'incomplete'`` (then ``reason`` says why: a bone missing, cut by the field of view ...); a value
    marked implausible (:mod:`limbseg.measure.plausibility`) keeps its number and its ``reason`` says why."""
    if not isinstance(doc, dict):
        return []
    rows = []
    for r in doc.get("measurements") or []:
        if not isinstance(r, dict):
            continue
        value = r.get("value")
        ok = isinstance(value, (int, float)) and value == value
        flagged = ok and r.get("status") == "implausible"
        rows.append({"side": r.get("side", ""), "measurement": r.get("measurement", ""),
                     "value": round(float(value), 1) if ok else "incomplete", "unit": r.get("unit", ""),
                     "reason": str(r.get("reason") or "") if flagged or not ok else ""})
    return rows


def prepare_rows(report: Any) -> list[dict[str, Any]]:
    """Per-case check table from a prepare report (``PrepareResult.as_dict()``)."""
    if not isinstance(report, dict):
        return []
    rows = []
    for case, info in (report.get("cases") or {}).items():
        warnings = info.get("warnings", []) if isinstance(info, dict) else []
        status = "skipped (already done)" if case in report.get("skipped", []) else "imported"
        rows.append({"case": case, "status": status, "checks": "; ".join(map(str, warnings)) or "ok"})
    for refused in report.get("refused") or []:
        rows.append({"case": refused.get("id", "?"), "status": f"refused ({refused.get('category', '')})",
                     "checks": refused.get("reason", "")})
    return rows
