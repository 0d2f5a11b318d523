// Issue 11, family x dtype beyond LLaVA: the Qwen2-VL miniature (M-RoPE, GQA) with fp16, q4
// and q4f16 decoders made by tools/quantize, pruned together with its fp32 decoder.
// - Layers removed from all four at once: transformers.js' Qwen2VLForConditionalGeneration,
//   loaded with each dtype, gives PyTorch's logits with those layers skipped (fp32 exactly;
//   the others within the rounding distance each variant already had before pruning).
// - Calibrated with compensation (--method svl --compensation scp): every variant is compensated, the
//   compensated fp32 weight reaches the q4 (independent 4-bit decoder) and fp16 decoders, and
//   transformers.js answers with each dtype as the engine does on that variant.
// And the Gemma 3 miniature's fp16 and q4 decoders with input-side SCP (--scp-target input,
// Gemma's norms leave no output-side weight): the five replaced weights of each partner (q, k,
// v, gate, up) reach every variant, and transformers.js answers with each dtype as the engine.

import { before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { benchModels } from '../../src/engine/bench/evaluate';
import { loadEval } from '../../src/engine/data/datasets';
import { discoverLayers } from '../../src/engine/graph/layers';
import { OnnxFile } from '../../src/engine/onnx/onnxFile';
import { Recipe, Report } from '../../src/protocol/report';
import { writeVariants } from '../../tools/quantize/cli';
import { assertFp16Rounded, assertQ4Near, initializerOf } from '../support/quantReference';
import { relL2 } from '../support/familyPackages';
import { loadWithTransformersJs, transformersJsAnswers } from '../support/transformersJs';

const repo = path.resolve(__dirname, '../../..');
const cli = path.join(repo, 'dist/cli.js');
const data = path.join(repo, 'data/tiny-vqa');
const work = path.join(repo, 'test/.fixtures/family-dtypes');
const orig = path.join(work, 'tiny-qwen2vl');
const skipped = path.join(work, 'tiny-qwen2vl-skip');
const calibrated = path.join(work, 'tiny-qwen2vl-calibrated');
const gemma = path.join(work, 'tiny-gemma3');
const gemmaPruned = path.join(work, 'tiny-gemma3-input');
const SKIP = [4, 5];
const L = 8;
const SUFFIX = { fp32: '', fp16: '_fp16', q4: '_q4', q4f16: '_q4f16' } as const;
type Dtype = keyof typeof SUFFIX;
const DTYPES = Object.keys(SUFFIX) as Dtype[];
const decoder = (pkg: string, d: Dtype) => path.join(pkg, 'onnx', `decoder_model_merged${SUFFIX[d]}.onnx`);
const dtypeOf = (d: Dtype) => ({ decoder_model_merged: d, embed_tokens: 'fp32', vision_encoder: 'fp32' });
const ref = JSON.parse(fs.readFileSync(path.join(data, 'reference-qwen2vl/logits.json'), 'utf8')) as {
  samples: Array<{ id: string; image: string; question: string; skips: Array<{ skip: number[]; logits_f32: number[] }> }>;
};

function prune(model: string, ...args: string[]): void {
  execFileSync(process.execPath, [cli, 'prune', model, ...args, '--quiet'], { stdio: ['ignore', 'ignore', 'pipe'] });
}

before(() => {
  assert.ok(fs.existsSync(cli), 'run npm run build first');
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(work, { recursive: true });
  fs.cpSync(path.join(repo, 'models/tiny-qwen2vl'), orig, { recursive: true });
  writeVariants(orig, ['fp16', 'q4', 'q4f16']);
  prune(orig, '--layers', SKIP.join(','), '--no-scp', '--out', skipped);
  prune(orig, '--calib', path.join(data, 'calib.json'), '--ratio', '0.25', '--samples', '8', '--method', 'svl', '--compensation', 'scp', '--out', calibrated);
  fs.cpSync(path.join(repo, 'models/tiny-gemma3'), gemma, { recursive: true });
  writeVariants(gemma, ['fp16', 'q4']);
  prune(gemma, '--calib', path.join(data, 'calib.json'), '--ratio', '0.25', '--samples', '8', '--method', 'svl', '--compensation', 'scp', '--scp-target', 'input', '--out', gemmaPruned);
});

/** transformers.js' last-position logits for the reference prompts, the package loaded with `d`. */
async function tjsLogits(pkg: string, d: Dtype, n: number): Promise<Float32Array[]> {
  const m = await loadWithTransformersJs(pkg, dtypeOf(d));
  try {
    assert.equal(m.model.constructor.name, 'Qwen2VLForConditionalGeneration');
    const out: Float32Array[] = [];
    for (const s of ref.samples.slice(0, n)) {
      const r = await m.model(await m.inputs({ question: s.question, image: path.join(data, s.image) }));
      const [, S, V] = r.logits.dims;
      out.push(Float32Array.from((r.logits.data as Float32Array).subarray((S - 1) * V, S * V)));
    }
    return out;
  } finally {
    await m.dispose();
  }
}

test('Qwen2-VL fp32, fp16, q4 and q4f16 decoders lose the same layers together; config and caches stay consistent', () => {
  for (const pkg of [skipped, calibrated]) {
    const cfg = JSON.parse(fs.readFileSync(path.join(pkg, 'config.json'), 'utf8'));
    assert.equal(cfg.num_hidden_layers, L - 2);
    for (const d of DTYPES) {
      const f = OnnxFile.open(decoder(pkg, d));
      try {
        assert.equal(discoverLayers(f.graph).layers.length, L - 2, `${path.basename(pkg)} ${d}: layers`);
        const past = f.graph.input.filter((v) => v.name.startsWith('past_key_values.')).map((v) => v.name);
        assert.deepEqual(past, [...Array(L - 2).keys()].flatMap((i) => [`past_key_values.${i}.key`, `past_key_values.${i}.value`]), `${d}: cache inputs`);
      } finally {
        f.close();
      }
    }
  }
});

test('layers removed from every variant match PyTorch with those layers skipped, in transformers.js with each dtype', async (t) => {
  const n = 3;
  const torch = (skip: number[]) => ref.samples.slice(0, n).map((s) => s.skips.find((k) => k.skip.join() === skip.join())!.logits_f32);
  const [full, skip] = [torch([]), torch(SKIP)];
  const mean = (xs: Float32Array[], ys: number[][]) => xs.reduce((a, x, i) => a + relL2(ys[i], x), 0) / xs.length;
  const removal = skip.reduce((a, x, i) => a + relL2(full[i], x), 0) / n;
  const lines: string[] = [];
  for (const d of DTYPES) {
    const before = mean(await tjsLogits(orig, d, n), full);
    const after = mean(await tjsLogits(skipped, d, n), skip);
    lines.push(`${d}: ${before.toExponential(2)} -> ${after.toExponential(2)}`);
    if (d === 'fp32') {
      assert.ok(after < 1e-5, `fp32 with [${SKIP}] removed vs PyTorch skipping them: ${after}`);
    } else {
      // Each variant stays at its own rounding distance from PyTorch; one pruned wrongly (other
      // layers, caches shifted) would sit near the removal's distance instead.
      assert.ok(after <= 2 * before + 1e-3, `${d}: pruned ${after} vs original ${before} (relative L2 to PyTorch)`);
      assert.ok(removal > 2.5 * after, `${d}: removing [${SKIP}] moves PyTorch's logits (${removal}) more than ${d} rounding (${after})`);
    }
  }
  t.diagnostic(`relative L2 of logits to PyTorch (${n} prompts), original -> layers ${SKIP} removed: ${lines.join('; ')}; removal itself ${removal.toExponential(2)}`);
});

/** Every variant compensated; each replaced fp32 weight reaches the q4 (independent decoder) and fp16 variants. */
function assertCompensationReachesVariants(src: string, out: string, dtypes: Dtype[], weightsPerPair: number): void {
  const report = JSON.parse(fs.readFileSync(path.join(out, 'short-lvlm-report.json'), 'utf8')) as Report;
  assert.equal(report.removed.length, 2);
  assert.equal(report.pairs.length, 2, 'both removed layers compensated');
  assert.ok(!report.warnings.some((w) => /SCP skipped|not compensated/.test(w)), report.warnings.join('\n'));
  assert.deepEqual(
    report.output.variants?.map((v) => [v.file, v.status]).sort(),
    dtypes.map((d) => [path.relative(src, decoder(src, d)), d === 'fp32' ? 'calibrated' : 'compensated']).sort(),
  );
  const recipe = JSON.parse(fs.readFileSync(path.join(out, 'recipe.json'), 'utf8')) as Recipe;
  const names = recipe.compensation.flatMap((c) => c.weights.map((w) => w.name));
  assert.equal(names.length, 2 * weightsPerPair);
  const [o32, p32, oq4, pq4, p16] = [decoder(src, 'fp32'), decoder(out, 'fp32'), decoder(src, 'q4'), decoder(out, 'q4'), decoder(out, 'fp16')].map((f) => OnnxFile.open(f));
  try {
    for (const name of names) {
      const before = o32.tensorFloat64(initializerOf(o32, name));
      const after = p32.tensorFloat64(initializerOf(p32, name));
      const [K, N] = initializerOf(p32, name).dims;
      assert.ok(after.some((x, i) => Math.abs(x - before[i]) > 1e-4), `${name} was compensated in fp32`);
      // q4 (block 32): decoded independently, within one quantisation step of the compensated fp32 weight, and moved.
      const deq = assertQ4Near(pq4, name, after, K, N);
      const deqBefore = assertQ4Near(oq4, name, before, K, N);
      assert.ok(deq.some((x, i) => Math.abs(x - deqBefore[i]) > 1e-4), `${name}: the q4 weight changed`);
      assertFp16Rounded(p16, name, after);
    }
  } finally {
    for (const f of [o32, p32, oq4, pq4, p16]) f.close();
  }
}

test('calibrated with compensation: every variant compensated; the fp32 compensation reaches the q4 and fp16 weights', () => {
  assertCompensationReachesVariants(orig, calibrated, DTYPES, 1);
});

test('gemma3 with input-side SCP: the five replaced weights of each partner reach the fp16 and q4 decoders', () => {
  assertCompensationReachesVariants(gemma, gemmaPruned, ['fp32', 'fp16', 'q4'], 5);
});

test('transformers.js loads every calibrated variant (Qwen2-VL, Gemma 3) with its dtype and answers as the engine does on it', async () => {
  const items = loadEval(path.join(data, 'eval.jsonl'), 4);
  for (const [pkg, dtypes] of [[calibrated, DTYPES], [gemmaPruned, ['fp32', 'fp16', 'q4']]] as const) {
    for (const d of dtypes) {
      const [ours] = await benchModels([decoder(pkg, d)], items);
      assert.equal(ours.numLayers, L - 2);
      assert.deepEqual(await transformersJsAnswers(pkg, items, 3, dtypeOf(d)), ours.answers.map((a) => a.predicted), `${path.basename(pkg)} ${d}`);
    }
  }
});
