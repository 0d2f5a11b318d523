// The benchmark reports progress with an estimate of the time left, as the prune stages do
// (issue 15: no ETA while benchmarking). Checked against the time the run really took after
// each progress message, on the bundled model against itself.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'path';
import { benchJob } from '../../src/engine/jobs';
import type { Progress } from '../../src/protocol/engineApi';
import { progressText } from '../../src/protocol/format';

const repo = path.resolve(__dirname, '../../..');

test('bench progress carries an ETA that tracks the time really left', async () => {
  const seen: { p: Progress; at: number }[] = [];
  const model = path.join(repo, 'models/tiny-llava');
  await benchJob({ models: [model, model], eval: path.join(repo, 'data/tiny-vqa/eval.jsonl'), samples: 6, save: false }, { onProgress: (p) => seen.push({ p, at: performance.now() }) });
  const end = performance.now();
  assert.deepEqual(seen.map((s) => `${s.p.stage} ${s.p.done}/${s.p.total}`), [1, 2, 3, 4, 5, 6].map((i) => `bench ${i}/6`));
  for (const { p, at } of seen.slice(0, -1)) {
    assert.ok(Number.isFinite(p.etaSeconds) && p.etaSeconds! > 0, `ETA at ${p.done}/6: ${p.etaSeconds}`);
    assert.match(progressText(p), /, ETA \d/);
    // An estimate, not a measurement: within a broad factor of the time that was really left
    // (items take about the same time; a busy machine stretches all of them).
    const left = (end - at) / 1000;
    assert.ok(p.etaSeconds! < 10 * left + 1 && p.etaSeconds! > left / 10 - 1, `ETA ${p.etaSeconds!.toFixed(2)} s at ${p.done}/6, ${left.toFixed(2)} s really left`);
  }
  assert.equal(seen.at(-1)!.p.etaSeconds, 0, 'nothing left after the last item');
});
