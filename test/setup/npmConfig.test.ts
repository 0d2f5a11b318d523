// No warning on every npm command (issue 14 item 5): onnxruntime-node's CUDA download is
// denied through package.json's allowScripts (npm 11) and the scripts' environment variable
// (older npm), not through an .npmrc key npm does not know.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

const repo = path.resolve(__dirname, '..', '..', '..');

test('npm commands in the project print no configuration warning', () => {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (/^npm_config_/i.test(k)) delete env[k];
  const r = spawnSync('npm', ['pkg', 'get', 'name'], { cwd: repo, encoding: 'utf8', env });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout), 'short-lvlm');
  assert.doesNotMatch(r.stderr, /Unknown (project|user|env) config/);
});

test("onnxruntime-node's install script is denied, and the set-up scripts also skip it for older npm", () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8'));
  assert.equal(pkg.allowScripts?.['onnxruntime-node'], false);
  assert.ok(!fs.existsSync(path.join(repo, '.npmrc')) || !/onnxruntime/.test(fs.readFileSync(path.join(repo, '.npmrc'), 'utf8')));
  for (const s of ['scripts/setup.sh', 'test/integration/setup.sh']) {
    assert.match(fs.readFileSync(path.join(repo, s), 'utf8'), /^export ONNXRUNTIME_NODE_INSTALL=skip$/m, s);
  }
});
