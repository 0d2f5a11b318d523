#!/usr/bin/env bash
# Installs the test-only tools for the integration test into test/integration/.tools, away
# from the extension's package.json (keeps `npm ci` and the .vsix light):
#   - code-server (a real VS Code server + extension host, offline) — needs Node 24 and
#     libkrb5-dev to build its native modules;
#   - node@24 from npm (the machines run Node 20);
#   - playwright-core, driving Debian's chromium (or the one CHROMIUM_PATH names).
# About 750 MB in .tools (code-server 600 MB, Node 24 120 MB) and 4+ minutes of native builds.
# Idempotent: a finished install leaves .tools/.ok and is skipped next time.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tools="$here/.tools"
export ONNXRUNTIME_NODE_INSTALL=skip
. "$here/../../scripts/system-packages.sh"

need_apt=()
[ -x "$(chromium_path)" ] || need_apt+=(chromium)
# Headers and a toolchain for code-server's native modules (built from source, offline).
{ command -v dpkg >/dev/null 2>&1 && dpkg -s libkrb5-dev >/dev/null 2>&1; } || [ -f /usr/include/gssapi/gssapi.h ] || need_apt+=(libkrb5-dev)
command -v make >/dev/null 2>&1 && command -v g++ >/dev/null 2>&1 || need_apt+=(build-essential)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
need_system_packages "the integration test (code-server's native build and a headless Chromium)" "${need_apt[@]}"

if [ -f "$tools/.ok" ] && [ -x "$tools/node_modules/node/bin/node" ] && [ -d "$tools/node_modules/code-server" ]; then
  echo "setup: tools already installed in $tools"
  exit 0
fi
mkdir -p "$tools"
cd "$tools"
[ -f package.json ] || echo '{"name":"short-lvlm-integration-tools","private":true}' > package.json
# node@24 first: code-server's install scripts must build against Node 24.
npm install --no-audit --no-fund --loglevel=error node@24 playwright-core@1
node24="$tools/node_modules/node/bin/node"
"$node24" -v
# Put Node 24 first on PATH so code-server's postinstall (node-gyp, engines check) uses it.
mkdir -p "$tools/bin"
ln -sf "$node24" "$tools/bin/node"
# npm puts the directory of the node running it first on the scripts' PATH, so npm itself
# must run under Node 24 for code-server's postinstall to see (and build for) Node 24.
npmcli="$(npm root -g)/npm/bin/npm-cli.js"
# Under `npm run`, the outer npm (Node 20) exports npm_config_user_agent, which the inner npm
# would inherit as its user agent; code-server's postinstall reads the Node version from it.
unset npm_config_user_agent
# Pinned: a new code-server release can change the workbench DOM the test drives.
PATH="$tools/bin:$PATH" "$node24" "$npmcli" install --no-audit --no-fund --loglevel=error --foreground-scripts code-server@4.139.1
touch "$tools/.ok"
echo "setup: done"
