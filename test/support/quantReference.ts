// Independent decoders for quantised weights, written from the operator documentation for
// the tests (never the engine's codec): float64 [K, N] matrices.

import * as assert from 'node:assert/strict';
import { halfToFloat, OnnxFile } from '../../src/engine/onnx/onnxFile';
import type { TensorProto } from '../../src/engine/onnx/proto';

/** MatMulNBits, 4 bits: low nibble first along K, zero point 8 when none is given. */
export function reference4bit(packed: Uint8Array, scales: ArrayLike<number>, zp: Uint8Array | undefined, K: number, N: number, block: number): Float64Array {
  const kBlocks = Math.ceil(K / block);
  const W = new Float64Array(K * N);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      const b = Math.floor(k / block);
      const byte = packed[n * kBlocks * (block / 2) + b * (block / 2) + Math.floor((k % block) / 2)];
      const code = k % 2 === 0 ? byte & 15 : byte >> 4;
      const zrow = Math.ceil(kBlocks / 2);
      const z = zp ? (b % 2 === 0 ? zp[n * zrow + (b >> 1)] & 15 : zp[n * zrow + (b >> 1)] >> 4) : 8;
      W[k * N + n] = (code - z) * scales[n * kBlocks + b];
    }
  }
  return W;
}

/**
 * MatMulBnb4: the transposed weight flattened into blocks, high nibble first, value =
 * table[code] * absmax of the block (tables as listed in onnxruntime's contrib-op code).
 */
export function referenceBnb4(packed: Uint8Array, absmax: ArrayLike<number>, K: number, N: number, block: number, nf4: boolean): Float64Array {
  const fp4 = [0, 5.208333333e-3, 2 / 3, 1, 1 / 3, 0.5, 1 / 6, 0.25];
  const nf4Table = [-1, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1];
  const value = (c: number) => (nf4 ? nf4Table[c] : (c & 8 ? -1 : 1) * fp4[c & 7]);
  const W = new Float64Array(K * N);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      const i = n * K + k;
      const byte = packed[Math.floor(i / 2)];
      W[k * N + n] = value(i % 2 ? byte & 15 : byte >> 4) * absmax[Math.floor(i / block)];
    }
  }
  return W;
}

/** An initializer of a variant's decoder, asserted to exist. */
export function initializerOf(f: OnnxFile, name: string): TensorProto {
  const t = f.initializerMap().get(name);
  assert.ok(t, `${name} in ${f.filePath}`);
  return t!;
}

/**
 * The symmetric q4 weight `name` (as tools/quantize writes it: `<name>_Q4`, `<name>_scales`,
 * no zero points) of `f`, decoded with reference4bit; asserted to lie within one quantisation
 * step of `want` ([K, N]).
 */
export function assertQ4Near(f: OnnxFile, name: string, want: Float64Array, K: number, N: number, block = 32): Float64Array {
  const scales = f.tensorFloat64(initializerOf(f, `${name}_scales`));
  const deq = reference4bit(f.tensorBytes(initializerOf(f, `${name}_Q4`)), scales, undefined, K, N, block);
  const kBlocks = Math.ceil(K / block);
  let err = 0;
  for (let k = 0; k < K; k++) {
    for (let n = 0; n < N; n++) err = Math.max(err, Math.abs(deq[k * N + n] - want[k * N + n]) / Math.abs(scales[n * kBlocks + Math.floor(k / block)]));
  }
  assert.ok(err <= 1 + 1e-6, `${name}: q4 weight within one step of the wanted weight (${err} steps)`);
  return deq;
}

/** The float16 weight `name` of `f` is `want` rounded to float16. */
export function assertFp16Rounded(f: OnnxFile, name: string, want: Float64Array): void {
  const h = f.tensorBytes(initializerOf(f, name));
  const u = new Uint16Array(h.buffer.slice(h.byteOffset, h.byteOffset + h.byteLength));
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(halfToFloat(u[i]) - want[i]) <= 2 ** -11 * Math.abs(want[i]) + 2 ** -25, `${name}[${i}] in fp16`);
}
