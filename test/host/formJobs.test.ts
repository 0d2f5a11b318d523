// The run forms' engine jobs in the real engine process (dist/engineWorker.js, forked as the
// extension forks it): checkRun answers there, and a sweep started from the UI reports its
// progress and stops on cancel, leaving the process ready for the next request.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { EngineClient, EngineError } from '../../src/host/engineClient';

const REPO = path.resolve(__dirname, '..', '..', '..');
const WORKER = path.join(REPO, 'dist', 'engineWorker.js');
const MODEL = path.join(REPO, 'models', 'tiny-llava');
const CALIB = path.join(REPO, 'data', 'tiny-vqa', 'calib.json');
const EVAL = path.join(REPO, 'data', 'tiny-vqa', 'eval.jsonl');

const out = { info: () => undefined, warn: () => undefined, error: () => undefined } as never;

test('checkRun and a cancelled sweep in the engine process', async () => {
  assert.ok(fs.existsSync(WORKER), 'dist/engineWorker.js is missing: run `npm run build` first');
  const c = new EngineClient(WORKER, out, 30000);
  try {
    const config = JSON.parse(fs.readFileSync(path.join(MODEL, 'config.json'), 'utf8'));
    const check = await c.request({ type: 'checkRun', kind: 'sweep', model: MODEL, calib: CALIB, eval: EVAL, ratios: [0.6], methods: ['svl'] }).result;
    assert.equal(check.model?.family, `${config.model_type} (LlavaForConditionalGeneration)`);
    assert.deepEqual(check.problems, [{ field: 'ratios', message: 'must be a number in (0, 0.5], got 0.6' }]);

    const stages: string[] = [];
    let cancelled = false;
    const h = c.request(
      { type: 'sweep', model: MODEL, calib: CALIB, eval: EVAL, ratios: [0.25], methods: ['svl'], samples: 64, evalSamples: 12, randomSeeds: 1, exhaustiveLimit: 0 },
      {
        onProgress: (p) => {
          stages.push(p.stage);
          if (!cancelled && p.stage === 'calibrate' && p.done >= 1) {
            cancelled = true;
            c.cancel(h.id);
          }
        },
      },
    );
    await assert.rejects(h.result, (e: EngineError) => Boolean(e.details?.cancelled));
    assert.ok(stages.includes('calibrate'), `progress stages: ${stages.join(', ')}`);
    assert.ok(!stages.includes('sweep'), 'the sweep stopped during calibration');
    // The same process answers the next request.
    const again = await c.request({ type: 'checkRun', kind: 'prune', model: MODEL, calib: CALIB, out: path.join(REPO, 'no-such-parent', 'x', 'y'), options: {} }).result;
    assert.equal(again.model?.numLayers, config.text_config.num_hidden_layers);
  } finally {
    c.dispose();
  }
});
