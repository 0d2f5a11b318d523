// Quantised-weight codecs against independent references: onnxruntime itself runs
// MatMulNBits / DequantizeLinear+MatMul on the encoded tensors and must agree with a float64
// matmul of the weights dequantised by a separate few-line decoder written here from the
// operator documentation; the round trip stays within half a quantisation step.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { floatTensor, makeGraph, makeModel, makeNode, makeValueInfo } from '../../src/engine/onnx/builder';
import { encodeModel, DataType, TensorProto } from '../../src/engine/onnx/proto';
import { dequantBnb4, dequantLinear, dequantNBits, FP4_TABLE, inferLinearScheme, NF4_TABLE, quantBnb4, quantLinear, quantNBits } from '../../src/engine/onnx/quantCodecs';
import { halfToFloat, floatToHalf } from '../../src/engine/onnx/onnxFile';
import { Rng } from '../support/prng';
import { reference4bit, referenceBnb4 } from '../support/quantReference';

const opts: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1, logSeverityLevel: 3 };

function randomMatrix(rows: number, cols: number, seed: number): Float64Array {
  const r = new Rng(seed);
  // Varied magnitudes per column so that blocks and channels get different scales.
  return Float64Array.from({ length: rows * cols }, (_, i) => r.normal() * (0.02 + 0.1 * ((i % cols) / cols)));
}

function matmul64(A: ArrayLike<number>, M: number, K: number, W: ArrayLike<number>, N: number): Float64Array {
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++) for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) out[m * N + n] += A[m * K + k] * W[k * N + n];
  return out;
}

async function runGraph(model: ReturnType<typeof makeModel>, feeds: Record<string, ort.Tensor>, optimize = true): Promise<Float32Array> {
  // Unoptimised for QDQ: onnxruntime would otherwise fuse DequantizeLinear + MatMul into an
  // integer matmul that also quantises the activations.
  const s = await ort.InferenceSession.create(encodeModel(model), { ...opts, graphOptimizationLevel: optimize ? 'all' : 'disabled' });
  try {
    const out = await s.run(feeds);
    return out.Y.data as Float32Array;
  } finally {
    await s.release();
  }
}

function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(b[i]));
  }
  return d / s;
}

for (const zeroPoints of [false, true]) {
  for (const scaleType of [DataType.FLOAT, DataType.FLOAT16]) {
    test(`MatMulNBits 4-bit block 32 (${zeroPoints ? 'zero points' : 'symmetric'}, ${scaleType === DataType.FLOAT ? 'fp32' : 'fp16'} scales): onnxruntime agrees with a float64 matmul of the dequantised weights`, async () => {
      const K = 80; // not a multiple of the block: the last block is padded
      const N = 24;
      const M = 3;
      const W = randomMatrix(K, N, 7 + Number(zeroPoints));
      const round = scaleType === DataType.FLOAT ? Math.fround : (x: number) => halfToFloat(floatToHalf(x));
      const q = quantNBits({ K, N, bits: 4, blockSize: 32 }, W, zeroPoints, round);
      const kBlocks = Math.ceil(K / 32);
      const ref = reference4bit(q.packed, q.scales, q.zeroPoints, K, N, 32);
      assert.deepEqual(Array.from(dequantNBits({ K, N, bits: 4, blockSize: 32 }, q)), Array.from(ref), 'codec decoder = reference decoder');
      // Round trip: every value within half a step of its block's scale; symmetric blocks
      // have codes -8..7 around the peak's sign, so the other side's extreme clips by up to a step.
      for (let n = 0; n < N; n++) {
        for (let k = 0; k < K; k++) {
          const s = Math.abs(q.scales[n * kBlocks + Math.floor(k / 32)]);
          const bound = !zeroPoints && Math.abs(W[k * N + n]) > 7.5 * s ? s : s / 2;
          assert.ok(Math.abs(ref[k * N + n] - W[k * N + n]) <= bound * (1 + 1e-6) + 1e-12, `round trip (${k}, ${n})`);
        }
      }
      const A = new Rng(3).float32(M * K, 1);
      const fp16 = scaleType === DataType.FLOAT16;
      const inputs = ['A', 'B', 'scales', ...(zeroPoints ? ['zp'] : [])];
      const init: TensorProto[] = [
        { name: 'B', dataType: DataType.UINT8, dims: [N, kBlocks, 16], rawData: q.packed, unknown: [] },
        floatTensor('scales', [N, kBlocks], q.scales, scaleType),
      ];
      if (zeroPoints) init.push({ name: 'zp', dataType: DataType.UINT8, dims: [N, Math.ceil(kBlocks / 2)], rawData: q.zeroPoints!, unknown: [] });
      const nodes = fp16
        ? [makeNode('Cast', ['X'], ['A'], { attrs: { to: DataType.FLOAT16 } }), makeNode('MatMulNBits', inputs, ['Y16'], { domain: 'com.microsoft', attrs: { K, N, bits: 4, block_size: 32 } }), makeNode('Cast', ['Y16'], ['Y'], { attrs: { to: DataType.FLOAT } })]
        : [makeNode('MatMulNBits', inputs, ['Y'], { domain: 'com.microsoft', attrs: { K, N, bits: 4, block_size: 32 } })];
      const g = makeGraph('nbits', { node: nodes, initializer: init, input: [makeValueInfo(fp16 ? 'X' : 'A', DataType.FLOAT, [M, K])], output: [makeValueInfo('Y', DataType.FLOAT, [M, N])] });
      const y = await runGraph(makeModel(g, { '': 17, 'com.microsoft': 1 }), { [fp16 ? 'X' : 'A']: new ort.Tensor('float32', A, [M, K]) });
      const Aeff = fp16 ? A.map((x) => halfToFloat(floatToHalf(x))) : A;
      const want = matmul64(Aeff, M, K, ref, N);
      assert.ok(maxRelDiff(y, want) < (fp16 ? 5e-3 : 1e-5), `max relative difference ${maxRelDiff(y, want)}`);
    });
  }
}

for (const [signed, axis] of [[true, 1], [false, undefined], [false, 1]] as const) {
  test(`DequantizeLinear ${signed ? 'int8' : 'uint8'} ${axis === undefined ? 'per tensor' : 'per channel'}: onnxruntime agrees with the float64 reference; the scheme is recognised again`, async () => {
    const K = 40;
    const N = 12;
    const M = 2;
    const W = randomMatrix(K, N, 11);
    const scheme = signed ? { signed, axis, symmetric: true, qmin: -127, qmax: 127 } : { signed, axis, symmetric: false, qmin: 0, qmax: 255 };
    const q = quantLinear(W, K, N, scheme);
    const nS = q.scale.length;
    // Independent decoder: (q - zp) * scale, the scale of column n when per channel.
    const ref = Float64Array.from(q.q, (v, i) => (v - q.zp[axis === undefined ? 0 : i % N]) * q.scale[axis === undefined ? 0 : i % N]);
    assert.deepEqual(Array.from(dequantLinear(q.q, K, N, q.scale, q.zp, axis)), Array.from(ref));
    for (let i = 0; i < W.length; i++) assert.ok(Math.abs(ref[i] - W[i]) <= q.scale[axis === undefined ? 0 : i % N] / 2 + 1e-12);
    assert.deepEqual(inferLinearScheme(q.q, q.zp, signed, axis), scheme, 'scheme inferred from the codes');
    const dt = signed ? DataType.INT8 : DataType.UINT8;
    const bytes = (v: Int32Array) => (signed ? new Uint8Array(Int8Array.from(v).buffer) : Uint8Array.from(v));
    const dims = axis === undefined ? [] : [nS];
    const g = makeGraph('qdq', {
      node: [makeNode('DequantizeLinear', ['Wq', 's', 'z'], ['W'], { attrs: axis === undefined ? {} : { axis } }), makeNode('MatMul', ['A', 'W'], ['Y'])],
      initializer: [
        { name: 'Wq', dataType: dt, dims: [K, N], rawData: bytes(q.q), unknown: [] },
        floatTensor('s', dims, q.scale),
        { name: 'z', dataType: dt, dims, rawData: bytes(q.zp), unknown: [] },
      ],
      input: [makeValueInfo('A', DataType.FLOAT, [M, K])],
      output: [makeValueInfo('Y', DataType.FLOAT, [M, N])],
    });
    const A = new Rng(5).float32(M * K, 1);
    const y = await runGraph(makeModel(g, { '': 17 }), { A: new ort.Tensor('float32', A, [M, K]) }, false);
    assert.ok(maxRelDiff(y, matmul64(A, M, K, ref, N)) < 1e-5, `max relative difference ${maxRelDiff(y, matmul64(A, M, K, ref, N))} ${Array.from(y.slice(0, 4))} ${Array.from(matmul64(A, M, K, ref, N).slice(0, 4))}`);
  });
}

for (const nf4 of [true, false]) {
  test(`MatMulBnb4 ${nf4 ? 'NF4' : 'FP4'} block 64: onnxruntime agrees with the float64 reference; values land on the nearest table entry`, async () => {
    const K = 48;
    const N = 20; // K * N not a multiple of the block: the last block is short
    const M = 2;
    const W = randomMatrix(K, N, 13);
    const layout = { K, N, blockSize: 64, quantType: nf4 ? 1 : 0 };
    const q = quantBnb4(layout, W);
    const ref = referenceBnb4(q.packed, q.absmax, K, N, 64, nf4);
    const mine = dequantBnb4(layout, q.packed, q.absmax);
    assert.ok(mine.every((x, i) => Math.abs(x - ref[i]) <= 1e-6 * Math.max(...q.absmax)), 'codec decoder = reference decoder (float32 tables)');
    // Nearest entry: no other table value times the block's absmax is closer to the weight.
    const table = (nf4 ? NF4_TABLE : FP4_TABLE).map((t) => t);
    for (let n = 0; n < N; n++) {
      for (let k = 0; k < K; k++) {
        const m = q.absmax[Math.floor((n * K + k) / 64)];
        const best = Math.min(...table.map((t) => Math.abs(t * m - W[k * N + n])));
        assert.ok(Math.abs(ref[k * N + n] - W[k * N + n]) <= best + 1e-6 * m, `(${k}, ${n}) nearest`);
      }
    }
    const g = makeGraph('bnb4', {
      node: [makeNode('MatMulBnb4', ['A', 'B', 'absmax'], ['Y'], { domain: 'com.microsoft', attrs: { K, N, block_size: 64, quant_type: nf4 ? 1 : 0 } })],
      initializer: [{ name: 'B', dataType: DataType.UINT8, dims: [q.packed.length], rawData: q.packed, unknown: [] }, floatTensor('absmax', [q.absmax.length], q.absmax)],
      input: [makeValueInfo('A', DataType.FLOAT, [M, K])],
      output: [makeValueInfo('Y', DataType.FLOAT, [M, N])],
    });
    const A = new Rng(9).float32(M * K, 1);
    const y = await runGraph(makeModel(g, { '': 17, 'com.microsoft': 1 }), { A: new ort.Tensor('float32', A, [M, K]) });
    assert.ok(maxRelDiff(y, matmul64(A, M, K, ref, N)) < 1e-5, `max relative difference ${maxRelDiff(y, matmul64(A, M, K, ref, N))}`);
  });
}
