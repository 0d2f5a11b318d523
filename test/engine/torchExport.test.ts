// A package this project did not generate: a tiny random LLaMA-style decoder exported by
// PyTorch's own torch.onnx.export (tools/fixtures/export_torch_llama.py; anonymous
// `onnx::MatMul_N` weights, rotary computed from position_ids, repeat_kv by expand + reshape),
// with reference logits computed in PyTorch. inspect finds its layers; pruned copies run in
// onnxruntime-node and match PyTorch with the same layers skipped. No Python at test time.

import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import { inspectModel } from '../../src/engine/commands/inspect';
import { removeLayers } from '../../src/engine/graph/surgery';
import { OnnxFile } from '../../src/engine/onnx/onnxFile';
import { openPackage } from '../../src/engine/package/modelPackage';
import { writePrunedPackage } from '../../src/engine/package/writePackage';
import { assertClose, hashFolder, partialsNextTo } from '../support/engineFixtures';
import { maxAbsDiff, runDecoderStep } from '../support/ortDecoder';
import { sessionOptions } from '../support/prunedCheck';
import { SynthDims } from '../support/synthModels';

const repo = path.resolve(__dirname, '..', '..', '..');
const fixture = path.join(repo, 'test', 'fixtures', 'torch-llama');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'torch-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Reference {
  seq: number;
  hidden: number;
  vocab: number;
  inputs_embeds: number[];
  cases: { skip: number[]; logits: number[] }[];
}
const ref = JSON.parse(fs.readFileSync(path.join(fixture, 'reference.json'), 'utf8')) as Reference;
const config = JSON.parse(fs.readFileSync(path.join(fixture, 'config.json'), 'utf8')).text_config;
const L = config.num_hidden_layers as number;

function dims(numLayers: number): SynthDims {
  return { numLayers, hidden: config.hidden_size, heads: config.num_attention_heads, kvHeads: config.num_key_value_heads, headDim: config.head_dim } as SynthDims;
}

/** Prompt of seq-1 tokens with an empty past, then the last token with the present as past. */
async function checkAgainstTorch(decoder: string, skip: number[]): Promise<void> {
  const want = ref.cases.find((c) => c.skip.join() === skip.join())!.logits;
  const S = ref.seq - 1;
  const H = ref.hidden;
  const V = ref.vocab;
  const x = Float32Array.from(ref.inputs_embeds);
  const session = await ort.InferenceSession.create(decoder, sessionOptions);
  try {
    const d = dims(L - skip.length);
    assert.equal(session.inputNames.filter((n) => n.startsWith('past_key_values.')).length, 2 * d.numLayers);
    const s1 = await runDecoderStep(session, d, x.slice(0, S * H));
    assertClose(s1.logits, want.slice(0, S * V), `skip [${skip}]: prompt logits`);
    const s2 = await runDecoderStep(session, d, x.slice(S * H), s1.present);
    assertClose(s2.logits, want.slice(S * V), `skip [${skip}]: next-token logits`);
  } finally {
    await session.release();
  }
}

test('torch export: the fixture is small and complete', () => {
  const files = [...hashFolder(fixture).keys()].sort();
  assert.deepEqual(files, ['config.json', 'onnx/decoder_model_merged.onnx', 'reference.json']);
  const bytes = files.reduce((a, f) => a + fs.statSync(path.join(fixture, f)).size, 0);
  assert.ok(bytes < 200 * 1024, `${bytes} bytes`);
  assert.deepEqual(ref.cases.map((c) => c.skip), [[], [1], [2, 3]]);
  // The references differ from each other: skipping layers is visible.
  assert.ok(maxAbsDiff(ref.cases[0].logits, ref.cases[1].logits) > 1e-2);
  assert.ok(maxAbsDiff(ref.cases[0].logits, ref.cases[2].logits) > 1e-2);
});

test('torch export: inspect finds the layers, their KV anchors and weights', () => {
  const r = inspectModel(fixture);
  assert.equal(r.layout, 'optimum');
  assert.equal(r.attentionStyle, 'decomposed');
  assert.equal(r.numLayers, L);
  assert.equal(r.configLayers, L);
  assert.equal(r.hiddenSize, config.hidden_size);
  assert.deepEqual(r.externalData, []);
  assert.deepEqual(r.warnings, []);
  const f = OnnxFile.open(path.join(fixture, 'onnx', 'decoder_model_merged.onnx'));
  try {
    // Cross-check with torch's node names (scope = module path), which discovery does not use.
    const consumerName = (w: string) => f.graph.node.find((n) => n.input.includes(w))!.name;
    const hd = config.num_attention_heads * config.head_dim;
    r.layers.forEach((l, i) => {
      assert.equal(l.kvIndex, i);
      assert.match(l.oProj!.name, /^onnx::MatMul_\d+$/, 'torch names MatMul weights anonymously');
      assert.match(consumerName(l.oProj!.name), new RegExp(`layers\\.${i}/self_attn/o_proj/`));
      assert.match(consumerName(l.downProj!.name), new RegExp(`layers\\.${i}/mlp/down_proj/`));
      assert.deepEqual(l.oProj!.shape, [hd, config.hidden_size]);
      assert.deepEqual(l.downProj!.shape, [config.intermediate_size, config.hidden_size]);
      assert.equal(l.oProj!.layout, 'in,out');
      const roles = l.inputWeights.map((w) => /self_attn\/(\w+)_proj|mlp\/(\w+)_proj/.exec(consumerName(w.name))!.slice(1).find(Boolean)).sort();
      assert.deepEqual(roles, ['gate', 'k', 'q', 'up', 'v']);
      assert.match(l.attention, /^softmax /);
    });
  } finally {
    f.close();
  }
});

test('torch export: the original runs in onnxruntime and matches PyTorch', async () => {
  await checkAgainstTorch(path.join(fixture, 'onnx', 'decoder_model_merged.onnx'), []);
});

for (const skip of [[1], [2, 3]]) {
  test(`torch export: removing layers [${skip}] matches PyTorch with them skipped`, async () => {
    const before = hashFolder(fixture);
    const out = path.join(tmp, `pruned-${skip.join('-')}`);
    const res = writePrunedPackage(openPackage(fixture), { remove: skip, outDir: out });
    assert.equal(res.numLayers, L - skip.length);
    assert.deepEqual(hashFolder(fixture), before, 'committed fixture unchanged');
    assert.deepEqual(partialsNextTo(out), []);
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
    assert.equal(cfg.text_config.num_hidden_layers, L - skip.length);
    await checkAgainstTorch(res.decoder, skip);
    // removeLayers on the model in memory gives the same graph the package holds.
    const f = OnnxFile.open(path.join(fixture, 'onnx', 'decoder_model_merged.onnx'));
    const r = removeLayers(f.model, skip);
    f.close();
    assert.equal(r.numLayers, L - skip.length);
    const written = OnnxFile.open(res.decoder);
    assert.deepEqual(written.graph.node.map((n) => n.name), r.model.graph.node.map((n) => n.name));
    written.close();
    const again = inspectModel(out);
    assert.equal(again.numLayers, L - skip.length);
    assert.deepEqual(again.warnings, []);
  });
}
