#!/usr/bin/env bash
# Creates .venv and installs limbseg with everything it needs (no network but package registries).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip
# torch + torchvision first: pip takes the releases that lie on this machine's disk when they match.
.venv/bin/pip install -q "torch>=2.2,<3" "torchvision>=0.17"
.venv/bin/pip install -q -e ".[dev]"
# The shape model of the virtual cohort: data files only; its declared dependencies pin an old pydicom.
.venv/bin/pip install -q --no-deps "articulated-ssm==0.2.0"
# Headless Chromium + chromedriver from Debian for the GUI's browser tests (root with apt-get only).
# Without them the browser tests are skipped on a developer's machine but fail in CI (CI=true).
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        (apt-get update -q && apt-get install -y -q chromium chromium-driver && apt-get clean) >/dev/null
    elif [ "${CI:-}" = true ]; then
        echo "error: CI needs Debian's chromium and chromium-driver for the GUI browser tests (install them as root)" >&2
    else
        echo "note: install Debian's chromium and chromium-driver to run the GUI browser tests" >&2
    fi
fi
# GUI assets (NiiVue viewer) from the npm registry, when npm is present.
if [ -f src/limbseg/gui/package.json ] && command -v npm >/dev/null 2>&1; then
    bash scripts/fetch-gui-assets.sh
fi
