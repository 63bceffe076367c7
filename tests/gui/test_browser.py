"""Browser tests: the page in headless Chromium uploads a scan, segments it, shows and downloads the results.

``python -m tests.gui.test_browser docs/img/gui [--model BUNDLE] [--scan PATH] [--tabs segment,...]`` re-takes
the screenshots of docs/gui.md (see its "Screenshots" section).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from limbseg.gui.app import create_app
from limbseg.io import write_image
from limbseg.volume import LabelMap

from .browser import FETCH_ZIP, INSTALL_HINT, chromium, chromium_paths, in_ci, live_server, wait_until
from .conftest import fake_segment, fake_series, tiny_scan

pytestmark = [
    pytest.mark.slow,
    # skipped on a developer's machine without Chromium; in CI (CI=true) they run, and fail without it
    pytest.mark.skipif(chromium_paths() is None and not in_ci(), reason=INSTALL_HINT),
]


def segment_in_page(driver: Any, base: str, scan: Path, *, model_id: str | None = None, timeout: float = 60,
                    roi: tuple[float, float] | None = None) -> None:
    """Drive the Segment tab: upload, (choose the model by its id), run, wait for the viewer and the table."""
    driver.get(base + "/")
    wait_until(driver, "document.getElementById('version').textContent")
    if model_id is not None:
        driver.find_element("css selector", "#tabs button[data-tab=models]").click()
        # the tab reloads the list; wait for the loads to settle so the row clicked is the one kept
        radio = wait_until(driver, "!document.body.dataset.modelsLoading && document.querySelector("
                                   f"'#models-table input[name=model][value=\"{model_id}\"]')")
        radio.click()
        assert wait_until(driver, f"localStorage.getItem('limbseg.model') === '{model_id}'")
        driver.find_element("css selector", "#tabs button[data-tab=segment]").click()
    driver.find_element("id", "seg-files").send_keys(str(scan))
    driver.find_element("id", "seg-upload").click()
    wait_until(driver, "!document.getElementById('seg-run').disabled")
    if roi is not None:
        driver.find_element("id", "seg-roi-start").send_keys(str(roi[0]))
        driver.find_element("id", "seg-roi-end").send_keys(str(roi[1]))
    driver.find_element("id", "seg-run").click()
    wait_until(driver, "document.body.dataset.segDone", timeout=timeout)


def check_results(driver: Any) -> None:
    """The overlay is loaded on the slice canvas, the statistics table is filled, the zip downloads."""
    canvas = driver.find_element("id", "seg-viewer")
    assert canvas.is_displayed() and canvas.size["width"] > 200 and canvas.size["height"] > 200
    # NiiVue sizes its canvases to their box: they must not grow past it (the first 3D view was off-screen)
    for cid in ("seg-viewer", "seg-mesh-viewer"):
        assert driver.find_element("id", cid).size["height"] <= 500
    names = wait_until(driver, "window.limbsegViewers && window.limbsegViewers['seg-viewer'].volumes.length == 2 "
                               "&& window.limbsegViewers['seg-viewer'].volumes.map(v => v.name)")
    assert names == ["scan.nii.gz", "labels.nii.gz"]
    dims = driver.execute_script("return window.limbsegViewers['seg-viewer'].volumes.map(v => v.hdr.dims.slice(1, 4))")
    assert dims[0] == dims[1]  # the overlay lies on the scan's grid
    assert driver.find_element("id", "seg-stats").is_displayed()
    size, b0, b1 = driver.execute_async_script(FETCH_ZIP)
    assert size > 100 and (b0, b1) == (ord("P"), ord("K"))
    links = driver.find_elements("css selector", "#seg-files-list a")
    assert any(a.text == "labels.nii.gz" for a in links)


def model_id(bundle: Path) -> str:
    """The id the Models tab gives a bundle folder (see ``GuiState.models``)."""
    return hashlib.sha1(str(bundle.resolve()).encode()).hexdigest()[:16]


def test_segment_tab_with_fake_pipeline(tmp_path: Path) -> None:
    """The whole page flow with a stand-in pipeline (the page and the API alone, fast)."""
    scan = tiny_scan(tmp_path / "scan.nii.gz")
    app = create_app(tmp_path / "work", segment_fn=fake_segment, list_series_fn=fake_series, models_dirs=[])
    with live_server(app) as base, chromium() as driver:
        segment_in_page(driver, base, scan)
        check_results(driver)
        rows = driver.find_elements("css selector", "#seg-stats tbody tr")
        assert [r.find_elements("tag name", "td")[0].text for r in rows] == ["tibia"]
        assert wait_until(driver, "window.limbsegViewers['seg-mesh-viewer'].meshes.length") == 1
        driver.refresh()  # the job survives a reload
        wait_until(driver, "document.body.dataset.segDone", timeout=30)


FETCH_JSON = """
const done = arguments[arguments.length - 1];
fetch(`/api/jobs/${document.body.dataset.segDone}/files/${arguments[0]}`).then(r => r.json()).then(done)
  .catch(e => done(String(e)));
"""


def test_segment_in_browser_with_the_real_pipeline(tmp_path: Path) -> None:
    """End to end: a coarse virtual subject as a zipped DICOM series, the real pipeline (automatic ROI) and a
    tiny model bundle."""
    from limbseg.segmentation.roi import find_roi

    bundle = tiny_bundle(tmp_path / "models")
    scan_zip, subject = virtual_dicom_zip(tmp_path, seed=3, pixel=3.75, slice_thickness=6.0)
    app = create_app(tmp_path / "work", models_dirs=[bundle.parent])
    with live_server(app) as base, chromium() as driver:
        segment_in_page(driver, base, scan_zip, model_id=model_id(bundle), timeout=400)
        check_results(driver)
        assert driver.find_element("id", "seg-roi-start").get_attribute("value") == ""
        # the ROI was found automatically: the crotch and the midline where find_roi puts them on the subject
        roi = driver.execute_async_script(FETCH_JSON, "output/labels.json")["roi"]
        expected = find_roi(subject.image).to_json()
        assert roi["crotch_z_mm"] == pytest.approx(expected["crotch_z_mm"], abs=1.0)
        assert roi["midline_x_mm"] == pytest.approx(expected["midline_x_mm"], abs=1.0)
        assert roi["z_mm"] == pytest.approx(expected["z_mm"], abs=1.0)
        # one statistics row per structure and side, as in statistics.json (the sides are the pipeline's: with
        # this random-weight model's scattered labels they may all be "unknown", one row per bone)
        stats = driver.execute_async_script(FETCH_JSON, "output/statistics.json")["structures"]
        rows = driver.find_elements("css selector", "#seg-stats tbody tr")
        cells = [[td.text for td in r.find_elements("tag name", "td")[:2]] for r in rows]
        assert cells == [[r["structure"], r["side"]] for r in stats] and len({tuple(c) for c in cells}) == len(cells)
        assert {c[0] for c in cells} == {"tibia", "femur", "fibula", "pelvis"}
        assert {c[1] for c in cells} <= {"left", "right", "unknown"}
        links = {a.text for a in driver.find_elements("css selector", "#seg-files-list a")}
        assert {"labels.nii.gz", "statistics.json", "statistics.csv", "segmentation.dcm"} <= links
        n_meshes = len(driver.execute_script("return [...document.querySelectorAll('#seg-files-list a')]"
                                             ".filter(a => /^meshes\\/.*\\.ply$/.test(a.textContent))"))
        assert driver.execute_script("return window.limbsegViewers['seg-mesh-viewer'].meshes.length") == n_meshes


def tiny_bundle(models_dir: Path) -> Path:
    """A tiny randomly initialised 2D U-Net bundle (seeded; 7.5 mm pixels, as in tests/pipeline/test_demo.py)."""
    from tests.conftest import make_tiny_bundle

    return make_tiny_bundle(models_dir / "tiny-test", spacing_mm=7.5, name="tiny-test")


def virtual_dicom_zip(tmp_path: Path, seed: int = 3, **geometry: float) -> tuple[Path, Any]:
    """A virtual subject (limbseg.synth, water contrast) written as a zipped DICOM series; returns (zip, subject).

    ``geometry``: ``pixel`` and ``slice_thickness`` in mm (default: the study's 0.9375 x 3 mm).
    """
    from limbseg.synth.cohort import synthesize_subject
    from limbseg.synth.dicom_writer import write_mr_series

    subject = synthesize_subject(seed, contrast="water", **geometry)
    folder = write_mr_series(subject.image, tmp_path / "dicom", case=subject.case, seed=subject.seed,
                             description=subject.image.meta["description"], info=subject.info)
    return zip_folder(folder, tmp_path / "scan.zip"), subject


def zip_folder(folder: Path, out: Path) -> Path:
    """Zip the files of ``folder`` (a DICOM series) under ``series/`` in ``out``."""
    with zipfile.ZipFile(out, "w") as z:
        for f in sorted(p for p in folder.rglob("*") if p.is_file()):
            z.write(f, f"series/{f.relative_to(folder).as_posix()}")
    return out


# --- the other tabs, with stand-ins; also used for the screenshots of docs/gui.md ------------------
def fake_prepare(manifest: Path, dataset_dir: Path, progress: Any) -> dict[str, Any]:
    rows = list(csv.DictReader(manifest.open()))
    from limbseg.io import read_image

    for row in rows:
        scan = read_image(row["scan"])
        lab = np.zeros(scan.shape, np.uint8)
        lab[4:8, 3:6, 2:6] = 1
        write_image(scan, dataset_dir / "imagesTr" / f"{row['id']}_0000.nii.gz")
        write_image(LabelMap(lab, scan.affine), dataset_dir / "labelsTr" / f"{row['id']}.nii.gz")
    (dataset_dir / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "tibia": 1, "femur": 2}}))
    return {"imported": [r["id"] for r in rows], "skipped": [], "refused": [],
            "cases": {r["id"]: {"warnings": []} for r in rows}}


def fake_train(dataset: Path, run_dir: Path, options: dict[str, Any], progress: Any) -> Any:
    run_dir.mkdir(parents=True)
    lines = ["fold,epoch,train_loss,val_loss,val_dsc"]
    for fold in range(2):
        for e in range(12):
            lines.append(f"{fold},{e},{1.2 * 0.8 ** e + 0.05 * fold:.4f},{1.3 * 0.83 ** e:.4f},{0.9 - 0.7 * 0.75 ** e:.4f}")
    (run_dir / "history.csv").write_text("\n".join(lines) + "\n")
    (run_dir / "summary.json").write_text(json.dumps({"folds": [
        {"fold": 0, "tibia": 0.93, "femur": 0.95, "fibula": 0.81, "pelvis": 0.88, "mean": 0.89},
        {"fold": 1, "tibia": 0.92, "femur": 0.94, "fibula": 0.79, "pelvis": 0.87, "mean": 0.88}]}))
    return None


def fake_bundles(*dirs: Path) -> list[dict[str, Any]]:
    return [{"name": "limbseg-default", "path": str(Path(dirs[0]) / "limbseg-default"), "created": "2025-06-01",
             "encoder": "resnet34", "labels": ["tibia", "femur", "fibula", "pelvis"],
             "metrics": {"mean_dsc": 0.95}}]


def test_other_tabs(tmp_path: Path) -> None:
    shots = take_screenshots(tmp_path / "shots", tmp_path)
    assert sorted(p.name for p in shots) == ["models.png", "prepare.png", "segment.png", "train.png"]
    assert all(p.stat().st_size > 10_000 for p in shots)


TABS = ("segment", "prepare", "train", "models")


def take_screenshots(out_dir: Path, tmp: Path, *, model: Path | None = None, scan: Path | None = None,
                     tabs: tuple[str, ...] = TABS, timeout: float = 3600) -> list[Path]:
    """Run the tabs, check what each shows, and save one PNG per tab (``<tab>.png``); returns the PNGs.

    Args:
        model: a model bundle folder: the Segment tab runs the real pipeline with it and the Models tab lists
            it (real ``list_bundles``). None: stand-ins everywhere (a box for the tibia).
        scan: what the Segment tab uploads: a zip, a NIfTI/NRRD file or a DICOM folder (zipped here).
            Default: a tiny random scan with stand-ins, else a virtual subject (seed 3, 0.9375 x 3 mm).
        tabs: which tabs to shoot. Prepare and Train always use stand-ins.
        timeout: seconds the segmentation may take.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    tiny = tiny_scan(tmp / "scan.nii.gz")
    if model is None:
        scan = scan or tiny
        (tmp / "models" / "limbseg-default").mkdir(parents=True, exist_ok=True)
        (tmp / "models" / "limbseg-default" / "model.json").write_text(json.dumps({"name": "limbseg-default"}))
        name, models_dirs = "limbseg-default", [tmp / "models"]
        fakes: dict[str, Any] = {"segment_fn": fake_segment, "list_series_fn": fake_series,
                                 "list_bundles_fn": fake_bundles}
    else:
        model = model.resolve()
        if scan is None:
            scan, _ = virtual_dicom_zip(tmp, seed=3)
        elif scan.is_dir():
            scan = zip_folder(scan, tmp / "scan.zip")
        name = json.loads((model / "model.json").read_text()).get("name", model.name)
        models_dirs, fakes = [model.parent], {}
    app = create_app(tmp / "work", prepare_fn=fake_prepare, train_fn=fake_train, models_dirs=models_dirs, **fakes)
    shots = []
    with live_server(app) as base, chromium(command_timeout=timeout) as d:
        if "segment" in tabs:
            segment_in_page(d, base, scan, model_id=model_id(model) if model else None, timeout=timeout)
            check_results(d)
            shots.append(full_page_shot(d, out_dir / "segment.png"))
        if "prepare" in tabs:
            d.get(base + "/")
            wait_until(d, "document.getElementById('version').textContent")
            d.find_element("css selector", "#tabs button[data-tab=prepare]").click()
            d.find_element("css selector", "#prep-cases .prep-scan").send_keys(str(tiny))
            d.find_element("css selector", "#prep-cases .prep-mask[data-structure=tibia]").send_keys(str(tiny))
            d.find_element("id", "prep-cases-go").click()
            wait_until(d, "window.limbsegViewers && window.limbsegViewers['prep-viewer'] && "
                          "window.limbsegViewers['prep-viewer'].volumes.length == 2")
            assert "imported" in d.find_element("id", "prep-checks").text
            shots.append(shot(d, out_dir / "prepare.png"))
        if "train" in tabs:
            d.find_element("css selector", "#tabs button[data-tab=train]").click()
            wait_until(d, "document.querySelector('#train-dataset option[value^=\"job:\"]')")
            d.find_element("id", "train-go").click()
            wait_until(d, "document.querySelectorAll('#train-folds-table tbody tr').length == 2")
            shots.append(shot(d, out_dir / "train.png"))
        if "models" in tabs:
            d.find_element("css selector", "#tabs button[data-tab=models]").click()
            wait_until(d, "document.querySelectorAll('#models-table tbody tr').length >= 2")
            # clicked inside the page: the table may be re-rendered by a second refresh at any moment
            d.execute_script("document.querySelector('#models-table a[data-card]').click()")
            wait_until(d, f"document.getElementById('model-card').textContent.includes({json.dumps(name)})")
            shots.append(shot(d, out_dir / "models.png"))
    return shots


def shot(driver: Any, path: Path) -> Path:
    """Screenshot of the window, scrolled to the top."""
    driver.execute_script("window.scrollTo(0, 0)")
    time.sleep(0.5)
    driver.save_screenshot(str(path))
    return path


def full_page_shot(driver: Any, path: Path) -> Path:
    """Screenshot of the whole page (the window is made as tall as the page, then restored)."""
    width, height = driver.get_window_size()["width"], driver.get_window_size()["height"]
    for _ in range(3):  # the window's height includes the browser's frame: grow until the page fits
        missing = driver.execute_script("return document.documentElement.scrollHeight - window.innerHeight")
        if missing <= 0:
            break
        driver.set_window_size(width, driver.get_window_size()["height"] + missing + 10)
        time.sleep(1.5)  # NiiVue redraws on resize (requestAnimationFrame)
    shot(driver, path)
    driver.set_window_size(width, height)
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.gui.test_browser OUT_DIR [--model BUNDLE] [--scan PATH] [--tabs segment,...]``."""
    import tempfile

    parser = argparse.ArgumentParser(prog="python -m tests.gui.test_browser",
                                     description="Take the screenshots of docs/gui.md in headless Chromium.")
    parser.add_argument("out_dir", type=Path, help="folder for segment.png, prepare.png, train.png, models.png")
    parser.add_argument("--model", type=Path, metavar="BUNDLE",
                        help="segment with the real pipeline and this model bundle (default: a stand-in)")
    parser.add_argument("--scan", type=Path, metavar="PATH",
                        help="scan to upload: zip, NIfTI/NRRD or DICOM folder (default with --model: a virtual "
                             "subject, seed 3, 0.9375 x 3 mm)")
    parser.add_argument("--tabs", default=",".join(TABS), help="comma-separated tabs to shoot (default: all)")
    args = parser.parse_args(argv)
    if args.scan is not None and not args.scan.exists():
        parser.error(f"no such scan: {args.scan}")
    if args.model is not None and not (args.model / "model.json").is_file():
        parser.error(f"not a model bundle (no model.json): {args.model}")
    tabs = tuple(t for t in args.tabs.split(",") if t)
    if not tabs or set(tabs) - set(TABS):
        parser.error(f"--tabs: choose among {', '.join(TABS)}")
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="limbseg-shots-") as tmp:
        for path in take_screenshots(args.out_dir, Path(tmp), model=args.model, scan=args.scan, tabs=tabs):
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
