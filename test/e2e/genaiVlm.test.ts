// onnxruntime-genai VLM packages in the model builder's layout (test/fixtures/genai-phi3v-*,
// made by tools/fixtures/export_genai_vlm.py with PyTorch float64 references): one with the
// rotary inside GroupQueryAttention, one with separate RotaryEmbedding nodes. The package's
// own vision -> embedding -> decoder chain, run as genai runs it, matches PyTorch; the
// attention recomputed from the captured q/k matches PyTorch's; layers removed from the CLI
// match PyTorch with those layers skipped and leave genai_config.json consistent with the
// graph; calibrate -> prune with compensation -> bench works from the CLI. No onnxruntime-genai
// runtime for Node exists to load the result in, so these checks stand in for it.

import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CalibrationSession } from '../../src/engine/method/calibrate';
import { OnnxFile } from '../../src/engine/onnx/onnxFile';
import { openPackage } from '../../src/engine/package/modelPackage';
import { DecoderRunner } from '../../src/engine/runtime/decoderRunner';
import { GenaiFrontend, phi3Crops, phi3ImageProcessor } from '../../src/engine/runtime/genaiFrontend';
import { transformers } from '../../src/engine/runtime/vlmFrontend';
import { toFloat32 } from '../../src/engine/runtime/ort';
import { assertClose, hashFolder } from '../support/engineFixtures';
import { maxAbsDiff } from '../support/ortDecoder';

const repo = path.resolve(__dirname, '..', '..', '..');
const cli = path.join(repo, 'dist', 'cli.js');
const fixtures = path.join(repo, 'test', 'fixtures');
const STYLES = [
  { name: 'genai-phi3v-gqa', rotary: 'inside the op' },
  { name: 'genai-phi3v-rope', rotary: 'by RotaryEmbedding nodes' },
];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'genai-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

before(() => {
  if (!fs.existsSync(cli)) execFileSync(process.execPath, ['esbuild.mjs'], { cwd: repo, stdio: 'inherit' });
});

interface Reference {
  input_ids: number[];
  image_sizes: number[][];
  crops: number;
  image_tokens: number;
  hidden: number;
  vocab: number;
  layers: number;
  attention: { layer: number; rows: number[]; values: number[][] };
  cases: { skip: number[]; last_prompt_logits: number[]; next_logits: number[] }[];
}

function reference(name: string): Reference {
  return JSON.parse(fs.readFileSync(path.join(fixtures, name, 'reference.json'), 'utf8')) as Reference;
}

/** The script's deterministic pixels (multiples of 1/64, exact in float32). */
function pixels(crops: number): Float32Array {
  const n = crops * 3 * 336 * 336;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (((i * 7919) % 251) - 125) / 64;
  return out;
}

/** inputs_embeds of the reference prompt from the package's own vision and embedding models. */
async function referenceEmbeds(fe: GenaiFrontend, ref: Reference): Promise<Float32Array> {
  const feats = await fe.runVision(
    { data: pixels(ref.crops), dims: [1, ref.crops, 3, 336, 336] },
    { data: BigInt64Array.from(ref.image_sizes.flat(), BigInt), dims: [1, 2] },
  );
  assert.deepEqual(feats.dims, [ref.image_tokens, ref.hidden]);
  return Float32Array.from(toFloat32(await fe.runEmbedding(ref.input_ids, feats)));
}

/** Prompt minus its last token, then the last token with the KV cache, fed as genai feeds the decoder. */
async function checkAgainstTorch(dir: string, ref: Reference, skip: number[], what: string): Promise<void> {
  const c = ref.cases.find((x) => x.skip.join() === skip.join())!;
  const pkg = openPackage(dir);
  const fe = await GenaiFrontend.open(pkg);
  const dec = await DecoderRunner.fromFile(pkg.decoder, {}, { kvHeads: pkg.text.numKvHeads, headDim: pkg.text.headDim });
  try {
    const x = await referenceEmbeds(fe, ref);
    assert.equal(dec.numLayers, ref.layers - skip.length, `${what}: KV pairs`);
    const S = ref.input_ids.length - 1;
    const H = ref.hidden;
    const s1 = await fe.decoderStep(dec, x.slice(0, S * H), S);
    assertClose(s1.lastLogits, c.last_prompt_logits, `${what}: prompt logits`);
    const s2 = await fe.decoderStep(dec, x.slice(S * H), 1, s1.cache);
    assertClose(s2.lastLogits, c.next_logits, `${what}: next-token logits`);
    // The answer loop starts from the same prompt pass.
    const ids = ref.input_ids;
    const enc = { ids, embeds: x, seqLen: ids.length, hidden: H, isImage: Uint8Array.from(ids, (i) => (i < 0 ? 1 : 0)), inputs: {} };
    const g = await fe.generate(enc, dec, 3);
    assertClose(g.firstLogits, c.next_logits, `${what}: generation's first logits`);
    if (g.tokens.length) assert.equal(g.tokens[0], c.next_logits.indexOf(Math.max(...c.next_logits)));
  } finally {
    await dec.dispose();
    await fe.dispose();
  }
}

function cliRun(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', cwd: tmp });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function ok(r: { status: number | null; stderr: string }, what: string): void {
  assert.equal(r.status, 0, `${what}: exit ${r.status}, stderr: ${r.stderr.slice(-2000)}`);
}

/** The decoder graph and genai_config.json agree (what genai checks when it loads a package). */
function checkConfigMatchesGraph(dir: string, layers: number): void {
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'genai_config.json'), 'utf8'));
  const d = cfg.model.decoder;
  assert.equal(d.num_hidden_layers, layers);
  const f = OnnxFile.open(path.join(dir, d.filename));
  try {
    const inputs = f.graph.input.map((v) => v.name);
    const outputs = f.graph.output.map((v) => v.name);
    const expectIn = [d.inputs.inputs_embeds, d.inputs.attention_mask, ...(d.inputs.position_ids ? [d.inputs.position_ids] : [])];
    for (let i = 0; i < layers; i++) expectIn.push(d.inputs.past_key_names.replace('%d', i), d.inputs.past_value_names.replace('%d', i));
    assert.deepEqual(inputs, expectIn);
    const expectOut = [d.outputs.logits];
    for (let i = 0; i < layers; i++) expectOut.push(d.outputs.present_key_names.replace('%d', i), d.outputs.present_value_names.replace('%d', i));
    assert.deepEqual(outputs, expectOut);
    const gqa = f.graph.node.filter((n) => n.opType === 'GroupQueryAttention');
    assert.equal(gqa.length, layers);
    // Node and weight names renumbered as the builder numbers them.
    gqa.forEach((n, i) => assert.equal(n.name, `/model/layers.${i}/attn/GroupQueryAttention`));
    const rot = f.graph.node.filter((n) => n.opType === 'RotaryEmbedding').length;
    assert.ok(rot === 0 || rot === 2 * layers, `${rot} RotaryEmbedding nodes for ${layers} layers`);
    assert.ok(f.graph.initializer.some((t) => t.name === `model.layers.${layers - 1}.attn.q_proj.MatMul.weight`));
    assert.ok(!f.graph.initializer.some((t) => t.name === `model.layers.${layers}.attn.q_proj.MatMul.weight`));
  } finally {
    f.close();
  }
  for (const part of ['embedding', 'vision']) assert.ok(fs.existsSync(path.join(dir, cfg.model[part].filename)), part);
}

for (const style of STYLES) {
  const dir = path.join(fixtures, style.name);
  const ref = reference(style.name);

  test(`${style.name}: the package's vision, embedding and decoder models match PyTorch`, async () => {
    await checkAgainstTorch(dir, ref, [], style.name);
  });

  test(`${style.name}: inspect tells where the rotary runs; TIS attention from the captured q/k matches PyTorch`, async () => {
    const r = cliRun('inspect', dir, '--json');
    ok(r, 'inspect');
    const rep = JSON.parse(r.stdout);
    assert.equal(rep.layout, 'genai');
    assert.deepEqual(rep.genai, { type: 'phi3v' });
    assert.equal(rep.numLayers, ref.layers);
    assert.ok(rep.layers.every((l: { attention: string }) => l.attention.includes(`rotary ${style.rotary}`)), rep.layers[0].attention);

    const cs = await CalibrationSession.open(openPackage(dir), {}, [ref.attention.layer]);
    try {
      const x = await referenceEmbeds(cs.frontend as GenaiFrontend, ref);
      const ids = ref.input_ids;
      const enc = { ids, embeds: x, seqLen: ids.length, hidden: ref.hidden, isImage: Uint8Array.from(ids, (i) => (i < 0 ? 1 : 0)), inputs: {} };
      const taps = await cs.run(enc, [ref.attention.layer]);
      const att = taps.attention(ref.attention.layer);
      ref.attention.rows.forEach((row, k) => {
        const got = att.probs.subarray(row * att.seqLen, (row + 1) * att.seqLen);
        assert.ok(maxAbsDiff(got, ref.attention.values[k]) < 1e-5, `row ${row}: ${maxAbsDiff(got, ref.attention.values[k])}`);
      });
    } finally {
      await cs.dispose();
    }
  });

  test(`${style.name}: layers removed from the CLI match PyTorch with those layers skipped`, async () => {
    const before = hashFolder(dir);
    for (const skip of [[1], [2, 4]]) {
      const out = path.join(tmp, `${style.name}-skip${skip.join('')}`);
      ok(cliRun('prune', dir, '--layers', skip.join(','), '--no-scp', '--out', out, '--quiet'), `prune --layers ${skip}`);
      checkConfigMatchesGraph(out, ref.layers - skip.length);
      await checkAgainstTorch(out, ref, skip, `${style.name} without layers ${skip}`);
      // The vision and embedding models are carried over byte for byte.
      const after = hashFolder(out);
      for (const f of ['vision.onnx', 'vision.onnx.data', 'embedding.onnx', 'embedding.onnx.data', 'processor_config.json', 'tokenizer.json']) {
        assert.equal(after.get(f), before.get(f), f);
      }
    }
    assert.deepEqual(hashFolder(dir), before, 'the original package is unchanged');
  });
}

test('genai packages: calibrate -> prune with compensation -> bench from the CLI', async () => {
  const data = path.join(repo, 'data', 'tiny-vqa');
  const calib = path.join(tmp, 'calib.json');
  fs.writeFileSync(calib, JSON.stringify(JSON.parse(fs.readFileSync(path.join(data, 'calib.json'), 'utf8')).slice(0, 4).map((s: { image: string }) => ({ ...s, image: path.join(data, s.image) }))));
  const evalFile = path.join(tmp, 'eval.jsonl');
  const items = fs.readFileSync(path.join(data, 'eval.jsonl'), 'utf8').split('\n').filter(Boolean).slice(0, 3);
  fs.writeFileSync(evalFile, items.map((l) => JSON.stringify({ ...JSON.parse(l), image: path.join(data, JSON.parse(l).image) })).join('\n') + '\n');
  for (const style of STYLES) {
    const dir = path.join(fixtures, style.name);
    const out = path.join(tmp, `${style.name}-scp`);
    const r = cliRun('prune', dir, '--calib', calib, '--method', 'svl', '--ratio', '0.34', '--out', out, '--json', '--quiet');
    ok(r, `${style.name}: prune --calib`);
    const res = JSON.parse(r.stdout.trim().split('\n').pop()!);
    assert.equal(res.removed.length, 2);
    assert.equal(res.scp, true);
    checkConfigMatchesGraph(out, 4);
    const report = JSON.parse(fs.readFileSync(path.join(out, 'short-lvlm-report.json'), 'utf8'));
    assert.equal(report.calibration.visualTokensMean, 93, 'a square image is 2x2 crops: (4+1)*16 + 1 + 3*4 image tokens');
    // The prompt as genai builds it: the chat template's text, then the <|image_1|> tag as 93 image positions.
    const toks = report.tokenSamples[0].tokens as string[];
    assert.deepEqual(toks.slice(0, 8), ['<s>', 'Answer', 'in', 'one', 'word', '.', 'USER', ':']);
    assert.deepEqual(toks.slice(8, 8 + 93), new Array(93).fill('<image>'));
    assert.notEqual(toks[8 + 93], '<image>');
    assert.equal(report.pairs.length, 2);
    // Compensation changed each partner's down projection, and nothing else.
    const src = OnnxFile.open(openPackage(dir).decoder);
    const dst = OnnxFile.open(openPackage(out).decoder);
    try {
      const partners = new Set(report.pairs.map((p: { weight: string }) => p.weight));
      const kept = [...Array(6).keys()].filter((l) => !res.removed.includes(l));
      kept.forEach((l, newIndex) => {
        const a = src.tensorFloat32(src.initializerMap().get(`model.layers.${l}.mlp.down_proj.MatMul.weight`)!);
        const b = dst.tensorFloat32(dst.initializerMap().get(`model.layers.${newIndex}.mlp.down_proj.MatMul.weight`)!);
        const changed = maxAbsDiff(a, b) > 0;
        assert.equal(changed, partners.has(`model.layers.${l}.mlp.down_proj.MatMul.weight`), `layer ${l} down_proj changed: ${changed}`);
      });
    } finally {
      src.close();
      dst.close();
    }
    const b = cliRun('bench', dir, out, '--eval', evalFile, '--json', '--quiet', '--no-save');
    ok(b, `${style.name}: bench`);
    const rows = b.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(rows.length, 2);
    assert.deepEqual(rows.map((x: { numLayers: number }) => x.numLayers), [6, 4]);
    assert.ok(rows.every((x: { samplesPerSecond: number }) => x.samplesPerSecond > 0));
  }
});

test('genai packages: a model type whose front end the engine cannot run fails in one line; layers can still be removed', () => {
  const dir = path.join(tmp, 'qwen-like');
  fs.cpSync(path.join(fixtures, 'genai-phi3v-gqa'), dir, { recursive: true });
  const cfgFile = path.join(dir, 'genai_config.json');
  const cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
  cfg.model.type = 'qwen2_5_vl';
  fs.writeFileSync(cfgFile, JSON.stringify(cfg));
  const calib = path.join(repo, 'data', 'tiny-vqa', 'calib.json');
  const r = cliRun('prune', dir, '--calib', calib, '--samples', '1', '--out', path.join(tmp, 'qwen-out'));
  assert.notEqual(r.status, 0);
  const lines = r.stderr.split('\n').filter((l) => l && !/^(calibrate|compensate|load)/.test(l));
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /qwen2_5_vl.*M-RoPE.*--no-scp/);
  assert.ok(!fs.existsSync(path.join(tmp, 'qwen-out')));
  const shown = cliRun('inspect', dir);
  ok(shown, 'inspect');
  assert.match(shown.stdout, /genai type\s+qwen2_5_vl: layers only \(.*M-RoPE/);
  ok(cliRun('prune', dir, '--layers', '3', '--no-scp', '--out', path.join(tmp, 'qwen-layers'), '--quiet'), 'prune --layers');
  checkConfigMatchesGraph(path.join(tmp, 'qwen-layers'), 5);
});

test('genai phi3v images: a wide image is one row of two 336 x 336 tiles after the global view, zero crops after; its token count reaches the vision model', async () => {
  const t = await transformers();
  // Left half red, right half blue, 2:1.
  const W = 128;
  const H = 64;
  const rgb = new Uint8ClampedArray(W * H * 3);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) rgb.set(x < W / 2 ? [255, 0, 0] : [0, 0, 255], (y * W + x) * 3);
  const image = new t.RawImage(rgb, W, H, 3);
  const dir = path.join(fixtures, 'genai-phi3v-gqa');
  const proc = phi3ImageProcessor(t, dir, { config_filename: 'processor_config.json' });
  const crops = await phi3Crops(t, proc, image);
  assert.deepEqual(crops.pixelValues.dims, [1, 5, 3, 336, 336]);
  assert.deepEqual(Array.from(crops.imageSizes.data, Number), [336, 672]);
  assert.equal(crops.numImgTokens, (2 + 1) * 16 + 1 + 2 * 4);
  const mean = [0.48145466, 0.4578275, 0.40821073];
  const std = [0.26862954, 0.26130258, 0.27577711];
  const at = (crop: number, c: number, y: number, x: number) => crops.pixelValues.data[((crop * 3 + c) * 336 + y) * 336 + x];
  for (const [crop, colour] of [[1, [1, 0, 0]], [2, [0, 0, 1]]] as const) {
    for (let c = 0; c < 3; c++) {
      const want = (colour[c] - mean[c]) / std[c];
      for (const [y, x] of [[10, 10], [168, 168], [300, 300]]) assert.ok(Math.abs(at(crop, c, y, x) - want) < 1e-5, `crop ${crop} channel ${c} (${y}, ${x}): ${at(crop, c, y, x)} vs ${want}`);
    }
  }
  for (const crop of [3, 4]) assert.ok(crops.pixelValues.data.subarray(crop * 3 * 336 * 336, (crop + 1) * 3 * 336 * 336).every((v) => v === 0), `crop ${crop} is zero`);
  // Global view: left red, right blue.
  assert.ok(at(0, 0, 168, 40) > 1 && at(0, 2, 168, 300) > 1);

  const file = path.join(tmp, 'wide.png');
  await image.save(file);
  const fe = await GenaiFrontend.open(openPackage(dir));
  try {
    const enc = await fe.encode([{ role: 'user', content: '<image>\nIs there a red circle ?' }], file, true);
    assert.equal(enc.isImage.reduce((a, b) => a + b, 0), crops.numImgTokens);
    assert.ok(enc.ids.every((id, i) => (id < 0) === (enc.isImage[i] === 1) && (id >= 0 || id === -1)));
  } finally {
    await fe.dispose();
  }
});
