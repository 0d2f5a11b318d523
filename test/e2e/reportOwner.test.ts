// The engine is the report's only writer (issue 14 item 1): a prune writes it once, into the
// temporary folder, before that folder is renamed into place, and with the final figures
// (the size on disk of the written decoder, the write time); a benchmark adds its comparison
// by replacing the file whole (write a sibling, rename), from the engine's own job.

import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { benchJob, pruneJob } from '../../src/engine/jobs';
import { PARTIAL_INFIX, REPORT_FILE } from '../../src/protocol/files';
import type { Report } from '../../src/protocol/report';

const repo = path.resolve(__dirname, '..', '..', '..');
const model = path.join(repo, 'models', 'tiny-llava');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'report-owner-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Every write and rename of the file system made while `fn` runs, in order. */
async function recordFs<T>(fn: () => Promise<T>): Promise<{ result: T; ops: string[] }> {
  const ops: string[] = [];
  // The module object itself (the engine's `import * as fs` reads through to it).
  const fsm = require('fs') as Record<string, (...a: unknown[]) => unknown>;
  const saved = { writeFileSync: fsm.writeFileSync, renameSync: fsm.renameSync };
  fsm.writeFileSync = (file: unknown, ...rest: unknown[]) => {
    ops.push(`write ${String(file)}`);
    return saved.writeFileSync.call(fs, file, ...rest);
  };
  fsm.renameSync = (from: unknown, to: unknown) => {
    ops.push(`rename ${String(from)} -> ${String(to)}`);
    return saved.renameSync.call(fs, from, to);
  };
  try {
    return { result: await fn(), ops };
  } finally {
    Object.assign(fsm, saved);
  }
}

test('prune writes the report once, inside the temporary folder, before the rename; bench replaces it whole', async () => {
  const out = path.join(tmp, 'pruned');
  const { result, ops } = await recordFs(() => pruneJob({ model, calib: path.join(repo, 'data', 'tiny-vqa', 'calib.json'), out, options: { ratio: 0.2, samples: 3 } }));
  const reportWrites = ops.filter((o) => o.startsWith('write ') && path.basename(o) === REPORT_FILE);
  assert.equal(reportWrites.length, 1, `one write of the report: ${reportWrites.join(', ')}`);
  const tmpDir = path.dirname(reportWrites[0].slice('write '.length));
  assert.ok(path.basename(tmpDir).includes(PARTIAL_INFIX), `written into the temporary folder, not ${tmpDir}`);
  const rename = ops.findIndex((o) => o === `rename ${tmpDir} -> ${out}`);
  assert.ok(rename > ops.indexOf(reportWrites[0]), 'the rename comes after the report');
  assert.ok(!ops.slice(rename + 1).some((o) => o.includes(REPORT_FILE)), 'nothing touches the report after the rename');

  const report = JSON.parse(fs.readFileSync(path.join(out, REPORT_FILE), 'utf8')) as Report;
  assert.equal(result.report, path.join(out, REPORT_FILE));
  const onDisk = ['onnx/decoder_model_merged.onnx', ...fs.readdirSync(path.join(out, 'onnx')).filter((f) => /^decoder_model_merged\.onnx_data/.test(f)).map((f) => `onnx/${f}`)]
    .reduce((a, f) => a + fs.statSync(path.join(out, f)).size, 0);
  assert.equal(report.output.bytes, onDisk, 'the recorded size is the written decoder on disk');
  assert.ok(report.timings.writeSeconds! >= 0 && report.timings.calibrateSeconds! >= 0);

  // The benchmark job stores its comparison itself: a sibling written, then renamed over the report.
  const bench = await recordFs(() => benchJob({ models: [model, out], eval: path.join(repo, 'data', 'tiny-vqa', 'eval.jsonl'), samples: 2 }));
  assert.deepEqual(bench.result.reports, [path.join(out, REPORT_FILE)]);
  const touching = bench.ops.filter((o) => o.includes(REPORT_FILE));
  assert.equal(touching.length, 2, touching.join('\n'));
  assert.match(touching[0], /^write .*\.tmp-\d+$/);
  assert.ok(touching[1].endsWith(`-> ${path.join(out, REPORT_FILE)}`), touching[1]);
  const after = JSON.parse(fs.readFileSync(path.join(out, REPORT_FILE), 'utf8')) as Report;
  assert.deepEqual(after.benchmark?.rows.map((r) => r.numLayers), [16, 16 - report.removed.length]);
  assert.equal(after.benchmark?.items, 2);
  assert.deepEqual({ ...after, benchmark: undefined }, { ...report, benchmark: undefined }, 'the rest of the report unchanged');
});
