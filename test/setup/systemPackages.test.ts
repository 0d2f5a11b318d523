// Set-up honesty (issue 14 item 5): where the set-up scripts would need apt-get and cannot use
// it (no apt-get on the system, or not root and no password-less sudo), they say what is
// needed and how to get it, and stop, instead of failing inside apt-get.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

const repo = path.resolve(__dirname, '..', '..', '..');
const lib = path.join(repo, 'scripts', 'system-packages.sh');
const call = `. "${lib}"; need_system_packages "the webview tests" chromium`;

test('no apt-get: the packages and the way forward are named, nothing is run', () => {
  const r = spawnSync('/bin/bash', ['--norc', '-c', call], { encoding: 'utf8', env: { PATH: '/nonexistent' } });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^setup: needed for the webview tests: chromium \(Debian\/Ubuntu package names\)\.$/m);
  assert.match(r.stderr, /no apt-get: install the equivalents .* set CHROMIUM_PATH/);
  assert.equal(r.stdout, '');
});

test('not root and no password-less sudo: the exact command to run as root is given', (t) => {
  if (process.getuid?.() !== 0 || !fs.existsSync('/usr/sbin/runuser')) return t.skip('needs root to run the script as another user');
  const r = spawnSync('/usr/sbin/runuser', ['-u', 'nobody', '--', '/bin/bash', '--norc', '-c', call], { encoding: 'utf8' });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /Installing them needs root:\nsetup: {3}sudo apt-get install -y chromium\n/);
  assert.doesNotMatch(r.stderr + r.stdout, /E: |Permission denied|are you root/i, 'apt-get was not called');
});

test('nothing needed: nothing said, success', () => {
  const r = spawnSync('/bin/bash', ['--norc', '-c', `. "${lib}"; need_system_packages "x"`], { encoding: 'utf8', env: { PATH: '/nonexistent' } });
  assert.equal(r.status, 0);
  assert.equal(r.stdout + r.stderr, '');
});
