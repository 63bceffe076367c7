"""The wheel works on its own: built from the checkout, installed into a fresh virtual environment without
the source tree, it describes and segments a scan with the shipped model and serves the GUI on 127.0.0.1.

The fresh environment is made from the base interpreter (no system site-packages, no pip) and gets the
wheel with ``pip --python ... install --no-deps``. Its dependencies (torch and the rest, too large to install
again here) come from the project's environment through a folder of links to its site-packages entries,
minus limbseg's editable install and its metadata and minus ``articulated-ssm`` (optional, installed
separately): so ``import limbseg`` can only find the wheel's copy, which the first test checks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from limbseg.io import read_image, write_image
from limbseg.volume import Volume
from tests.gui.browser import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "limbseg-default"
VIEWER = ROOT / "src" / "limbseg" / "gui" / "static" / "vendor" / "niivue.umd.js"
MAX_WHEEL_MB = 100
#: project site-packages entries the fresh environment must not see
HIDDEN = ("limbseg", "__editable__", "articulated_ssm")


def _copy_sources(dest: Path) -> Path:
    """What the build reads, without build/ leftovers, egg-info or caches of the checkout."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    dest.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(ROOT / "src", dest / "src", ignore=ignore)
    shutil.copytree(MODEL, dest / "models" / MODEL.name)
    return dest


def _dependency_links(dest: Path) -> Path:
    """A folder of links to the project environment's site-packages entries, minus the HIDDEN ones."""
    dest.mkdir()
    for site in dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib")):
        for entry in Path(site).iterdir():
            if entry.name.startswith(HIDDEN) or entry.suffix == ".pth" or (dest / entry.name).exists():
                continue
            (dest / entry.name).symlink_to(entry)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Iterator[Path]:
    tmp = tmp_path_factory.mktemp("wheel")
    src = _copy_sources(tmp / "src-copy")
    subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp / "dist")], cwd=src, check=True, timeout=300)
    (found,) = (tmp / "dist").glob("limbseg-*.whl")
    shutil.rmtree(tmp / "src-copy")
    yield found
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Iterator[Path]:
    """bin/ of a fresh virtual environment with only the wheel installed (dependencies linked)."""
    tmp = tmp_path_factory.mktemp("venv")
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(tmp / "env")], check=True, timeout=120)
    python = tmp / "env" / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                    str(wheel)], check=True, timeout=300)
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "limbseg-test-dependencies.pth").write_text(f"{_dependency_links(tmp / 'deps')}\n")
    yield python.parent
    shutil.rmtree(tmp, ignore_errors=True)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return {**env, "OMP_NUM_THREADS": "2", "PYTHONNOUSERSITE": "1"}


def _run(venv: Path, args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv / args[0]), *args[1:]], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=timeout)


def two_leg_scan(path: Path) -> Path:
    """A small int16 NIfTI (80 x 50 x 60, 3 x 3 x 6 mm): two legs (x = +-45 mm) up to z = 240 mm, a trunk
    above; darker bones inside the legs. Seeded."""
    shape, sp = (80, 50, 60), (3.0, 3.0, 6.0)
    affine = np.diag([-sp[0], -sp[1], sp[2], 1.0])
    affine[:3, 3] = (sp[0] * (shape[0] - 1) / 2, sp[1] * (shape[1] - 1) / 2, 0.0)
    i, j, k = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij", sparse=True)
    x, y, z = affine[0, 0] * i + affine[0, 3], affine[1, 1] * j + affine[1, 3], sp[2] * k
    legs = ((np.abs(x) - 45) ** 2 + y**2 <= 35**2) & (z < 240)
    bones = ((np.abs(x) - 45) ** 2 + y**2 <= 10**2) & (z < 240)
    trunk = ((x / 110) ** 2 + (y / 70) ** 2 <= 1) & (z >= 240)
    img = np.where(legs | trunk, 300.0, 10.0) - 200.0 * bones
    img += np.random.default_rng(0).normal(0, 10, shape)
    write_image(Volume(img.astype(np.int16), affine), path)
    return path


def test_wheel_holds_the_model_and_the_viewer_and_is_small(wheel):
    assert wheel.stat().st_size < MAX_WHEEL_MB * 1024**2, f"{wheel.stat().st_size / 1024**2:.1f} MB"
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        metadata = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    packaged = "limbseg/models_data/limbseg-default/"
    assert {packaged + p.name for p in MODEL.iterdir() if p.is_file()} <= names  # every file of the bundle
    assert {"limbseg/gui/static/index.html", "limbseg/gui/static/app.js", "limbseg/py.typed"} <= names
    if VIEWER.is_file() or os.environ.get("CI") == "true":  # CI's set-up fetches the viewer (npm)
        assert "limbseg/gui/static/vendor/niivue.umd.js" in names
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert requires and not [r for r in requires if "articulated" in r.lower()]  # optional, installed apart


def test_fresh_venv_imports_the_wheel_not_the_checkout(venv, tmp_path):
    code = ("import json, limbseg; from limbseg.models.bundle import default_bundle_path; "
            "print(json.dumps([limbseg.__file__, str(default_bundle_path())]))")
    r = _run(venv, ["python", "-c", code], tmp_path)
    assert r.returncode == 0, r.stderr
    module, bundle = json.loads(r.stdout)
    env_root = venv.parent.resolve()
    assert Path(module).resolve().is_relative_to(env_root), module
    assert Path(bundle).resolve().is_relative_to(env_root) and (Path(bundle) / "model.json").is_file(), bundle


def test_info_and_segment_with_the_packaged_model(venv, tmp_path):
    scan = two_leg_scan(tmp_path / "scan.nii.gz")
    r = _run(venv, ["limbseg", "info", str(scan)], tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "80" in r.stdout and "50" in r.stdout and "60" in r.stdout, r.stdout
    out = tmp_path / "out"
    r = _run(venv, ["limbseg", "segment", str(scan), "-o", str(out), "--device", "cpu"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    labels, image = read_image(out / "labels.nii.gz"), read_image(scan)
    assert labels.shape == image.shape and np.allclose(labels.affine, image.affine)
    assert set(np.unique(labels.array)) <= {0, 1, 2, 3, 4}
    meta = json.loads((out / "labels.json").read_text())
    assert meta["model"] == json.loads((MODEL / "model.json").read_text()).get("name", MODEL.name)
    assert {"statistics.csv", "segmentation.seg.nrrd"} <= {p.name for p in out.iterdir()}


def test_synth_without_the_shape_model_says_how_to_install_it(venv, tmp_path):
    r = _run(venv, ["limbseg", "synth", "-o", str(tmp_path / "cohort")], tmp_path, timeout=120)
    assert r.returncode == 2 and "pip install --no-deps articulated-ssm" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "cohort").exists()


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - a local http URL
        return resp.status, resp.read()


def _wait_for(proc: subprocess.Popen[str], url: str, timeout: float = 120) -> tuple[int, bytes]:
    """The first answer of the server ``proc`` at ``url``; fails when it exits or stays silent."""
    end = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < end:
        try:
            return _get(url)
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise AssertionError(f"the GUI did not answer at {url}: {proc.communicate()[0]}")


def test_gui_answers_on_localhost(venv, tmp_path):
    port = free_port()
    proc = subprocess.Popen([str(venv / "limbseg"), "gui", "--port", str(port), "--workdir", str(tmp_path / "w")],
                            cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        status, body = _wait_for(proc, base + "/api/info")
        info = json.loads(body)
        assert status == 200 and info["version"]
        assert info["viewer"] is (VIEWER.is_file() or os.environ.get("CI") == "true")
        status, page = _get(base + "/")
        assert status == 200 and b"<html" in page.lower()
        status, models = _get(base + "/api/models")
        paths = [Path(m["path"]) for m in json.loads(models)]
        assert any(p.is_relative_to(venv.parent.resolve()) and p.name == MODEL.name for p in paths), paths
    finally:
        proc.terminate()
        proc.wait(timeout=30)
