// The synthetic fixtures are right: every style x layout runs in onnxruntime-node and matches
// the independent float64 reference forward, for a prompt (empty past) and for one more token
// fed with the returned present as past.

import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import { OnnxFile, writeOnnx } from '../../src/engine/onnx/onnxFile';
import { maxAbs, maxAbsDiff, runDecoderStep } from '../support/ortDecoder';
import { referenceEmbed, referenceForward, referenceVision } from '../support/referenceForward';
import { Rng } from '../support/prng';
import {
  buildDecomposedDecoder,
  makeSynthWeights,
  randomEmbeds,
  resolveDims,
  SynthModel,
  SynthOptions,
  SynthWeights,
  writeSynthModel,
} from '../support/synthModels';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'synth-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const sessionOptions: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1 };

function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  const diff = maxAbsDiff(got, want);
  const tol = 1e-4 * Math.max(1, maxAbs(want));
  assert.ok(diff < tol, `${what}: max abs diff ${diff} >= ${tol}`);
}

/** Runs the decoder for a prompt and one more token; compares both with the reference. */
async function checkAgainstReference(m: SynthModel, seqLen = 6): Promise<void> {
  const { hidden: H, vocab: V, kvHeads, headDim, numLayers } = m.dims;
  const session = await ort.InferenceSession.create(m.decoderPath, sessionOptions);
  try {
    const all = randomEmbeds(seqLen + 1, H, 7);
    const prompt = all.subarray(0, seqLen * H);
    const step1 = await runDecoderStep(session, m.dims, prompt.slice());
    assert.deepEqual(step1.outputs.logits.dims, [1, seqLen, V]);
    assert.equal(step1.present.length, numLayers);
    assert.deepEqual(step1.present[numLayers - 1].key.dims, [1, kvHeads, seqLen, headDim]);
    const ref1 = referenceForward(m.weights, prompt);
    assert.ok(maxAbs(ref1.logits) > 0.1, 'reference logits are not degenerate');
    assertClose(step1.logits, ref1.logits, `${path.basename(m.dir)} prompt logits`);

    const step2 = await runDecoderStep(session, m.dims, all.slice(seqLen * H), step1.present);
    assert.deepEqual(step2.outputs.logits.dims, [1, 1, V]);
    assert.deepEqual(step2.present[0].value.dims, [1, kvHeads, seqLen + 1, headDim]);
    const ref2 = referenceForward(m.weights, all);
    assertClose(step2.logits, ref2.logits.subarray(seqLen * V), `${path.basename(m.dir)} next-token logits`);
  } finally {
    await session.release();
  }
}

async function checkExtras(m: SynthModel): Promise<void> {
  assert.ok(m.embedPath && m.visionPath, 'embedding and vision models written');
  const embed = await ort.InferenceSession.create(m.embedPath, sessionOptions);
  const ids = [0, 3, m.dims.vocab - 1, 3];
  const e = await embed.run({ input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, ids.length]) });
  assert.deepEqual(e.inputs_embeds.dims, [1, ids.length, m.dims.hidden]);
  assert.deepEqual(Array.from(e.inputs_embeds.data as Float32Array), Array.from(referenceEmbed(m.weights, ids)));
  await embed.release();

  const vision = await ort.InferenceSession.create(m.visionPath, sessionOptions);
  const pixels = new Rng(5).float32(3 * 16 * 16, 1);
  const v = await vision.run({ pixel_values: new ort.Tensor('float32', pixels, [1, 3, 16, 16]) });
  assert.deepEqual(v.image_features.dims, [1, 4, m.dims.hidden]);
  assertClose(v.image_features.data as Float32Array, referenceVision(m.weights, pixels), 'vision features');
  await vision.release();
}

function nodeNames(file: string): { names: Set<string>; ops: Map<string, number>; inits: Set<string>; inputs: string[]; file: OnnxFile } {
  const f = OnnxFile.open(file);
  const ops = new Map<string, number>();
  for (const n of f.graph.node) ops.set(n.opType, (ops.get(n.opType) ?? 0) + 1);
  return {
    names: new Set(f.graph.node.map((n) => n.name)),
    ops,
    inits: new Set(f.graph.initializer.map((t) => t.name)),
    inputs: f.graph.input.map((i) => i.name),
    file: f,
  };
}

function write(name: string, opts: Omit<SynthOptions, 'dir'>): SynthModel {
  return writeSynthModel({ dir: path.join(tmp, name), seed: name, ...opts });
}

test('decomposed / optimum, inline weights', async () => {
  const m = write('dec-optimum', { style: 'decomposed', layout: 'optimum' });
  assert.equal(m.decoderPath, path.join(m.dir, 'onnx', 'decoder_model_merged.onnx'));
  assert.deepEqual(m.dataFiles, []);
  const cfg = JSON.parse(fs.readFileSync(m.configPath!, 'utf8'));
  assert.equal(cfg.model_type, 'llava');
  assert.equal(cfg.text_config.model_type, 'llama');
  assert.equal(cfg.text_config.num_hidden_layers, 6);
  assert.equal(cfg.text_config.head_dim, 8);
  assert.equal(cfg['transformers.js_config'], undefined);
  const g = nodeNames(m.decoderPath);
  assert.ok(g.names.has('/model/layers.0/self_attn/q_proj/MatMul'));
  assert.ok(g.names.has('/model/layers.5/Add_1'));
  assert.ok(g.names.has('/model/norm/Pow'));
  assert.ok(g.names.has('/lm_head/MatMul'));
  assert.ok(g.inits.has('model.layers.3.self_attn.q_proj.weight'));
  assert.ok(g.inits.has('model.layers.3.mlp.down_proj.weight'));
  assert.ok(g.inits.has('model.layers.3.input_layernorm.weight'));
  assert.deepEqual(g.inputs.slice(0, 4), ['inputs_embeds', 'attention_mask', 'position_ids', 'past_key_values.0.key']);
  assert.equal(g.inputs.length, 3 + 2 * 6);
  assert.equal(g.ops.get('Softmax'), 6);
  assert.equal(g.ops.get('Expand'), 12);
  assert.equal(g.ops.get('Reciprocal'), 13);
  await checkAgainstReference(m);
  await checkExtras(m);
});

test('decomposed / optimum, external data in several chunks', async () => {
  const m = write('dec-optimum-ext', { style: 'decomposed', layout: 'optimum', externalChunkBytes: 16384 });
  assert.ok(m.dataFiles.length >= 3, `${m.dataFiles.length} chunks`);
  assert.deepEqual(
    m.dataFiles.map((f) => path.basename(f)),
    m.dataFiles.map((_, i) => (i === 0 ? 'decoder_model_merged.onnx_data' : `decoder_model_merged.onnx_data_${i}`)),
  );
  for (const f of m.dataFiles) assert.ok(fs.statSync(f).size <= 16384);
  const cfg = JSON.parse(fs.readFileSync(m.configPath!, 'utf8'));
  assert.deepEqual(cfg['transformers.js_config'], { use_external_data_format: { 'decoder_model_merged.onnx': m.dataFiles.length } });
  const f = OnnxFile.open(m.decoderPath);
  const q = f.graph.initializer.find((t) => t.name === 'model.layers.0.self_attn.q_proj.weight')!;
  assert.equal(q.dataLocation, 1);
  assert.deepEqual(f.tensorFloat32(q), m.weights.layers[0].q);
  f.close();
  await checkAgainstReference(m);
});

test('decomposed / single file, anonymous MatMul weights', async () => {
  const m = write('dec-anon', { layout: 'single', anonymousWeights: true, numLayers: 4 });
  assert.equal(m.configPath, undefined);
  assert.equal(path.basename(m.decoderPath), 'decoder.onnx');
  assert.deepEqual(fs.readdirSync(m.dir), ['decoder.onnx']);
  const g = nodeNames(m.decoderPath);
  const matmulWeights = g.file.graph.node.filter((n) => n.opType === 'MatMul' && g.inits.has(n.input[1])).map((n) => n.input[1]);
  assert.equal(matmulWeights.length, 4 * 7 + 1);
  for (const w of matmulWeights) assert.match(w, /^onnx::MatMul_\d+$/);
  assert.ok(g.inits.has('model.layers.2.post_attention_layernorm.weight'));
  assert.ok(g.inits.has('model.norm.weight'));
  await checkAgainstReference(m);
});

test("decomposed / single file, '/' name prefix and Div norms, MHA (kvHeads = heads)", async () => {
  const m = write('dec-slash', { layout: 'single', namePrefix: '/', normForm: 'div', heads: 4, kvHeads: 4 });
  const g = nodeNames(m.decoderPath);
  assert.ok(g.names.has('/layers.0/self_attn/q_proj/MatMul'));
  assert.ok(g.names.has('/norm/Div'));
  assert.ok(![...g.names].some((n) => n.startsWith('/model/')));
  assert.ok(g.inits.has('layers.1.self_attn.k_proj.weight'));
  assert.ok(g.inits.has('layers.1.input_layernorm.weight'));
  assert.equal(g.ops.get('Reciprocal'), undefined);
  assert.equal(g.ops.get('Expand'), undefined);
  await checkAgainstReference(m);
});

test('fused / genai', async () => {
  const m = write('fused-genai', { style: 'fused', layout: 'genai' });
  assert.equal(m.decoderPath, path.join(m.dir, 'model.onnx'));
  assert.deepEqual(m.dataFiles, [path.join(m.dir, 'model.onnx.data')]);
  const cfg = JSON.parse(fs.readFileSync(m.configPath!, 'utf8'));
  assert.equal(cfg.model.decoder.filename, 'model.onnx');
  assert.equal(cfg.model.decoder.num_hidden_layers, 6);
  assert.equal(cfg.model.decoder.head_size, 16);
  assert.equal(cfg.model.decoder.inputs.past_key_names, 'past_key_values.%d.key');
  assert.equal(cfg.model.decoder.outputs.present_value_names, 'present.%d.value');
  assert.equal(cfg.model.vocab_size, 50);
  const g = nodeNames(m.decoderPath);
  assert.equal(g.ops.get('SkipSimplifiedLayerNormalization'), 12);
  assert.equal(g.ops.get('SimplifiedLayerNormalization'), 1);
  assert.equal(g.ops.get('GroupQueryAttention'), 6);
  assert.equal(g.ops.get('Softmax'), undefined);
  assert.ok(!g.inputs.includes('position_ids'));
  assert.ok(g.names.has('/model/layers.6/final_norm_layernorm/SkipLayerNorm'));
  assert.ok(g.inits.has('model.layers.2.attn.q_proj.MatMul.weight'));
  assert.ok(g.inits.has('model.layers.2.mlp.down_proj.MatMul.weight'));
  const skip1 = g.file.graph.node.find((n) => n.name === '/model/layers.1/input_layernorm/SkipLayerNorm')!;
  assert.equal(skip1.domain, 'com.microsoft');
  assert.deepEqual(skip1.output.slice(1, 3), ['', '']);
  assert.equal(skip1.input[1], '/model/layers.0/post_attention_layernorm/SkipLayerNorm/output_3');
  await checkAgainstReference(m);
  await checkExtras(m);
});

test('fused / optimum with external data', async () => {
  const m = write('fused-optimum', { style: 'fused', layout: 'optimum', externalData: true, numLayers: 3 });
  assert.deepEqual(m.dataFiles.map((f) => path.basename(f)), ['decoder_model_merged.onnx_data']);
  const cfg = JSON.parse(fs.readFileSync(m.configPath!, 'utf8'));
  assert.equal(cfg.text_config.num_hidden_layers, 3);
  assert.equal(cfg.text_config.hidden_size, 64);
  assert.deepEqual(cfg['transformers.js_config'].use_external_data_format, { 'decoder_model_merged.onnx': 1 });
  await checkAgainstReference(m);
  await checkExtras(m);
});

test('fused style rejects a head size GroupQueryAttention cannot rotate', () => {
  assert.throws(() => resolveDims({ style: 'fused', hidden: 32, heads: 4 }), /multiple of 16/);
});

test('weights are deterministic in the seed and generation is fast', () => {
  const d = resolveDims({});
  const a = makeSynthWeights(d, 3);
  const b = makeSynthWeights(d, 3);
  const c = makeSynthWeights(d, 4);
  assert.deepEqual(a.layers[2].gate, b.layers[2].gate);
  assert.notDeepEqual(a.layers[2].gate, c.layers[2].gate);
  const t0 = performance.now();
  write('timing', { style: 'decomposed', layout: 'optimum', externalData: true });
  const ms = performance.now() - t0;
  assert.ok(ms < 1000, `default package written in ${ms.toFixed(0)} ms`);
});

test('reference skipLayers / replace match a decoder built without the layer and with the replaced weight', async () => {
  const w = makeSynthWeights(resolveDims({ numLayers: 5 }), 'skip');
  const down1 = new Float32Array(w.layers[1].down.length);
  new Rng(11).fillUniform(down1, -0.05, 0.05);
  const pruned: SynthWeights = {
    ...w,
    dims: { ...w.dims, numLayers: 4 },
    layers: w.layers.filter((_, i) => i !== 3).map((lw, i) => (i === 1 ? { ...lw, down: down1 } : lw)),
  };
  const file = path.join(tmp, 'pruned.onnx');
  writeOnnx(buildDecomposedDecoder(pruned), undefined, file);
  const session = await ort.InferenceSession.create(file, sessionOptions);
  const x = randomEmbeds(5, w.dims.hidden, 3);
  const got = await runDecoderStep(session, pruned.dims, x);
  await session.release();
  const ref = referenceForward(w, x, { skipLayers: [3], replace: { layers: { 1: { down: down1 } } }, captureAttention: true });
  assertClose(got.logits, ref.logits, 'pruned logits');
  const full = referenceForward(w, x);
  assert.ok(maxAbsDiff(full.logits, ref.logits) > 1e-2, 'the change is visible');
  assert.equal(ref.hidden.length, 6);
  assert.equal(ref.hidden[4], ref.hidden[3], 'a skipped layer passes the residual through');
  assert.deepEqual(ref.layerOutputs[0], full.layerOutputs[0]);
  assert.equal(ref.attention![3], undefined);
  const probs = ref.attention![0]!;
  const S = 5;
  for (let h = 0; h < w.dims.heads; h++) {
    for (let s = 0; s < S; s++) {
      let sum = 0;
      for (let t = 0; t < S; t++) sum += probs[h * S * S + s * S + t];
      assert.ok(Math.abs(sum - 1) < 1e-12);
      assert.equal(probs[h * S * S + s * S + S - 1] === 0, s < S - 1);
    }
  }
});

test('decomposed mask: batch of 2 with left padding matches the unpadded reference', async () => {
  const m = write('dec-padding', { numLayers: 3 });
  const { hidden: H, vocab: V, kvHeads, headDim, numLayers } = m.dims;
  const S = 7;
  const pad = 3;
  const x = randomEmbeds(S, H, 21);
  const emb = new Float32Array(2 * S * H);
  emb.set(x, 0);
  emb.set(x.subarray(pad * H), S * H + pad * H); // row 1: 3 padding positions, then the last 4 tokens
  const mask = Array.from({ length: 2 * S }, (_, i) => (i < S || i - S >= pad ? 1n : 0n));
  const pos = Array.from({ length: 2 * S }, (_, i) => BigInt(i < S ? i : Math.max(0, i - S - pad)));
  const feeds: Record<string, ort.Tensor> = {
    inputs_embeds: new ort.Tensor('float32', emb, [2, S, H]),
    attention_mask: new ort.Tensor('int64', BigInt64Array.from(mask), [2, S]),
    position_ids: new ort.Tensor('int64', BigInt64Array.from(pos), [2, S]),
  };
  for (let i = 0; i < numLayers; i++) {
    for (const kv of ['key', 'value']) feeds[`past_key_values.${i}.${kv}`] = new ort.Tensor('float32', new Float32Array(0), [2, kvHeads, 0, headDim]);
  }
  const session = await ort.InferenceSession.create(m.decoderPath, sessionOptions);
  const logits = (await session.run(feeds)).logits.data as Float32Array;
  await session.release();
  assertClose(logits.subarray(0, S * V), referenceForward(m.weights, x).logits, 'row 0');
  assertClose(logits.subarray(S * V + pad * V), referenceForward(m.weights, x.subarray(pad * H)).logits, 'left-padded row 1');
});
