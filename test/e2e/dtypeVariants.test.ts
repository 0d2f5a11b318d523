// Issue 11, item 4: a package with all eight decoder dtypes transformers.js loads (fp32, fp16,
// q4 and q4f16 with MatMulNBits block 32, quantized/uint8 with MatMulInteger, int8 as QDQ,
// bnb4),
// made by tools/quantize from the bundled model, pruned with compensation in one run. Every
// variant comes out with the same layers removed; the compensated weights reach the q4, bnb4,
// uint8, int8 and fp16 decoders (checked with independent decoders and rounding bounds);
// each pruned variant's logits stay as close to the pruned fp32 model's as the original
// variant's were to the original fp32 model's; transformers.js loads each variant with its
// dtype and answers as the project's runner does on that variant.

import { before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { benchModels } from '../../src/engine/bench/evaluate';
import { evalMessages, loadEval } from '../../src/engine/data/datasets';
import { discoverLayers } from '../../src/engine/graph/layers';
import { pruneJob } from '../../src/engine/jobs';
import { float32ToBytes, halfToFloat, OnnxFile, writeOnnx } from '../../src/engine/onnx/onnxFile';
import { writePrunedPackage } from '../../src/engine/package/writePackage';
import { openPackage } from '../../src/engine/package/modelPackage';
import { DecoderRunner } from '../../src/engine/runtime/decoderRunner';
import { VlmFrontend } from '../../src/engine/runtime/vlmFrontend';
import { Recipe, Report } from '../../src/protocol/report';
import { writeVariants } from '../../tools/quantize/cli';
import { reference4bit, referenceBnb4 } from '../support/quantReference';
import { transformersJsAnswers } from '../support/transformersJs';

const repo = path.resolve(__dirname, '../../..');
const data = path.join(repo, 'data/tiny-vqa');
const work = path.join(repo, 'test/.fixtures/dtype-variants');
const orig = path.join(work, 'tiny-llava');
const pruned = path.join(work, 'tiny-llava-pruned');
const REMOVED = [9, 10];
const SUFFIX = { fp32: '', q4: '_q4', fp16: '_fp16', q4f16: '_q4f16', quantized: '_quantized', int8: '_int8', uint8: '_uint8', bnb4: '_bnb4' } as const;
type Dtype = keyof typeof SUFFIX;
const QUANTISED = (Object.keys(SUFFIX) as Dtype[]).filter((d) => d !== 'fp32');
const decoder = (pkg: string, d: Dtype) => path.join(pkg, 'onnx', `decoder_model_merged${SUFFIX[d]}.onnx`);

before(async () => {
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(work, { recursive: true });
  fs.cpSync(path.join(repo, 'models/tiny-llava'), orig, { recursive: true });
  // int8 as weight-only QDQ, quantized and uint8 as dynamic MatMulInteger: both 8-bit forms.
  writeVariants(orig, ['q4', 'fp16', 'q4f16', 'quantized', 'int8', 'uint8', 'bnb4'], { int8Qdq: true });
  await pruneJob({ model: orig, calib: path.join(data, 'calib.json'), out: pruned, options: { layers: REMOVED, scp: true, samples: 4, holdout: 0 } });
});

test('all eight dtype variants are pruned together: same layers removed, config and caches consistent', () => {
  const cfg = JSON.parse(fs.readFileSync(path.join(pruned, 'config.json'), 'utf8'));
  assert.equal(cfg.text_config.num_hidden_layers, 16 - REMOVED.length);
  const report = JSON.parse(fs.readFileSync(path.join(pruned, 'short-lvlm-report.json'), 'utf8')) as Report;
  assert.deepEqual(report.removed, REMOVED);
  assert.deepEqual(
    report.output.variants?.map((v) => [v.file, v.status]).sort(),
    (Object.keys(SUFFIX) as Dtype[]).map((d) => [path.relative(orig, decoder(orig, d)), d === 'fp32' ? 'calibrated' : 'compensated']).sort(),
  );
  for (const d of Object.keys(SUFFIX) as Dtype[]) {
    const f = OnnxFile.open(decoder(pruned, d));
    try {
      const s = discoverLayers(f.graph);
      assert.equal(s.layers.length, 14, `${d}: layers`);
      const past = f.graph.input.filter((v) => v.name.startsWith('past_key_values.')).map((v) => v.name);
      assert.deepEqual(past, [...Array(14).keys()].flatMap((i) => [`past_key_values.${i}.key`, `past_key_values.${i}.value`]), `${d}: cache inputs`);
    } finally {
      f.close();
    }
  }
});

test('compensated weights reach the q4 (block 32), bnb4, uint8, int8 (QDQ) and fp16 decoders, re-encoded in their schemes; other q4 weights keep their bytes', () => {
  const recipe = JSON.parse(fs.readFileSync(path.join(pruned, 'recipe.json'), 'utf8')) as Recipe;
  const names = recipe.compensation.flatMap((c) => c.weights.map((w) => w.name));
  assert.equal(names.length, REMOVED.length, 'one down projection per pair');
  const open = (p: string) => OnnxFile.open(p);
  const [o32, p32, oq4, pq4, p16, pbnb, pu8, pi8] = [decoder(orig, 'fp32'), decoder(pruned, 'fp32'), decoder(orig, 'q4'), decoder(pruned, 'q4'), decoder(pruned, 'fp16'), decoder(pruned, 'bnb4'), decoder(pruned, 'uint8'), decoder(pruned, 'int8')].map(open);
  try {
    const init = (f: OnnxFile, n: string) => {
      const t = f.initializerMap().get(n);
      assert.ok(t, `${n} in ${f.filePath}`);
      return t!;
    };
    for (const name of names) {
      const before = o32.tensorFloat64(init(o32, name));
      const after = p32.tensorFloat64(init(p32, name));
      const [K, N] = init(p32, name).dims;
      let changed = 0;
      for (let i = 0; i < after.length; i++) changed = Math.max(changed, Math.abs(after[i] - before[i]));
      assert.ok(changed > 1e-4, `${name} was compensated in fp32`);
      // q4: dequantised with the independent decoder, within a quantisation step of the fp32 weight.
      const B = init(pq4, `${name}_Q4`);
      const scales = pq4.tensorFloat64(init(pq4, `${name}_scales`));
      const deq = reference4bit(pq4.tensorBytes(B), scales, undefined, K, N, 32);
      const kBlocks = Math.ceil(K / 32);
      let err = 0;
      for (let k = 0; k < K; k++) {
        for (let n = 0; n < N; n++) {
          const s = Math.abs(scales[n * kBlocks + Math.floor(k / 32)]);
          err = Math.max(err, Math.abs(deq[k * N + n] - after[k * N + n]) / s);
        }
      }
      assert.ok(err <= 1 + 1e-6, `${name}: q4 weight within one step of the compensated fp32 weight (${err})`);
      const deqBefore = reference4bit(oq4.tensorBytes(init(oq4, `${name}_Q4`)), oq4.tensorFloat64(init(oq4, `${name}_scales`)), undefined, K, N, 32);
      let moved = 0;
      for (let i = 0; i < deq.length; i++) moved = Math.max(moved, Math.abs(deq[i] - deqBefore[i]));
      assert.ok(moved > 1e-4, `${name}: the q4 weight changed`);
      // bnb4 (NF4, block 64): within half the widest gap of the NF4 table (-1 to -0.696) times the block's absmax.
      const absmax = pbnb.tensorFloat64(init(pbnb, `${name}_absmax`));
      const bnb = referenceBnb4(pbnb.tensorBytes(init(pbnb, `${name}_Bnb4`)), absmax, K, N, 64, true);
      for (let k = 0; k < K; k++) {
        for (let n = 0; n < N; n++) assert.ok(Math.abs(bnb[k * N + n] - after[k * N + n]) <= 0.152 * absmax[Math.floor((n * K + k) / 64)] + 1e-7, `${name} bnb4 (${k}, ${n})`);
      }
      // uint8 (asymmetric, per tensor): (q - zero point) * scale within half a step.
      const scale = pu8.tensorFloat64(init(pu8, `${name}_scale`))[0];
      const zp = pu8.tensorBytes(init(pu8, `${name}_zero_point`))[0];
      const q8 = pu8.tensorBytes(init(pu8, `${name}_quantized`));
      for (let i = 0; i < after.length; i++) assert.ok(Math.abs((q8[i] - zp) * scale - after[i]) <= scale / 2 + 1e-7, `${name} uint8 [${i}]`);
      // int8 QDQ (symmetric, one scale per output column): q * scale[n] within half a step.
      const s8 = pi8.tensorFloat64(init(pi8, `${name}_scale`));
      const b8 = pi8.tensorBytes(init(pi8, `${name}_quantized`));
      const i8 = new Int8Array(b8.buffer, b8.byteOffset, b8.length);
      for (let i = 0; i < after.length; i++) assert.ok(Math.abs(i8[i] * s8[i % N] - after[i]) <= s8[i % N] / 2 + 1e-7, `${name} int8 [${i}]`);
      // fp16: the compensated weight rounded to float16.
      const h = p16.tensorBytes(init(p16, name));
      const u = new Uint16Array(h.buffer.slice(h.byteOffset, h.byteOffset + h.byteLength));
      for (let i = 0; i < after.length; i++) {
        assert.ok(Math.abs(halfToFloat(u[i]) - after[i]) <= 2 ** -11 * Math.abs(after[i]) + 2 ** -25, `${name}[${i}] in fp16`);
      }
    }
    // Every other 4-bit weight of the pruned q4 decoder is byte for byte one of the original's.
    const origBytes = new Map([...oq4.initializerMap().values()].filter((t) => t.name.endsWith('_Q4')).map((t) => [t.name, Buffer.from(oq4.tensorBytes(t)).toString('base64')]));
    let same = 0;
    for (const t of pq4.initializerMap().values()) {
      if (!t.name.endsWith('_Q4') || names.some((n) => `${n}_Q4` === t.name)) continue;
      assert.equal(Buffer.from(pq4.tensorBytes(t)).toString('base64'), origBytes.get(t.name), `${t.name} unchanged`);
      same++;
    }
    assert.equal(same, 14 * 7 - names.length + 1, 'every other linear weight (and lm_head) kept');
  } finally {
    for (const f of [o32, p32, oq4, pq4, p16, pbnb, pu8, pi8]) f.close();
  }
});

test('each pruned variant is as close to the pruned fp32 model as the original variant was to the original fp32 model', async () => {
  const items = loadEval(path.join(data, 'eval.jsonl'), 4);
  const fe = await VlmFrontend.open(openPackage(orig));
  const runners = new Map<string, DecoderRunner>();
  const runnerOf = async (pkg: string, d: Dtype) => {
    const key = `${pkg}:${d}`;
    if (!runners.has(key)) runners.set(key, await DecoderRunner.fromFile(decoder(pkg, d)));
    return runners.get(key)!;
  };
  const rel = (x: Float32Array, y: Float32Array) => relL2(x, y) / items.length;
  try {
    const diff = Object.fromEntries(QUANTISED.map((d) => [d, { orig: 0, pruned: 0 }]));
    let removal = 0;
    for (const item of items) {
      const enc = await fe.encode(evalMessages(item), item.image, true);
      const logits = async (pkg: string, d: Dtype) => (await fe.prefill(enc, await runnerOf(pkg, d))).lastLogits;
      const [o32, p32] = [await logits(orig, 'fp32'), await logits(pruned, 'fp32')];
      removal += rel(o32, p32);
      for (const d of QUANTISED) {
        diff[d].orig += rel(o32, await logits(orig, d));
        diff[d].pruned += rel(p32, await logits(pruned, d));
      }
    }
    // Measured on 4 items (relative L2 of the logits): removing layers 9 and 10 moves the fp32
    // logits by 0.31; each variant sits at its own rounding distance before and after pruning
    // (q4 / q4f16 / bnb4 0.09 -> 0.08-0.10, 8-bit 0.010 -> 0.010-0.015, fp16 0.0004 -> 0.0004).
    // A variant pruned differently (other layers, compensation missing or misplaced) would sit
    // near the removal's distance instead.
    for (const d of QUANTISED) {
      assert.ok(diff[d].pruned <= 2 * diff[d].orig + 1e-3, `${d}: pruned ${diff[d].pruned} vs original ${diff[d].orig}`);
      assert.ok(removal > 2.5 * diff[d].pruned, `${d}: removing layers (${removal}) moves the logits more than ${d} rounding (${diff[d].pruned})`);
    }
  } finally {
    for (const r of runners.values()) await r.dispose();
    await fe.dispose();
  }
});

test('transformers.js loads every pruned variant with its dtype and answers as our runner does on it', async () => {
  const items = loadEval(path.join(data, 'eval.jsonl'), 6);
  for (const d of Object.keys(SUFFIX) as Dtype[]) {
    const [ours] = await benchModels([decoder(pruned, d)], items);
    const theirs = await transformersJsAnswers(pruned, items, 3, { decoder_model_merged: d, embed_tokens: 'fp32', vision_encoder: 'fp32' });
    assert.deepEqual(theirs, ours.answers.map((a) => a.predicted), `${d}`);
  }
});

test('without an fp32 decoder, calibration runs on fp16, on q4 or on uint8 when that is what there is; compensation follows', async () => {
  const fp32Report = JSON.parse(fs.readFileSync(path.join(pruned, 'short-lvlm-report.json'), 'utf8')) as Report;
  const cases: Array<{ keep: Dtype[]; calibrated: Dtype; tol: number }> = [
    // Feature gaps measured in fp16 differ from fp32's by ~3e-6, in q4 (weights rounded) by ~2e-4.
    { keep: ['fp16', 'q4'], calibrated: 'fp16', tol: 1e-4 },
    { keep: ['q4'], calibrated: 'q4', tol: 2e-3 },
    { keep: ['uint8', 'bnb4'], calibrated: 'uint8', tol: 2e-4 }, // measured ~3e-5
  ];
  for (const c of cases) {
    const dir = path.join(work, `only-${c.keep.join('-')}`);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.cpSync(orig, dir, { recursive: true });
    for (const d of Object.keys(SUFFIX) as Dtype[]) if (!c.keep.includes(d)) fs.rmSync(decoder(dir, d));
    const out = `${dir}-pruned`;
    await pruneJob({ model: dir, calib: path.join(data, 'calib.json'), out, overwrite: true, options: { layers: REMOVED, scp: true, samples: 4, holdout: 0 } });
    const report = JSON.parse(fs.readFileSync(path.join(out, 'short-lvlm-report.json'), 'utf8')) as Report;
    assert.equal(report.model.decoder, path.relative(dir, decoder(dir, c.calibrated)));
    assert.deepEqual(report.output.variants?.map((v) => v.status), ['calibrated', ...c.keep.filter((d) => d !== c.calibrated).map(() => 'compensated')]);
    report.pairs.forEach((p, i) => {
      const want = fp32Report.pairs[i];
      assert.equal(p.partner, want.partner);
      assert.ok(Math.abs(p.gapBefore.cosine - want.gapBefore.cosine) < c.tol, `${c.calibrated}: gap before ${p.gapBefore.cosine} vs fp32 ${want.gapBefore.cosine}`);
      assert.ok(Math.abs(p.gapAfter!.cosine - want.gapAfter!.cosine) < c.tol, `${c.calibrated}: gap after ${p.gapAfter!.cosine} vs fp32 ${want.gapAfter!.cosine}`);
    });
    for (const d of c.keep) {
      const f = OnnxFile.open(decoder(out, d));
      assert.equal(discoverLayers(f.graph).layers.length, 14);
      f.close();
    }
  }
  // The q4-only package's pruned q4 decoder (compensated from dequantised weights) is a q4
  // rounding away from the pruned fp32 model, as the fp32-calibrated q4 is.
  const items = loadEval(path.join(data, 'eval.jsonl'), 6);
  const fe = await VlmFrontend.open(openPackage(orig));
  const a = await DecoderRunner.fromFile(decoder(pruned, 'fp32'));
  const b = await DecoderRunner.fromFile(decoder(`${path.join(work, 'only-q4')}-pruned`, 'q4'));
  const c = await DecoderRunner.fromFile(decoder(pruned, 'q4'));
  try {
    let fromQ4 = 0;
    let fromFp32 = 0;
    for (const item of items) {
      const enc = await fe.encode(evalMessages(item), item.image, true);
      const [la, lb, lc] = [await fe.prefill(enc, a), await fe.prefill(enc, b), await fe.prefill(enc, c)].map((s) => s.lastLogits);
      fromQ4 += relL2(la, lb) / items.length;
      fromFp32 += relL2(la, lc) / items.length;
    }
    assert.ok(fromQ4 <= 1.5 * fromFp32 + 1e-3, `q4-calibrated ${fromQ4} vs fp32-calibrated ${fromFp32}`);
  } finally {
    for (const r of [a, b, c]) await r.dispose();
    await fe.dispose();
  }
});

function relL2(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i] - b[i]) ** 2;
    n += a[i] ** 2;
  }
  return Math.sqrt(d / n);
}

test('a variant whose k and v projections come in the other order still gets each replacement on the right weight', () => {
  // The q4 decoder with layer 3's k and v MatMulNBits nodes swapped in graph order (still a
  // valid graph): position alone would put k's replacement on v.
  const dir = path.join(work, 'swapped');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.cpSync(orig, dir, { recursive: true });
  for (const d of Object.keys(SUFFIX) as Dtype[]) if (d !== 'fp32' && d !== 'q4') fs.rmSync(decoder(dir, d));
  const src = OnnxFile.open(decoder(orig, 'fp32'));
  const q4 = OnnxFile.open(decoder(orig, 'q4'));
  const out = `${dir}-pruned`;
  try {
    const l3 = (f: OnnxFile) => f.graph.node.filter((n) => /layers\.3\/self_attn\/[kv]_proj/.test(n.name));
    const [k, v] = l3(q4);
    assert.ok(k && v && /k_proj/.test(k.name) && /v_proj/.test(v.name), 'layer 3 k and v nodes found by name');
    const nodes = [...q4.graph.node];
    const [ik, iv] = [nodes.indexOf(k), nodes.indexOf(v)];
    [nodes[ik], nodes[iv]] = [nodes[iv], nodes[ik]];
    writeOnnx({ ...q4.model, graph: { ...q4.graph, node: nodes } }, q4, decoder(dir, 'q4'));
    // Replace the fp32 k weight by 2x itself.
    const kName = l3(src).find((n) => /k_proj/.test(n.name))!.input[1];
    const kW = src.tensorFloat64(src.initializerMap().get(kName)!);
    const res = writePrunedPackage(openPackage(dir), { remove: REMOVED, replace: new Map([[kName, kW.map((x) => 2 * x)]]), outDir: out, overwrite: true });
    assert.deepEqual(res.variants.map((x) => x.status), ['calibrated', 'compensated']);
    const p = OnnxFile.open(decoder(out, 'q4'));
    try {
      const [K, N] = src.initializerMap().get(kName)!.dims;
      const deq = (f: OnnxFile, name: string) => reference4bit(f.tensorBytes(f.initializerMap().get(`${name}_Q4`)!), f.tensorFloat64(f.initializerMap().get(`${name}_scales`)!), undefined, K, N, 32);
      const kAfter = deq(p, kName);
      assert.ok(relL2(Float32Array.from(kW.map((x) => 2 * x)), Float32Array.from(kAfter)) < 0.15, 'k carries the replacement');
      const vName = l3(src).find((n) => /v_proj/.test(n.name))!.input[1];
      assert.equal(Buffer.compare(p.tensorBytes(p.initializerMap().get(`${vName}_Q4`)!), q4.tensorBytes(q4.initializerMap().get(`${vName}_Q4`)!)), 0, 'v untouched');
    } finally {
      p.close();
    }
  } finally {
    src.close();
    q4.close();
  }
});

test('a variant that cannot take a replacement is pruned without it, one that cannot be pruned is left out; both are reported', () => {
  const dir = path.join(work, 'mismatched');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.cpSync(orig, dir, { recursive: true });
  for (const d of Object.keys(SUFFIX) as Dtype[]) if (d !== 'fp32' && d !== 'fp16') fs.rmSync(decoder(dir, d));
  fs.writeFileSync(decoder(dir, 'int8'), 'not an onnx model');
  const src = OnnxFile.open(decoder(orig, 'fp32'));
  const out = `${dir}-pruned`;
  try {
    // The fp16 decoder's layer 3 down projection negated: the place no longer holds the same weight.
    const down = src.graph.node.find((n) => /layers\.3\/mlp\/down_proj/.test(n.name))!.input[1];
    const f16 = OnnxFile.open(decoder(orig, 'fp16'));
    const t = f16.initializerMap().get(down)!;
    const neg = Float32Array.from(f16.tensorFloat32(t), (x) => -x);
    const model = { ...f16.model, graph: { ...f16.graph, initializer: f16.graph.initializer.map((x) => (x === t ? { ...t, rawData: float32ToBytes(neg, t.dataType) } : x)) } };
    writeOnnx(model, f16, decoder(dir, 'fp16'));
    f16.close();
    const W = src.tensorFloat64(src.initializerMap().get(down)!);
    const res = writePrunedPackage(openPackage(dir), { remove: REMOVED, replace: new Map([[down, W.map((x) => 1.5 * x)]]), outDir: out, overwrite: true });
    const by = new Map(res.variants.map((v) => [path.basename(v.file), v]));
    assert.equal(by.get('decoder_model_merged_fp16.onnx')?.status, 'layers-only');
    assert.match(by.get('decoder_model_merged_fp16.onnx')!.note!, /layer 3 mlp .*no weight of the same shape matches/);
    assert.equal(by.get('decoder_model_merged_int8.onnx')?.status, 'dropped');
    assert.ok(!fs.existsSync(decoder(out, 'int8')), 'the unreadable variant is not copied');
    const p16 = OnnxFile.open(decoder(out, 'fp16'));
    assert.equal(discoverLayers(p16.graph).layers.length, 14, 'the uncompensated variant still has the layers removed');
    p16.close();
  } finally {
    src.close();
  }
});
