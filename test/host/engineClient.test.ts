// EngineClient against a fake engine process: results and progress, a cancel the engine
// honours, a cancel it ignores (the process is killed after the grace period), a crash
// (pending requests rejected, the next request starts a new process), and the clean-up of
// partial output folders after such a kill.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { EngineClient, EngineError } from '../../src/host/engineClient';
import { toBenchmarkReport } from '../../src/engine/bench/attach';
import { formatEta } from '../../src/protocol/format';
import { progressText, removePartials } from '../../src/host/runHelpers';

// The fake engine speaks the real protocol; `options.mode` picks its behaviour.
const FAKE = `
const cancelled = new Set();
process.on('message', (r) => {
  if (r.type === 'cancel') { cancelled.add(r.id); return; }
  const mode = r.options && r.options.mode;
  if (mode === 'crash') process.exit(3);
  if (mode === 'ok') {
    process.send({ type: 'progress', id: r.id, stage: 'calibrate', done: 1, total: 2 });
    process.send({ type: 'log', id: r.id, line: 'hello' });
    process.send({ type: 'result', id: r.id, result: { pid: process.pid, env: process.env.ELECTRON_RUN_AS_NODE, execArgv: process.execArgv } });
    return;
  }
  // 'polite' checks for a cancel every 20 ms; 'stubborn' never answers.
  if (mode === 'polite') {
    const t = setInterval(() => {
      if (cancelled.has(r.id)) { clearInterval(t); process.send({ type: 'error', id: r.id, message: 'cancelled', cancelled: true }); }
    }, 20);
  }
});
process.on('disconnect', () => process.exit(0));
process.send({ type: 'ready', pid: process.pid });
`;

const lines: string[] = [];
const out = { info: (s: string) => lines.push(s), warn: (s: string) => lines.push(s), error: (s: string) => lines.push(s) } as never;

function fakeWorker(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fake-engine-'));
  const file = path.join(dir, 'worker.js');
  fs.writeFileSync(file, FAKE);
  return file;
}

const prune = (mode: string) => ({ type: 'prune' as const, model: 'm', options: { mode } as never });
/** The fake engine answers with its own shape, not a PruneSummary. */
const fake = <T>(r: unknown) => r as T;

test('a job resolves with its result, with progress and log lines on the way, in a plain Node child', async () => {
  const c = new EngineClient(fakeWorker(), out, 300);
  const progress: string[] = [];
  const logs: string[] = [];
  const r = fake<{ env: string; execArgv: string[] }>(await c.request(prune('ok'), { onProgress: (p) => progress.push(`${p.stage} ${p.done}/${p.total}`), onLog: (l) => logs.push(l) }).result);
  assert.equal(r.env, '1');
  assert.deepEqual(r.execArgv, ['--enable-source-maps']);
  assert.deepEqual(progress, ['calibrate 1/2']);
  assert.deepEqual(logs, ['hello']);
  c.dispose();
});

test('a cancel the engine honours rejects as cancelled and keeps the process', async () => {
  const c = new EngineClient(fakeWorker(), out, 2000);
  const h = c.request(prune('polite'));
  const pid = c.pid;
  setTimeout(() => c.cancel(h.id), 50);
  await assert.rejects(h.result, (e: EngineError) => e.details.cancelled === true && !e.details.crashed);
  const r = fake<{ pid: number }>(await c.request(prune('ok')).result);
  assert.equal(r.pid, pid);
  c.dispose();
});

test('a cancel the engine ignores kills the process after the grace period; the next job gets a new one', async () => {
  const c = new EngineClient(fakeWorker(), out, 300);
  const h = c.request(prune('stubborn'));
  const pid = c.pid!;
  const t0 = Date.now();
  setTimeout(() => c.cancel(h.id), 50);
  await assert.rejects(h.result, (e: EngineError) => e.details.cancelled === true);
  assert.ok(Date.now() - t0 >= 300, 'rejected before the grace period');
  assert.throws(() => process.kill(pid, 0), 'the stubborn process is still alive');
  const r = fake<{ pid: number }>(await c.request(prune('ok')).result);
  assert.notEqual(r.pid, pid);
  c.dispose();
});

test('a crash rejects every pending job with a clear message; the engine restarts on the next request', async () => {
  const c = new EngineClient(fakeWorker(), out, 300);
  const waiting = c.request(prune('stubborn'));
  const crashing = c.request(prune('crash'));
  for (const h of [waiting, crashing]) {
    await assert.rejects(h.result, (e: EngineError) => e.details.crashed === true && /stopped unexpectedly \(exit code 3\).*restarted on the next request/.test(e.message));
  }
  const r = fake<{ env: string }>(await c.request(prune('ok')).result);
  assert.equal(r.env, '1');
  c.dispose();
});

test('removePartials removes only the engine temp siblings of the output folder', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'partials-'));
  const out = path.join(dir, 'm-short-lvlm-svl-r0.3');
  for (const n of ['.m-short-lvlm-svl-r0.3.partial-abc', '.m-short-lvlm-svl-r0.3.partial-def', '.other.partial-x', 'm']) fs.mkdirSync(path.join(dir, n));
  fs.writeFileSync(path.join(dir, '.m-short-lvlm-svl-r0.3.partial-abc', 'decoder.onnx'), 'x');
  assert.deepEqual(removePartials(out).sort(), ['.m-short-lvlm-svl-r0.3.partial-abc', '.m-short-lvlm-svl-r0.3.partial-def']);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['.other.partial-x', 'm']);
  assert.deepEqual(removePartials(path.join(dir, 'missing', 'x')), []);
});

test('progress text and benchmark rows', () => {
  assert.equal(progressText({ stage: 'calibrate', done: 3, total: 16, etaSeconds: 12.4 }), 'calibrate 3/16, ETA 12s');
  assert.equal(progressText({ stage: 'write', done: 1, total: 1, etaSeconds: 0 }), 'write 1/1');
  assert.equal(formatEta(59.7), '1m 00s');
  assert.equal(formatEta(125), '2m 05s');
  const fam = (n: number, c: number) => ({ q: { n, correct: c, accuracy: c / n } });
  const b = toBenchmarkReport(
    [
      { model: '/m/orig', numLayers: 16, accuracy: 0.5, families: fam(10, 5), samplesPerSecond: 10, sizeBytes: 100, prefillMsMean: 1, decodeMsMean: 1 },
      { model: '/m/pruned', numLayers: 11, accuracy: 0.4, families: fam(10, 4), samplesPerSecond: 15, sizeBytes: 70, prefillMsMean: 1, decodeMsMean: 1, relativeAccuracy: 0.8, agreement: 0.9, klMean: 0.1 },
    ],
    '/d/eval.jsonl',
  );
  assert.equal(b.items, 10);
  assert.equal(b.rows[0].label, 'orig (original)');
  assert.equal(b.rows[0].relativeAccuracy, 1);
  assert.equal(b.rows[1].speedup, 1.5);
  assert.equal(b.rows[1].agreement, 0.9);
});
