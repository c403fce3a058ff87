#!/usr/bin/env bash
# CI: the static site in a real browser. Installs headless Chromium and its driver (Debian packages) when
# missing, then runs the browser tests; screenshots of each page at 1280 px and 390 px go to
# $HWCAL_ARTIFACTS/site-screenshots (default: ./artifacts).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium chromium-driver
fi
VENV="${HWCAL_CI_VENV:-.venv}"
# shellcheck disable=SC1091
source "$VENV/bin/activate"
python -c 'import selenium' 2>/dev/null || python -m pip install -q selenium
export HWCAL_ARTIFACTS="${HWCAL_ARTIFACTS:-$PWD/artifacts}"
mkdir -p "$HWCAL_ARTIFACTS"
python -m pytest tests/test_site_browser.py -q -p no:randomly -rs
echo "screenshots: $HWCAL_ARTIFACTS/site-screenshots"
