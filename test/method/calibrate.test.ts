// The engine's all-token per-layer cosine on the bundled tiny VLM against the PyTorch float64
// reference written by tools/tinyvlm/export.py (data/tiny-vqa/reference/layer_cosine.json).
// Everything is read at run time: the model and the reference are re-exported together after
// each training run, so no value is written here. The prompt is the eval prompt (chat template,
// image first, generation prompt), encoded by the package's own processor through the engine's
// frontend; its token ids are checked first against the ids Python used.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { evalMessages, loadEval } from '../../src/engine/data/datasets';
import { CalibrationSession } from '../../src/engine/method/calibrate';
import { tokenCosines } from '../../src/engine/method/cosine';
import { openPackage } from '../../src/engine/package/modelPackage';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const MODEL = path.join(ROOT, 'models', 'tiny-llava');
const REF_DIR = path.join(ROOT, 'data', 'tiny-vqa', 'reference');
const COSINE_REF = path.join(REF_DIR, 'layer_cosine.json');
const LOGITS_REF = path.join(REF_DIR, 'logits.json');
const EVAL = path.join(ROOT, 'data', 'tiny-vqa', 'eval.jsonl');
const TOL = 1e-4;

interface CosineSample {
  id: string;
  image: string;
  question: string;
  num_tokens: number;
  cosine: number[];
  /** Written by newer exports; older ones only have num_tokens. */
  input_ids?: number[];
}
interface CosineRef {
  checkpoint_step?: number;
  samples: CosineSample[];
  mean: number[];
}

test('all-token per-layer cosine on models/tiny-llava matches the PyTorch reference', async (t) => {
  if (!fs.existsSync(COSINE_REF)) {
    t.skip(`no reference at ${path.relative(ROOT, COSINE_REF)}: run tools/tinyvlm/export.py to write it`);
    return;
  }
  const ref = JSON.parse(fs.readFileSync(COSINE_REF, 'utf8')) as CosineRef;
  assert.ok(Array.isArray(ref.samples) && ref.samples.length > 0, 'reference has samples');
  // Ids Python fed the model: from this file when it has them, else from logits.json (same
  // export, same prompt_ids) for the samples both files cover.
  const pythonIds = new Map<string, number[]>();
  if (fs.existsSync(LOGITS_REF)) {
    const lg = JSON.parse(fs.readFileSync(LOGITS_REF, 'utf8')) as { checkpoint_step?: number; samples: Array<{ id: string; input_ids: number[] }> };
    if (lg.checkpoint_step === ref.checkpoint_step) for (const s of lg.samples) pythonIds.set(s.id, s.input_ids);
  }
  for (const s of ref.samples) if (s.input_ids) pythonIds.set(s.id, s.input_ids);

  const items = new Map(loadEval(EVAL).map((it) => [it.id, it]));
  const cs = await CalibrationSession.open(openPackage(MODEL), { threads: 1 });
  try {
    const L = cs.numLayers;
    assert.equal(ref.mean.length, L, 'reference and model have the same number of layers');
    const layers = Array.from({ length: L }, (_, i) => i);
    const sums = new Array<number>(L).fill(0);
    let idsChecked = 0;
    const worst = { diff: 0, where: '' };
    for (const s of ref.samples) {
      const item = items.get(s.id);
      assert.ok(item, `reference sample ${s.id} is in ${path.relative(ROOT, EVAL)}`);
      assert.equal(item.question, s.question, `${s.id}: same question`);
      const enc = await cs.frontend.encode(evalMessages(item), item.image, true);
      const expectedIds = pythonIds.get(s.id);
      if (expectedIds) {
        assert.deepEqual(enc.ids, expectedIds, `${s.id}: token ids (tokenizer, chat template, image-token expansion) differ from Python's`);
        idsChecked++;
      }
      assert.equal(enc.seqLen, s.num_tokens, `${s.id}: prompt length`);
      const taps = await cs.run(enc, layers);
      const S = enc.seqLen;
      const D = taps.hidden;
      for (const l of layers) {
        const cos = tokenCosines(taps.residualIn(l), taps.residualOut(l), S, D);
        const m = cos.reduce((a, b) => a + b, 0) / S;
        sums[l] += m;
        const diff = Math.abs(m - s.cosine[l]);
        if (diff > worst.diff) Object.assign(worst, { diff, where: `${s.id} layer ${l}: engine ${m}, PyTorch ${s.cosine[l]}` });
        assert.ok(diff <= TOL, `${s.id} layer ${l}: engine ${m} vs PyTorch ${s.cosine[l]} (diff ${diff.toExponential(2)})`);
      }
    }
    for (const l of layers) {
      const m = sums[l] / ref.samples.length;
      assert.ok(Math.abs(m - ref.mean[l]) <= TOL, `mean over samples, layer ${l}: engine ${m} vs PyTorch ${ref.mean[l]}`);
    }
    assert.ok(idsChecked > 0, 'at least one sample\'s token ids were compared with Python\'s (add "input_ids" to layer_cosine.json samples)');
    t.diagnostic(`${ref.samples.length} samples x ${L} layers (checkpoint step ${ref.checkpoint_step}); token ids compared on ${idsChecked}; largest |diff| ${worst.diff.toExponential(2)} (${worst.where})`);
  } finally {
    await cs.dispose();
  }
});
