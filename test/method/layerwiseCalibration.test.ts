// Calibration run layer by layer (groups of samples through one layer piece at a time)
// against the whole instrumented graph, on the bundled tiny VLM (decomposed attention) and on
// a fused-attention miniature: the same statistics (1e-6 relative) and the same chosen
// layers. A layer-wise calibration cancelled after a group resumes from its checkpoint to
// the statistics of an uninterrupted run.

import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadCalibration } from '../../src/engine/data/datasets';
import { calibrate, CalibrationSession, CalibrationStats } from '../../src/engine/method/calibrate';
import { DEFAULT_OPTIONS, planFromStats } from '../../src/engine/method/shortLvlm';
import { openPackage } from '../../src/engine/package/modelPackage';
import { CalibrationSums } from '../../src/engine/method/calibSums';
import { chooseExecution } from '../../src/engine/runtime/execution';
import { writeFusedTinyVlm } from '../support/fusedTinyVlm';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const TINY = path.join(ROOT, 'models', 'tiny-llava');
const CALIB = path.join(ROOT, 'data', 'tiny-vqa', 'calib.json');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'layerwise-calib-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const OPTS = { topP: DEFAULT_OPTIONS.topP, keepMode: DEFAULT_OPTIONS.keepMode, threads: 1 };

async function calibrated(model: string, execution: 'whole' | 'layerwise', n: number, extra: Partial<Parameters<typeof calibrate>[2]> = {}): Promise<CalibrationStats> {
  const cs = await CalibrationSession.open(openPackage(model), { threads: 1, execution });
  try {
    assert.equal(cs.execution.execution, execution);
    return await calibrate(cs, loadCalibration(CALIB, n), { ...OPTS, samplesInFlight: 3, ...extra });
  } finally {
    await cs.dispose();
  }
}

function relClose(a: number, b: number, what: string, rel = 1e-6): void {
  assert.ok(Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b), 1e-12), `${what}: ${a} vs ${b}`);
}

function assertSameStats(a: CalibrationStats, b: CalibrationStats, what: string, rel = 1e-6): void {
  assert.equal(a.samples, b.samples);
  assert.equal(a.tokens, b.tokens);
  assert.equal(a.visualTokens, b.visualTokens);
  a.layers.forEach((x, l) => {
    const y = b.layers[l];
    for (const k of ['cosTis', 'cosAll', 'cosText', 'cosVisual'] as const) relClose(x[k], y[k], `${what} layer ${l} ${k}`, rel);
    assert.deepEqual([x.nText, x.nVisual, x.keptTotal, x.keptVisual], [y.nText, y.nVisual, y.keptTotal, y.keptVisual], `${what} layer ${l} counts`);
  });
  assert.deepEqual(a.histVisual, b.histVisual, `${what}: visual TIS histograms`);
  assert.deepEqual(a.histText, b.histText, `${what}: text TIS histograms`);
  assert.deepEqual(a.tokenSamples.map((s) => s.kept), b.tokenSamples.map((s) => s.kept), `${what}: kept tokens of the recorded samples`);
}

const fusedDir = () => {
  const dir = path.join(tmp, 'fused-tiny');
  return fs.existsSync(dir) ? dir : writeFusedTinyVlm(TINY, dir);
};

for (const [name, model] of [['tiny-llava (decomposed)', () => TINY], ['fused miniature', fusedDir]] as const) {
  test(`layer-wise calibration equals whole-graph calibration: ${name}`, async () => {
    const dir = model();
    const whole = await calibrated(dir, 'whole', 8);
    const layerwise = await calibrated(dir, 'layerwise', 8);
    assert.equal(whole.style, name.startsWith('fused') ? 'fused' : 'decomposed');
    assertSameStats(layerwise, whole, name);
    for (const ratio of [0.2, 0.3, 0.5]) {
      for (const method of ['svl', 'cosine'] as const) {
        const o = { ...DEFAULT_OPTIONS, ratio, method };
        assert.deepEqual(planFromStats(layerwise, o).removed, planFromStats(whole, o).removed, `${name}: ${method} at ${ratio}`);
      }
    }
  });
}

test('layer-wise calibration cancelled in its second group resumes from the first group\'s checkpoint', async () => {
  const checkpoint = path.join(tmp, 'calib.checkpoint.json');
  const group = { samplesInFlight: 4 };
  const full = await calibrated(TINY, 'layerwise', 6, group);
  let callsAfterCheckpoint = 0;
  await assert.rejects(
    calibrated(TINY, 'layerwise', 6, {
      ...group,
      checkpoint,
      // Cancelled a few layers into the second group: the checkpoint after the first stays.
      checkCancelled: () => {
        if (fs.existsSync(checkpoint) && ++callsAfterCheckpoint === 10) throw new Error('cancelled');
      },
    }),
    /cancelled/,
  );
  const saved = JSON.parse(fs.readFileSync(checkpoint, 'utf8'));
  assert.equal(saved.stats.samples, 4, 'the checkpoint holds the first completed group');
  let resumedAt = -1;
  const resumed = await calibrated(TINY, 'layerwise', 6, { ...group, checkpoint, onResume: (done) => (resumedAt = done) });
  assert.equal(resumedAt, 4);
  assertSameStats(resumed, full, 'resumed', 0);
  // The checkpoint belongs to this run only.
  const sums = new CalibrationSums(full.numLayers, full.style, OPTS);
  assert.equal(sums.load(checkpoint, 'another run'), false);
  assert.equal(sums.done, 0);
});

test('execution choice: whole graph when the decoder fits twice in free memory, else layer-wise; forced either way', () => {
  const GiB = 2 ** 30;
  assert.equal(chooseExecution('auto', 1 * GiB, 8 * GiB).execution, 'whole');
  assert.equal(chooseExecution('auto', 14 * GiB, 20 * GiB).execution, 'layerwise');
  assert.equal(chooseExecution('whole', 14 * GiB, 1 * GiB).execution, 'whole');
  assert.equal(chooseExecution('layerwise', 1, 8 * GiB).execution, 'layerwise');
});
