"""Browser tests: the page in headless Chromium uploads a scan, segments it, shows and downloads the results.

``python -m tests.gui.test_browser docs/img/gui`` re-takes the screenshots of docs/gui.md.
"""

from __future__ import annotations

import csv
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from limbseg.gui.app import create_app
from limbseg.io import write_image
from limbseg.volume import LabelMap

from .browser import FETCH_ZIP, chromium, chromium_paths, live_server, wait_until
from .conftest import fake_segment, fake_series, tiny_scan

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chromium_paths() is None,
                       reason="needs Debian's chromium + chromium-driver (apt-get install -y chromium chromium-driver)"),
]


def segment_in_page(driver: Any, base: str, scan: Path, *, pick_model: bool = False, timeout: float = 60,
                    roi: tuple[float, float] | None = None) -> None:
    """Drive the Segment tab: upload, (choose the model), run, wait for the viewer and the table."""
    driver.get(base + "/")
    wait_until(driver, "document.getElementById('version').textContent")
    if pick_model:
        driver.find_element("css selector", "#tabs button[data-tab=models]").click()
        radio = wait_until(driver, "document.querySelector('#models-table input[name=model]:not([value=\"\"])')")
        radio.click()
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
    names = wait_until(driver, "window.limbsegViewers && window.limbsegViewers['seg-viewer'].volumes.length == 2 "
                               "&& window.limbsegViewers['seg-viewer'].volumes.map(v => v.name)")
    assert names == ["scan.nii.gz", "labels.nii.gz"]
    assert driver.find_element("id", "seg-stats").is_displayed()
    size, b0, b1 = driver.execute_async_script(FETCH_ZIP)
    assert size > 100 and (b0, b1) == (ord("P"), ord("K"))
    links = driver.find_elements("css selector", "#seg-files-list a")
    assert any(a.text == "labels.nii.gz" for a in links)


def test_segment_tab_with_fake_pipeline(tmp_path: Path) -> None:
    """The whole page flow with a stand-in pipeline (runs before limbseg.pipeline exists)."""
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


def test_segment_in_browser_with_the_real_pipeline(tmp_path: Path) -> None:
    """End to end: a small DICOM scan (zip), the real pipeline and a tiny model bundle."""
    pytest.importorskip("limbseg.pipeline", reason="limbseg.pipeline is not written yet")
    bundle_dir = tiny_bundle(tmp_path / "models")
    scan_zip = dicom_zip(tmp_path)
    app = create_app(tmp_path / "work", models_dirs=[bundle_dir.parent])
    with live_server(app) as base, chromium() as driver:
        # the phantom is too small for the automatic leg finder: its z range (mm) is given by hand
        segment_in_page(driver, base, scan_zip, pick_model=True, timeout=300, roi=(-100.0, -31.0))
        check_results(driver)


def tiny_bundle(models_dir: Path) -> Path:
    """A tiny randomly initialised U-Net bundle (seeded)."""
    import torch

    from limbseg.labels import DEFAULT_SCHEME
    from limbseg.models.bundle import save_bundle
    from limbseg.models.factory import architecture, build_model

    torch.manual_seed(0)
    arch = architecture("unet", "resnet34")
    config = {"name": "tiny-test", "architecture": arch, "labels": DEFAULT_SCHEME.to_json(),
              "preprocessing": {"spacing_mm": 2.0, "tile": [64, 64], "channels": "repeat",
                                "normalisation": {"method": "percentile", "lower": 0.5, "upper": 99.5}}}
    return save_bundle(models_dir / "tiny-test", [build_model(arch)], config)


def dicom_zip(tmp_path: Path) -> Path:
    """The export tests' two-leg phantom as a zipped DICOM series."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "export"))
    from segment_phantoms import make_phantom, write_dicom_series

    volume, _ = make_phantom()
    i, j, _k = np.meshgrid(*(np.arange(n) for n in volume.shape), indexing="ij")
    legs = ((i - 10) ** 2 + (j - 15) ** 2 <= 36) | ((i - 30) ** 2 + (j - 15) ** 2 <= 36)
    volume = volume.with_array(np.where(legs, volume.array, 0).astype(np.float32))  # two legs in air
    files = write_dicom_series(volume, tmp_path / "dicom")
    out = tmp_path / "scan.zip"
    with zipfile.ZipFile(out, "w") as z:
        for f in files:
            z.write(f, f"series/{f.name}")
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
    take_screenshots(tmp_path / "shots", tmp_path)
    assert len(list((tmp_path / "shots").glob("*.png"))) == 4


def take_screenshots(out_dir: Path, tmp: Path) -> None:
    """Run every tab with stand-ins, check what each shows, and save one PNG per tab."""
    out_dir.mkdir(parents=True, exist_ok=True)
    scan = tiny_scan(tmp / "scan.nii.gz")
    (tmp / "models" / "limbseg-default").mkdir(parents=True, exist_ok=True)
    (tmp / "models" / "limbseg-default" / "model.json").write_text(json.dumps({"name": "limbseg-default"}))
    app = create_app(tmp / "work", segment_fn=fake_segment, list_series_fn=fake_series, prepare_fn=fake_prepare,
                     train_fn=fake_train, list_bundles_fn=fake_bundles, models_dirs=[tmp / "models"])
    with live_server(app) as base, chromium() as d:
        segment_in_page(d, base, scan)
        d.execute_script("window.scrollTo(0, 0)")
        d.save_screenshot(str(out_dir / "segment.png"))
        d.find_element("css selector", "#tabs button[data-tab=prepare]").click()
        d.find_element("css selector", "#prep-cases .prep-scan").send_keys(str(scan))
        d.find_element("css selector", "#prep-cases .prep-mask[data-structure=tibia]").send_keys(str(scan))
        d.find_element("id", "prep-cases-go").click()
        wait_until(d, "window.limbsegViewers && window.limbsegViewers['prep-viewer'] && "
                      "window.limbsegViewers['prep-viewer'].volumes.length == 2")
        assert "imported" in d.find_element("id", "prep-checks").text
        d.save_screenshot(str(out_dir / "prepare.png"))
        d.find_element("css selector", "#tabs button[data-tab=train]").click()
        wait_until(d, "document.querySelector('#train-dataset option[value^=\"job:\"]')")
        d.find_element("id", "train-go").click()
        wait_until(d, "document.querySelectorAll('#train-folds-table tbody tr').length == 2")
        d.save_screenshot(str(out_dir / "train.png"))
        d.find_element("css selector", "#tabs button[data-tab=models]").click()
        wait_until(d, "document.querySelectorAll('#models-table tbody tr').length >= 2")
        d.find_element("css selector", "#models-table a[data-card]").click()
        wait_until(d, "document.getElementById('model-card').textContent.includes('limbseg-default')")
        d.save_screenshot(str(out_dir / "models.png"))


if __name__ == "__main__":
    import tempfile

    take_screenshots(Path(sys.argv[1]), Path(tempfile.mkdtemp()))
