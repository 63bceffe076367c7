#!/usr/bin/env bash
# Installs the GUI's browser assets (NiiVue) from the npm registry and copies the self-contained
# UMD bundle into src/limbseg/gui/static/vendor/ (git-ignored). Called by scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
GUI=src/limbseg/gui
VENDOR="$GUI/static/vendor"
BUILD="${LIMBSEG_NPM_DIR:-$(mktemp -d)}"
trap '[ -z "${LIMBSEG_NPM_DIR:-}" ] && rm -rf "$BUILD"' EXIT
cp "$GUI/package.json" "$BUILD/"
(cd "$BUILD" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
UMD="$BUILD/node_modules/@niivue/niivue/dist/niivue.umd.js"
[ -f "$UMD" ] || { echo "fetch-gui-assets: $UMD not found (NiiVue layout changed?)" >&2; exit 1; }
mkdir -p "$VENDOR"
cp "$UMD" "$VENDOR/niivue.umd.js"
cp "$BUILD/node_modules/@niivue/niivue/package.json" "$VENDOR/niivue.package.json"
echo "GUI viewer: NiiVue $(node -p "require('./$VENDOR/niivue.package.json').version" 2>/dev/null || echo '?') in $VENDOR"
