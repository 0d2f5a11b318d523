import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import { floatTensor, int64Tensor, makeGraph, makeModel, makeNode, makeValueInfo } from '../../src/engine/onnx/builder';
import { OnnxFile, writeOnnx, halfToFloat, floatToHalf } from '../../src/engine/onnx/onnxFile';
import { decodeModel, encodeModel, ModelProto } from '../../src/engine/onnx/proto';
import { OnnxFormatError, WireWriter } from '../../src/engine/onnx/wire';

function tmpdir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'codec-'));
}

/** y = (x @ W + b) reshaped by an int64 shape constant; with fields the codec does not model. */
function sampleModel(): { model: ModelProto; W: Float32Array } {
  const W = Float32Array.from({ length: 4 * 300 }, (_, i) => Math.sin(i));
  const g = makeGraph('g', {
    node: [
      makeNode('MatMul', ['x', 'W'], ['y0'], { name: 'mm' }),
      makeNode('Add', ['y0', 'b'], ['y1'], { name: 'add' }),
      makeNode('Reshape', ['y1', 'shape'], ['y'], { name: 'reshape' }),
    ],
    initializer: [floatTensor('W', [4, 300], W), floatTensor('b', [300], new Float32Array(300).fill(0.5)), int64Tensor('shape', [2], [-1, 300])],
    input: [makeValueInfo('x', 1, ['batch', 4])],
    output: [makeValueInfo('y', 1, ['batch', 300])],
  });
  // Fields the codec does not model: graph doc_string (10), node doc_string (6), model
  // producer_name (2) and metadata_props (14). They must survive byte for byte.
  const w = new WireWriter();
  w.stringField(10, 'graph documentation');
  g.unknown.push(w.finish());
  const nw = new WireWriter();
  nw.stringField(6, 'node documentation ✓');
  g.node[0].unknown.push(nw.finish());
  const model = makeModel(g);
  const p = new WireWriter();
  p.stringField(2, 'short-lvlm-test');
  const md = new WireWriter();
  md.message(14, (x) => {
    x.stringField(1, 'key');
    x.stringField(2, 'value');
  });
  model.unknown.push(p.finish(), md.finish());
  return { model, W };
}

async function runY(file: string): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(file);
  const x = new ort.Tensor('float32', Float32Array.from([1, 2, 3, 4]), [1, 4]);
  const out = (await s.run({ x })).y.data as Float32Array;
  await s.release();
  return out;
}

test('inline and chunked external-data writes give identical outputs, checked against a direct computation', async () => {
  const dir = tmpdir();
  const { model, W } = sampleModel();
  writeOnnx(model, undefined, path.join(dir, 'a.onnx'));
  const a = OnnxFile.open(path.join(dir, 'a.onnx'));
  const ext = writeOnnx(a.model, a, path.join(dir, 'b.onnx'), { baseName: 'b.onnx_data', maxChunkBytes: 2000, sizeThreshold: 100 });
  assert.equal(ext.dataFiles.length, 2, 'W and b land in two chunks');
  const b = OnnxFile.open(path.join(dir, 'b.onnx'));
  writeOnnx(b.model, b, path.join(dir, 'c.onnx'));
  const ya = await runY(path.join(dir, 'a.onnx'));
  let want = 0.5;
  for (let k = 0; k < 4; k++) want += (k + 1) * W[k * 300 + 7];
  assert.ok(Math.abs(ya[7] - want) < 1e-5);
  assert.deepEqual(await runY(path.join(dir, 'b.onnx')), ya);
  assert.deepEqual(await runY(path.join(dir, 'c.onnx')), ya);
  // Small int64 shape constants stay inline even with external data.
  assert.ok(b.initializerMap().get('shape')!.rawData);
  a.close();
  b.close();
});

test('unknown fields survive a read-write round trip byte for byte', () => {
  const { model } = sampleModel();
  const bytes = encodeModel(model);
  const once = decodeModel(bytes);
  const again = encodeModel(once);
  assert.deepEqual(Buffer.from(again), Buffer.from(bytes));
  const text = Buffer.from(again).toString('latin1');
  for (const s of ['graph documentation', 'short-lvlm-test', 'key', 'value']) assert.ok(text.includes(s), s);
  assert.ok(Buffer.from(again).includes(Buffer.from('node documentation ✓')));
  assert.equal(once.graph.node[0].unknown.length, 1);
});

test('int64 attributes keep their full 64-bit values', () => {
  const g = makeGraph('g', {
    node: [makeNode('Slice', ['x', 's', 'e'], ['y'], { attrs: { big: 9223372036854775807n, neg: -5 } })],
    input: [makeValueInfo('x', 1, [4])],
    output: [makeValueInfo('y', 1, [4])],
  });
  const m = decodeModel(encodeModel(makeModel(g)));
  assert.equal(m.graph.node[0].attribute[0].i, 9223372036854775807n);
  assert.equal(m.graph.node[0].attribute[1].i, -5n);
});

test('float16 conversion is exact on representable values and rounds to nearest even', () => {
  for (const v of [0, 1, -2, 0.5, 65504, 6.103515625e-5, 5.960464477539063e-8]) assert.equal(halfToFloat(floatToHalf(v)), v);
  assert.equal(halfToFloat(floatToHalf(1 + 2 ** -11)), 1); // tie -> even
  assert.equal(halfToFloat(floatToHalf(1 + 3 * 2 ** -11)), 1 + 2 ** -9);
  assert.equal(halfToFloat(floatToHalf(1e6)), Infinity);
});

test('fuzz: truncated and corrupted files give OnnxFormatError or a valid model, never a crash or hang', () => {
  const { model } = sampleModel();
  const bytes = encodeModel(model);
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  let errors = 0;
  const tryDecode = (b: Uint8Array) => {
    try {
      decodeModel(b);
    } catch (e) {
      assert.ok(e instanceof OnnxFormatError, `unexpected ${(e as Error).name}: ${(e as Error).message}`);
      assert.match((e as Error).message, /ONNX/);
      errors++;
    }
  };
  for (let cut = 0; cut < bytes.length; cut += Math.max(1, Math.floor(bytes.length / 300))) tryDecode(bytes.subarray(0, cut));
  for (let trial = 0; trial < 3000; trial++) {
    const b = Uint8Array.from(bytes);
    const flips = 1 + Math.floor(rand() * 4);
    for (let f = 0; f < flips; f++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
    tryDecode(b);
  }
  assert.ok(errors > 100, `most corruptions are detected (${errors})`);
  const dir = tmpdir();
  fs.writeFileSync(path.join(dir, 'empty.onnx'), new Uint8Array(0));
  assert.throws(() => OnnxFile.open(path.join(dir, 'empty.onnx')), /empty/);
  fs.writeFileSync(path.join(dir, 'text.onnx'), 'this is not a model at all');
  assert.throws(() => OnnxFile.open(path.join(dir, 'text.onnx')), OnnxFormatError);
  assert.throws(() => OnnxFile.open(path.join(dir, 'missing.onnx')), /no such file/);
});

test('external data: wrong offsets, truncated data files, missing files and escaping locations are refused clearly', () => {
  const dir = tmpdir();
  const { model } = sampleModel();
  writeOnnx(model, undefined, path.join(dir, 'm.onnx'), { baseName: 'm.onnx_data', sizeThreshold: 100 });
  const good = OnnxFile.open(path.join(dir, 'm.onnx'));
  const W = good.initializerMap().get('W')!;
  const edit = (kv: Record<string, string>) => ({ ...W, externalData: W.externalData!.map(([k, v]) => [k, kv[k] ?? v] as [string, string]) });
  assert.throws(() => good.tensorBytes(edit({ offset: '999999' })), /beyond the end/);
  assert.throws(() => good.tensorBytes(edit({ length: '12' })), /does not match its shape/);
  assert.throws(() => good.tensorBytes(edit({ offset: '-4' })), /invalid external data/);
  assert.throws(() => good.tensorBytes(edit({ location: '../outside.bin' })), /escapes the model folder/);
  assert.throws(() => good.tensorBytes(edit({ location: '/etc/passwd' })), /relative path inside the model folder/);
  assert.throws(() => good.tensorBytes(edit({ location: 'nope.bin' })), /missing/);
  good.close();
  fs.truncateSync(path.join(dir, 'm.onnx_data'), 100);
  // Refused on opening, before any weight is read or copied.
  assert.throws(() => OnnxFile.open(path.join(dir, 'm.onnx')), /truncated/);
});
