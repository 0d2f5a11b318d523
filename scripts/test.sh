#!/usr/bin/env bash
# The whole test suite from a clean clone: installs what it needs, builds, runs unit,
# engine, end-to-end and webview tests (node's test runner), the README's commands, then the extension
# integration tests in a real VS Code extension host when their tooling is present.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --with-browser
# The integration tools first: a few unit tests read code-server's bundle (the codicon list).
if [ -f test/integration/run.mjs ]; then
  bash test/integration/setup.sh
fi
npm test
# Every command the README shows: the engine's run verbatim, the others checked to be run above or below.
node scripts/readme-commands.mjs
if [ -f test/integration/run.mjs ]; then
  npm run test:integration
fi
