// --device without a GPU: the provider check against onnxruntime-node's own list (and the CUDA
// libraries on disk), one-line errors that say how to get the provider, the CLI option path
// (a missing provider fails before any model loads; cpu runs), and bad values.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { checkDevice, DeviceError, installedBackends } from '../../src/engine/runtime/device';
import { openSession } from '../../src/engine/runtime/ort';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');
const TINY = path.join(ROOT, 'models', 'tiny-llava');
const CALIB = path.join(ROOT, 'data', 'tiny-vqa', 'calib.json');

const cpuOnly = [{ name: 'cpu', bundled: true }];
const linuxBuild = [...cpuOnly, { name: 'webgpu', bundled: true }, { name: 'cuda', bundled: false }];

test('checkDevice: providers from the installed list, CUDA libraries on disk, one-line errors with the way to install', () => {
  assert.doesNotThrow(() => checkDevice('cpu', cpuOnly));
  assert.throws(() => checkDevice('cuda', linuxBuild, () => false), (e: Error) => e instanceof DeviceError && /cuda execution provider is not installed/.test(e.message) && /ONNXRUNTIME_NODE_INSTALL=cuda12/.test(e.message) && !e.message.includes('\n'));
  assert.doesNotThrow(() => checkDevice('cuda', linuxBuild, () => true));
  assert.throws(() => checkDevice('dml', linuxBuild), /the dml execution provider is not in this onnxruntime-node \(it has cpu, webgpu, cuda\): DirectML .* Windows/);
  assert.throws(() => checkDevice('coreml', cpuOnly), /coreml .* macOS/);
  assert.doesNotThrow(() => checkDevice('dml', [...cpuOnly, { name: 'dml', bundled: true }]));
  assert.throws(() => checkDevice('tpu' as 'cpu', cpuOnly), /unknown device "tpu"/);
  // This machine's onnxruntime-node has a CPU provider and names its providers.
  assert.ok(installedBackends().some((b) => b.name === 'cpu'));
});

test('a session on a provider this onnxruntime-node lacks fails before loading, with the check\'s message', async () => {
  const missing = (['dml', 'coreml'] as const).find((d) => !installedBackends().some((b) => b.name === d))!;
  await assert.rejects(openSession(path.join(TINY, 'onnx', 'embed_tokens.onnx'), { device: missing }), (e: Error) => e instanceof DeviceError && e.message.includes(`the ${missing} execution provider`));
});

test('CLI --device: a missing provider is one line on stderr and exit 1; a bad value is a usage error; cpu runs', () => {
  assert.ok(fs.existsSync(CLI), 'run npm run build first');
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'device-')), 'pruned');
  const missing = (['dml', 'coreml'] as const).find((d) => !installedBackends().some((b) => b.name === d))!;
  const run = (extra: string[]) => spawnSync(process.execPath, [CLI, 'prune', TINY, '--calib', CALIB, '--method', 'svl', '--samples', '2', '--no-scp', '--quiet', '--out', out, ...extra], { encoding: 'utf8' });
  const r = run(['--device', missing]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, new RegExp(`^short-lvlm: the ${missing} execution provider is not in this onnxruntime-node[^\\n]*\\n$`));
  assert.ok(!fs.existsSync(out));
  const bad = run(['--device', 'gpu']);
  assert.equal(bad.status, 2, bad.stderr);
  assert.match(bad.stderr, /--device: must be one of cpu, cuda, dml, coreml, got "gpu"/);
  const ok = run(['--device', 'cpu', '--execution', 'layerwise']);
  assert.equal(ok.status, 0, ok.stderr);
  assert.ok(fs.existsSync(path.join(out, 'short-lvlm-report.json')));
  fs.rmSync(path.dirname(out), { recursive: true, force: true });
});
