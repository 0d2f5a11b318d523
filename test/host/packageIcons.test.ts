// Every `$(name)` icon package.json uses must be a codicon of the VS Code the integration test
// runs (code-server's workbench, installed by test/integration/setup.sh): an unknown name
// renders nothing, so a view-title button with it is invisible (issue 15: `$(scissors)`).
// The list of codicons is read from that workbench's own bundle, where each codicon is
// registered as a call of the form f("name", 0xEAxx).

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';

const repo = path.resolve(__dirname, '..', '..', '..');
const workbench = path.join(repo, 'test', 'integration', '.tools', 'node_modules', 'code-server', 'lib', 'vscode', 'out', 'vs', 'code', 'browser', 'workbench', 'workbench.js');

/** Codicon ids registered in a workbench bundle (codepoints live in the private-use block U+EA60..). */
export function codiconIds(bundle: string): Set<string> {
  const ids = new Set<string>();
  for (const m of bundle.matchAll(/[\w$]{1,4}\("([a-z][a-z0-9-]*)",(6e4|6\d{4})\)/g)) ids.add(m[1]);
  return ids;
}

/** Every `$(name)` or `$(name~modifier)` in a JSON value, with where it was found. */
function iconRefs(v: unknown, where: string, out: { id: string; where: string }[] = []): { id: string; where: string }[] {
  if (typeof v === 'string') for (const m of v.matchAll(/\$\(([a-z0-9-]+)(?:~[a-z]+)?\)/g)) out.push({ id: m[1], where });
  else if (Array.isArray(v)) v.forEach((x, i) => iconRefs(x, `${where}[${i}]`, out));
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) iconRefs(x, `${where}.${k}`, out);
  return out;
}

test('every $(icon) in package.json is a codicon of the installed VS Code', (t) => {
  if (!fs.existsSync(workbench)) return t.skip(`code-server is not installed (run bash test/integration/setup.sh): ${workbench}`);
  const ids = codiconIds(fs.readFileSync(workbench, 'utf8'));
  // The extraction itself must have found the registry, not a handful of stray matches.
  assert.ok(ids.size > 400, `only ${ids.size} codicons found in ${workbench}`);
  for (const known of ['add', 'debug-stop', 'folder-opened', 'clear-all', 'close']) assert.ok(ids.has(known), `codicon list lacks "${known}"`);
  const pkg = JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8'));
  const refs = iconRefs(pkg.contributes, 'contributes');
  assert.ok(refs.length >= 5, 'package.json uses codicons');
  const unknown = refs.filter((r) => !ids.has(r.id));
  assert.deepEqual(unknown, [], `icons that VS Code ${JSON.parse(fs.readFileSync(path.join(workbench, '..', '..', '..', '..', '..', '..', 'package.json'), 'utf8')).version} does not have`);
});

test('every $(icon) the host code puts in quick picks and the status bar is a codicon', (t) => {
  if (!fs.existsSync(workbench)) return t.skip('code-server is not installed');
  const ids = codiconIds(fs.readFileSync(workbench, 'utf8'));
  const dir = path.join(repo, 'src', 'host');
  const unknown: string[] = [];
  for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.ts'))) {
    for (const m of fs.readFileSync(path.join(dir, f), 'utf8').matchAll(/\$\(([a-z0-9-]+)(?:~[a-z]+)?\)/g)) if (!ids.has(m[1])) unknown.push(`${f}: ${m[1]}`);
  }
  assert.deepEqual(unknown, []);
});
