// Instrumentation taps against the independent reference: every layer's residual stream
// (in, mid, out), the decomposed style's Softmax probabilities, and the fused style's query /
// present-key taps from which attentionFromQK recomputes the probabilities GroupQueryAttention
// never exposes (rotary on the query, causal softmax, GQA head mapping).

import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { instrumentDecoder } from '../../src/engine/graph/instrument';
import { attentionFromQK } from '../../src/engine/method/fusedAttention';
import { queryPart } from '../../src/engine/method/calibrate';
import * as ort from 'onnxruntime-node';
import { OnnxFile, writeOnnx } from '../../src/engine/onnx/onnxFile';
import { ModelProto } from '../../src/engine/onnx/proto';
import { openEditedSession } from '../../src/engine/runtime/ort';
import { assertClose, Variant, VARIANTS, writeVariant } from '../support/engineFixtures';
import { maxAbsDiff, runDecoderStep } from '../support/ortDecoder';
import { Rng } from '../support/prng';
import { referenceForward } from '../support/referenceForward';
import { randomEmbeds, SynthModel } from '../support/synthModels';
import { sessionOptions } from '../support/prunedCheck';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'instrument-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const S = 6;

/** The instrumented model with every weight inline, in onnxruntime with basic optimisation. */
async function openInline(model: ModelProto, file: OnnxFile): Promise<ort.InferenceSession> {
  const inline = path.join(fs.mkdtempSync(path.join(tmp, 'inline-')), 'model.onnx');
  writeOnnx(model, file, inline);
  return ort.InferenceSession.create(inline, { ...sessionOptions, graphOptimizationLevel: 'basic' });
}

async function runInstrumented(m: SynthModel, opts: Parameters<typeof instrumentDecoder>[1] = {}) {
  const file = OnnxFile.open(m.decoderPath);
  const inst = instrumentDecoder(file.model, opts);
  const session = await openInline(inst.model, file);
  const x = randomEmbeds(S + 1, m.dims.hidden, 5);
  try {
    const step1 = await runDecoderStep(session, m.dims, x.slice(0, S * m.dims.hidden));
    const step2 = await runDecoderStep(session, m.dims, x.slice(S * m.dims.hidden), step1.present);
    return { inst, file, x, out: step1.outputs, out2: step2.outputs, outputNames: session.outputNames };
  } finally {
    await session.release();
  }
}

function fusedCase(v: Variant): boolean {
  return v.opts.style === 'fused';
}

for (const v of [VARIANTS[0], VARIANTS[1], VARIANTS[2], VARIANTS[4], VARIANTS[5]]) {
  test(`instrumentDecoder: ${v.name}`, async () => {
    const m = writeVariant(tmp, v, { numLayers: 4 });
    const { inst, file, x, out, out2, outputNames } = await runInstrumented(m);
    const { heads, kvHeads, headDim, hidden: H, vocab: V } = m.dims;
    const ref = referenceForward(m.weights, x.subarray(0, S * H), { captureAttention: true });
    try {
      // The computation itself is unchanged.
      assertClose(out.logits.data as Float32Array, ref.logits, 'logits');
      assert.equal(inst.taps.length, 4);
      assert.equal(inst.embeddings, 'inputs_embeds');
      for (let i = 0; i < 4; i++) {
        const tap = inst.taps[i];
        assert.equal(tap.residualIn === '', i === 0);
        if (tap.residualIn) assertClose(out[tap.residualIn].data as Float32Array, ref.layerInputs[i], `layer ${i} residual in`);
        assert.deepEqual(out[tap.residualOut].dims, [1, S, H]);
        assertClose(out[tap.residualOut].data as Float32Array, ref.layerOutputs[i], `layer ${i} residual out`);
        assertClose(out[tap.residualMid].data as Float32Array, ref.layerMids[i], `layer ${i} residual mid`);
        const want = ref.attention![i]!;
        if (!fusedCase(v)) {
          assert.ok(tap.probs);
          assert.deepEqual(out[tap.probs].dims, [1, heads, S, S]);
          assertClose(out[tap.probs].data as Float32Array, want, `layer ${i} probs`);
        } else {
          assert.ok(tap.query && tap.presentKey, 'query and present-key taps');
          assert.deepEqual(out[tap.query].dims, [1, S, heads * headDim]);
          assert.deepEqual(out[tap.presentKey].dims, [1, kvHeads, S, headDim]);
          const a = inst.structure.layers[i].attention!;
          const inits = file.initializerMap();
          const cos = file.tensorFloat32(inits.get(a.cosCache!)!);
          const sin = file.tensorFloat32(inits.get(a.sinCache!)!);
          assert.deepEqual(cos, m.weights.rope.cos);
          assert.deepEqual(sin, m.weights.rope.sin);
          const probs = attentionFromQK(out[tap.query].data as Float32Array, out[tap.presentKey].data as Float32Array, S, heads, kvHeads, headDim, cos, sin);
          assert.equal(probs.length, heads * S * S);
          assertClose(probs, want, `layer ${i} recomputed attention`);
          // Without rotary on the query, or with the wrong head mapping, it does not match.
          const noRot = attentionFromQK(out[tap.query].data as Float32Array, out[tap.presentKey].data as Float32Array, S, heads, kvHeads, headDim, cos, sin, headDim, false, undefined, false);
          assert.ok(maxAbsDiff(noRot, want) > 1e-3, 'rotary matters');

          // Next token with a past: the query row sits at position S and sees S + 1 keys.
          const T = S + 1;
          const full = referenceForward(m.weights, x, { captureAttention: true }).attention![i]!;
          const lastRow = new Float64Array(heads * T);
          for (let h = 0; h < heads; h++) lastRow.set(full.subarray(h * T * T + S * T, h * T * T + S * T + T), h * T);
          const p2 = attentionFromQK(out2[tap.query].data as Float32Array, out2[tap.presentKey].data as Float32Array, 1, heads, kvHeads, headDim, cos, sin);
          assertClose(p2, lastRow, `layer ${i} attention of the next token`);
        }
      }
      assertClose(out2.logits.data as Float32Array, referenceForward(m.weights, x).logits.subarray(S * V), 'next-token logits');
      // Only outputs were added.
      const originalOutputs = file.graph.output.map((o) => o.name);
      assert.deepEqual(outputNames.slice(0, originalOutputs.length), originalOutputs);
    } finally {
      file.close();
    }
  });
}

test('instrumentDecoder: fused attention after separate RotaryEmbedding nodes (head size 24, GQA without caches)', async () => {
  const m = writeVariant(tmp, VARIANTS[4], { numLayers: 3, hidden: 96, heads: 4, kvHeads: 2, rotaryNodes: true, dir: path.join(tmp, 'rotary-nodes') });
  const { inst, file, x, out, out2 } = await runInstrumented(m);
  const { heads, kvHeads, headDim, hidden: H } = m.dims;
  assert.equal(headDim, 24);
  try {
    assert.equal(file.graph.node.filter((n) => n.opType === 'RotaryEmbedding').length, 2 * 3);
    assert.ok(file.graph.input.some((v) => v.name === 'position_ids'));
    const ref = referenceForward(m.weights, x.subarray(0, S * H), { captureAttention: true });
    const full = referenceForward(m.weights, x, { captureAttention: true });
    assertClose(out.logits.data as Float32Array, ref.logits, 'logits');
    for (let i = 0; i < 3; i++) {
      const a = inst.structure.layers[i].attention!;
      assert.equal(a.rotary, 'nodes');
      assert.equal(a.doRotary, false);
      assert.equal(a.cosCache, undefined, 'GroupQueryAttention has no caches');
      const tap = inst.taps[i];
      const q = out[tap.query!].data as Float32Array;
      const k = out[tap.presentKey!].data as Float32Array;
      // The captured query is already rotated: no cache is needed to recompute the attention.
      const none = new Float32Array(0);
      const probs = attentionFromQK(q, k, S, heads, kvHeads, headDim, none, none, headDim, false, undefined, false);
      assertClose(probs, ref.attention![i]!, `layer ${i} attention from rotated q/k`);
      // Rotating it again (as for do_rotary=1) gives something else.
      const twice = attentionFromQK(q, k, S, heads, kvHeads, headDim, m.weights.rope.cos, m.weights.rope.sin);
      assert.ok(maxAbsDiff(twice, ref.attention![i]!) > 1e-3, 'a second rotation changes the attention');
      const T = S + 1;
      const lastRow = new Float64Array(heads * T);
      for (let h = 0; h < heads; h++) lastRow.set(full.attention![i]!.subarray(h * T * T + S * T, h * T * T + S * T + T), h * T);
      const p2 = attentionFromQK(out2[tap.query!].data as Float32Array, out2[tap.presentKey!].data as Float32Array, 1, heads, kvHeads, headDim, none, none, headDim, false, undefined, false);
      assertClose(p2, lastRow, `layer ${i} attention of the next token (position_ids = S)`);
    }
  } finally {
    file.close();
  }
});

test('instrumentDecoder: packed q/k/v into GroupQueryAttention; the query part of the packed input gives the attention', async () => {
  const m = writeVariant(tmp, VARIANTS[4], { numLayers: 2, packedQkv: true, dir: path.join(tmp, 'packed-qkv') });
  const { inst, file, x, out } = await runInstrumented(m);
  const { heads, kvHeads, headDim, hidden: H } = m.dims;
  try {
    const ref = referenceForward(m.weights, x.subarray(0, S * H), { captureAttention: true });
    assertClose(out.logits.data as Float32Array, ref.logits, 'logits');
    for (let i = 0; i < 2; i++) {
      const a = inst.structure.layers[i].attention!;
      assert.equal(a.key, '', 'packed: no separate key input');
      const packed = out[inst.taps[i].query!].data as Float32Array;
      assert.equal(packed.length, S * (heads + 2 * kvHeads) * headDim);
      const q = queryPart(packed, S, a);
      const probs = attentionFromQK(q, out[inst.taps[i].presentKey!].data as Float32Array, S, heads, kvHeads, headDim, m.weights.rope.cos, m.weights.rope.sin);
      assertClose(probs, ref.attention![i]!, `layer ${i} attention from the packed query`);
    }
  } finally {
    file.close();
  }
});

test('instrumentDecoder: a subset of layers, attention off', async () => {
  const m = writeVariant(tmp, VARIANTS[4], { numLayers: 4, dir: path.join(tmp, 'subset') });
  const { inst, out, x } = await runInstrumented(m, { layers: [1, 3], attention: false });
  const ref = referenceForward(m.weights, x.subarray(0, S * m.dims.hidden));
  const added = inst.model.graph.output.length - (1 + 2 * 4);
  assert.equal(added, 2 * 3, 'in, mid and out of two layers');
  assert.equal(inst.taps[1].query, undefined);
  assertClose(out[inst.taps[3].residualOut].data as Float32Array, ref.layerOutputs[3], 'last layer out (fused final norm)');
  assertClose(out[inst.taps[1].residualIn].data as Float32Array, ref.layerInputs[1], 'layer 1 in');
  assert.equal(out[inst.taps[0].residualMid], undefined);
  assert.equal(out[inst.taps[2].residualMid], undefined);
});

test('attentionFromQK: interleaved rotary is the half rotary with permuted dimensions; no rotary = rotaryDim 0', () => {
  const heads = 4;
  const kv = 2;
  const hd = 8;
  const T = 5;
  const Sq = 3;
  const rng = new Rng(8);
  const q = rng.float32(Sq * heads * hd, 1);
  const k = rng.float32(kv * T * hd, 1);
  const half = hd / 2;
  const cos = new Float32Array(16 * half);
  const sin = new Float32Array(16 * half);
  for (let p = 0; p < 16; p++) for (let j = 0; j < half; j++) [cos[p * half + j], sin[p * half + j]] = [Math.cos(p / 3 ** j), Math.sin(p / 3 ** j)];
  // half layout index j <-> interleaved 2j, j + half <-> 2j + 1
  const perm = (a: Float32Array, n: number) => {
    const o = new Float32Array(a.length);
    for (let r = 0; r < n; r++) for (let j = 0; j < half; j++) {
      o[r * hd + 2 * j] = a[r * hd + j];
      o[r * hd + 2 * j + 1] = a[r * hd + j + half];
    }
    return o;
  };
  const a = attentionFromQK(q, k, Sq, heads, kv, hd, cos, sin);
  const b = attentionFromQK(perm(q, Sq * heads), perm(k, kv * T), Sq, heads, kv, hd, cos, sin, hd, true);
  assert.equal(a.length, heads * Sq * T);
  assert.ok(maxAbsDiff(a, b) < 1e-12);
  // Causal with a past of T - Sq: row s sees keys 0..T-Sq+s, rows sum to 1.
  for (let h = 0; h < heads; h++) for (let s = 0; s < Sq; s++) {
    let sum = 0;
    for (let t = 0; t < T; t++) {
      const p = a[(h * Sq + s) * T + t];
      if (t > T - Sq + s) assert.equal(p, 0);
      sum += p;
    }
    assert.ok(Math.abs(sum - 1) < 1e-12);
  }
  const none = attentionFromQK(q, k, Sq, heads, kv, hd, cos, sin, hd, false, undefined, false);
  const zero = attentionFromQK(q, k, Sq, heads, kv, hd, new Float32Array(0), new Float32Array(0), 0);
  assert.ok(maxAbsDiff(none, zero) < 1e-15);
  assert.ok(maxAbsDiff(none, a) > 1e-3);
  assert.throws(() => attentionFromQK(q, k, Sq, heads, 3, hd, cos, sin), /multiple/);
  assert.throws(() => attentionFromQK(q, k.subarray(1), Sq, heads, kv, hd, cos, sin), /present key/);
});


test('openEditedSession runs an edited model that reads the original external data (runtime/ort.ts)', async () => {
  // onnxruntime >= 1.2x resolves symlinks and refuses external data outside the model's folder:
  // the session folder must hold hard links (or copies), not symlinks.
  const m = writeVariant(tmp, VARIANTS[4], { numLayers: 2, dir: path.join(tmp, 'edited') });
  const file = OnnxFile.open(m.decoderPath);
  try {
    const inst = instrumentDecoder(file.model);
    const owned = await openEditedSession(inst.model, file, { optimization: 'basic', threads: 1 });
    try {
      const x = randomEmbeds(S, m.dims.hidden, 5);
      const step = await runDecoderStep(owned.session, m.dims, x);
      assertClose(step.logits, referenceForward(m.weights, x).logits, 'logits');
      assertClose(step.outputs[inst.taps[1].residualOut].data as Float32Array, referenceForward(m.weights, x).layerOutputs[1], 'tap');
    } finally {
      await owned.dispose();
    }
  } finally {
    file.close();
  }
});
