#!/usr/bin/env bash
# Installs what building and testing need, idempotently: the npm packages (onnxruntime-node's
# CUDA download is skipped: its CPU binaries ship inside the package) and, with
# --with-browser, a Chromium for the webview and integration tests (Debian's package, or the
# one CHROMIUM_PATH names).
set -euo pipefail
cd "$(dirname "$0")/.."
# npm 11 honours package.json's allowScripts (onnxruntime-node: false); older npm needs this.
export ONNXRUNTIME_NODE_INSTALL=skip
. scripts/system-packages.sh

stamp=node_modules/.short-lvlm-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  npm ci --no-audit --no-fund
  cp package-lock.json "$stamp"
fi

if [ "${1:-}" = "--with-browser" ] && [ ! -x "$(chromium_path)" ]; then
  need_system_packages "the webview and integration tests (a headless Chromium, about 360 MB)" chromium
fi
