import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import { floatTensor, makeGraph, makeModel, makeNode, makeValueInfo } from '../../src/engine/onnx/builder';
import { OnnxFile, writeOnnx } from '../../src/engine/onnx/onnxFile';

test('a built MatMul+Add model runs in onnxruntime and survives external-data round trip', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'codec-'));
  const W = Float32Array.from({ length: 4 * 300 }, (_, i) => Math.sin(i));
  const g = makeGraph('g', {
    node: [makeNode('MatMul', ['x', 'W'], ['y0']), makeNode('Add', ['y0', 'b'], ['y'])],
    initializer: [floatTensor('W', [4, 300], W), floatTensor('b', [300], new Float32Array(300).fill(0.5))],
    input: [makeValueInfo('x', 1, ['batch', 4])],
    output: [makeValueInfo('y', 1, ['batch', 300])],
  });
  writeOnnx(makeModel(g), undefined, path.join(dir, 'a.onnx'));
  const a = OnnxFile.open(path.join(dir, 'a.onnx'));
  writeOnnx(a.model, a, path.join(dir, 'b.onnx'), { baseName: 'b.onnx_data', maxChunkBytes: 2000, sizeThreshold: 100 });
  const b = OnnxFile.open(path.join(dir, 'b.onnx'));
  writeOnnx(b.model, b, path.join(dir, 'c.onnx'));
  const x = new ort.Tensor('float32', Float32Array.from([1, 2, 3, 4]), [1, 4]);
  const outs = [];
  for (const f of ['a', 'b', 'c']) {
    const s = await ort.InferenceSession.create(path.join(dir, f + '.onnx'));
    outs.push((await s.run({ x })).y.data as Float32Array);
  }
  let want = 0.5;
  for (let k = 0; k < 4; k++) want += (k + 1) * W[k * 300 + 7];
  assert.ok(Math.abs(outs[0][7] - want) < 1e-5);
  assert.deepEqual(outs[1], outs[0]);
  assert.deepEqual(outs[2], outs[0]);
  assert.ok(fs.existsSync(path.join(dir, 'b.onnx_data')));
});
