#!/usr/bin/env bash
# Build the one-folder desktop bundle from build.spec and check it (about 5 minutes, ~1 GB with CPU torch).
#
#     scripts/build_app.sh            -> dist/stanviewer/stanviewer, then its --self-test
#
# Needs the app installed as the README says (pip install torch==2.13.0 -e ".[dev]"); installs PyInstaller.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q "pyinstaller>=6.10"
start=$(date +%s)
python -m PyInstaller --noconfirm --clean --log-level WARN build.spec
end=$(date +%s)
size=$(du -sh dist/stanviewer | cut -f1)
echo "bundle: dist/stanviewer  size ${size}  build $((end - start)) s"
QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-offscreen} dist/stanviewer/stanviewer --self-test
