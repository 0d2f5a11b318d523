#!/usr/bin/env bash
# The whole test suite from a clean clone: installs what it needs, builds, runs unit,
# engine, end-to-end and webview tests (node's test runner), then the extension
# integration tests in a real VS Code extension host when their tooling is present.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --with-browser
npm test
if [ -f test/integration/run.mjs ]; then
  npm run test:integration
fi
