#!/usr/bin/env bash
# CI: the package works installed, not only from a checkout. Build a wheel, install it in a fresh venv, and
# from an empty folder: import the API, list and validate the repository's registry, and run a copied
# bench/ that files a calibration (the plugin registers itself through its pytest11 entry point).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m pip wheel -q --no-deps -w "$work/dist" "$repo"
python3 -m venv "$work/venv"
# shellcheck disable=SC1091
source "$work/venv/bin/activate"
python -m pip install -q "$work"/dist/hwcal-*.whl
mkdir "$work/empty" && cd "$work/empty"
python -c 'from hwcal import Registry; print("import ok:", Registry)'
hwcal-list --registry "$repo/registry" >/dev/null
hwcal-validate --registry "$repo/registry"
cp -r "$repo/bench" .
python -m pytest bench/test_gemm.py -q -p no:randomly --sizes 64,128 -k "fp32 or fp64" --registry reg \
    --power-mode wheel --frequency-mhz 1000 --hardware-id wheel_check_cpu --allow-partial
hwcal-validate --registry reg
test -n "$(find reg -path '*/calibrations/*.json')"
echo "wheel check: installed hwcal works outside the checkout"
