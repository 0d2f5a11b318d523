// Codecs for the weight quantisation schemes that transformers.js and onnxruntime packages
// use, in float64: decode a quantised weight to a plain [K, N] matrix (K inputs, N outputs,
// row-major) and encode a matrix back with the same scheme and block size. Only the
// arithmetic lives here; which tensors and nodes hold a weight is graph/linearWeights.ts.
//
// - com.microsoft MatMulNBits: B is uint8 [N, k_blocks, blob], codes of `bits` bits packed
//   low bits first along K inside each block; one scale per (n, block); zero points either
//   packed the same way per row n ([N, ceil(k_blocks * bits / 8)]), unpacked floats
//   ([N, k_blocks]), or absent (then 2^(bits-1)). Value = (code - zero point) * scale.
// - Linear int8/uint8 (DequantizeLinear, MatMulInteger): value = (q - zero point) * scale with
//   one scale per tensor or per index along one axis.

/** Shape and scheme of a MatMulNBits weight. */
export interface NBitsLayout {
  K: number;
  N: number;
  bits: number;
  blockSize: number;
}

export interface NBitsTensors {
  /** B, [N, k_blocks, blob] bytes. */
  packed: Uint8Array;
  /** One per (n, block), n-major. */
  scales: ArrayLike<number>;
  /** Packed uint8 zero points (row n padded to whole bytes). */
  zeroPoints?: Uint8Array;
  /** Unpacked float zero points, one per (n, block). */
  floatZeroPoints?: ArrayLike<number>;
}

export function nbitsBlocks(l: NBitsLayout): { kBlocks: number; blob: number; zpRow: number } {
  if (!Number.isInteger(l.bits) || l.bits < 2 || l.bits > 8) throw new Error(`MatMulNBits: bits=${l.bits} is outside 2..8`);
  if (!Number.isInteger(l.blockSize) || l.blockSize < 1 || (l.blockSize * l.bits) % 8 !== 0) throw new Error(`MatMulNBits: block_size ${l.blockSize} does not fill whole bytes`);
  const kBlocks = Math.ceil(l.K / l.blockSize);
  return { kBlocks, blob: (l.blockSize * l.bits) / 8, zpRow: Math.ceil((kBlocks * l.bits) / 8) };
}

/** Reads code `i` of a low-bits-first bit stream starting at byte `base`. */
function getCode(bytes: Uint8Array, base: number, i: number, bits: number): number {
  const bit = i * bits;
  let v = 0;
  for (let b = 0; b < bits; b++) {
    const at = bit + b;
    v |= ((bytes[base + (at >> 3)] >> (at & 7)) & 1) << b;
  }
  return v;
}

function setCode(bytes: Uint8Array, base: number, i: number, bits: number, code: number): void {
  const bit = i * bits;
  for (let b = 0; b < bits; b++) {
    const at = bit + b;
    const byte = base + (at >> 3);
    if ((code >> b) & 1) bytes[byte] |= 1 << (at & 7);
    else bytes[byte] &= ~(1 << (at & 7));
  }
}

/** MatMulNBits weight as a float64 [K, N] matrix. */
export function dequantNBits(l: NBitsLayout, t: NBitsTensors): Float64Array {
  const { kBlocks, blob, zpRow } = nbitsBlocks(l);
  if (t.packed.length !== l.N * kBlocks * blob) throw new Error(`MatMulNBits: B has ${t.packed.length} bytes, expected ${l.N * kBlocks * blob} for K=${l.K}, N=${l.N}`);
  if (t.scales.length !== l.N * kBlocks) throw new Error(`MatMulNBits: ${t.scales.length} scales, expected ${l.N * kBlocks}`);
  const mid = 2 ** (l.bits - 1);
  const W = new Float64Array(l.K * l.N);
  for (let n = 0; n < l.N; n++) {
    for (let b = 0; b < kBlocks; b++) {
      const s = t.scales[n * kBlocks + b];
      const zp = t.zeroPoints ? getCode(t.zeroPoints, n * zpRow, b, l.bits) : t.floatZeroPoints ? t.floatZeroPoints[n * kBlocks + b] : mid;
      const base = (n * kBlocks + b) * blob;
      for (let j = 0; j < l.blockSize; j++) {
        const k = b * l.blockSize + j;
        if (k >= l.K) break;
        W[k * l.N + n] = (getCode(t.packed, base, j, l.bits) - zp) * s;
      }
    }
  }
  return W;
}

/**
 * Quantises a [K, N] matrix for MatMulNBits with the scheme onnxruntime's block quantiser
 * uses: symmetric without zero points (the block's largest-magnitude value maps to code 0,
 * scale = that value / -2^(bits-1)), or asymmetric with zero points (the range [min(0, lo),
 * max(0, hi)] spread over all codes). `roundScale` rounds a scale to its stored type
 * (float16 for q4f16) so that codes are computed with the scale the runtime will read.
 */
export function quantNBits(l: NBitsLayout, W: Float64Array, withZeroPoints: boolean, roundScale: (x: number) => number = Math.fround): Required<Pick<NBitsTensors, 'packed'>> & { scales: Float64Array; zeroPoints?: Uint8Array } {
  const { kBlocks, blob, zpRow } = nbitsBlocks(l);
  if (W.length !== l.K * l.N) throw new Error(`MatMulNBits: matrix has ${W.length} values, expected ${l.K * l.N}`);
  const qmax = 2 ** l.bits - 1;
  const mid = 2 ** (l.bits - 1);
  const packed = new Uint8Array(l.N * kBlocks * blob);
  const scales = new Float64Array(l.N * kBlocks);
  const zeroPoints = withZeroPoints ? new Uint8Array(l.N * zpRow) : undefined;
  for (let n = 0; n < l.N; n++) {
    for (let b = 0; b < kBlocks; b++) {
      const k0 = b * l.blockSize;
      const k1 = Math.min(l.K, k0 + l.blockSize);
      let scale: number;
      let zp: number;
      if (withZeroPoints) {
        let lo = 0;
        let hi = 0;
        for (let k = k0; k < k1; k++) {
          lo = Math.min(lo, W[k * l.N + n]);
          hi = Math.max(hi, W[k * l.N + n]);
        }
        scale = roundScale((hi - lo) / qmax);
        zp = scale ? Math.min(qmax, Math.max(0, Math.round(-lo / scale))) : 0;
        setCode(zeroPoints!, n * zpRow, b, l.bits, zp);
      } else {
        let peak = 0;
        for (let k = k0; k < k1; k++) if (Math.abs(W[k * l.N + n]) > Math.abs(peak)) peak = W[k * l.N + n];
        scale = roundScale(peak / -mid);
        zp = mid;
      }
      scales[n * kBlocks + b] = scale;
      const inv = scale ? 1 / scale : 0;
      const base = (n * kBlocks + b) * blob;
      for (let j = 0; j < l.blockSize; j++) {
        const k = k0 + j;
        const code = k < l.K ? Math.min(qmax, Math.max(0, Math.round(W[k * l.N + n] * inv) + zp)) : zp;
        setCode(packed, base, j, l.bits, code);
      }
    }
  }
  return { packed, scales, zeroPoints };
}

// ---------------------------------------------------------------- linear int8 / uint8

export interface LinearScheme {
  signed: boolean;
  /** Axis of the per-channel scale in the [rows, cols] tensor, undefined for one scale. */
  axis?: number;
  symmetric: boolean;
  qmin: number;
  qmax: number;
}

function scaleIndex(r: number, c: number, cols: number, axis: number | undefined): number {
  return axis === undefined ? 0 : axis === 0 ? r : c;
}

/** (q - zero point) * scale over a [rows, cols] tensor. */
export function dequantLinear(q: ArrayLike<number>, rows: number, cols: number, scale: ArrayLike<number>, zp: ArrayLike<number> | undefined, axis: number | undefined): Float64Array {
  if (q.length !== rows * cols) throw new Error(`quantized weight has ${q.length} values, expected ${rows * cols}`);
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const s = scaleIndex(r, c, cols, axis);
      out[r * cols + c] = (q[r * cols + c] - (zp ? zp[s] : 0)) * scale[s];
    }
  }
  return out;
}

/**
 * The scheme an existing linear-quantised weight was written with, as onnxruntime's
 * quantiser writes them: symmetric when every zero point is the type's midpoint (0, or 128
 * for uint8), the code range reduced to 7 bits when the stored codes fit in it.
 */
export function inferLinearScheme(q: ArrayLike<number>, zp: ArrayLike<number> | undefined, signed: boolean, axis: number | undefined): LinearScheme {
  const midpoint = signed ? 0 : 128;
  const symmetric = !zp || Array.from(zp).every((z) => z === midpoint);
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < q.length; i++) {
    lo = Math.min(lo, q[i]);
    hi = Math.max(hi, q[i]);
  }
  let qmin: number;
  let qmax: number;
  if (signed) {
    const reduced = lo >= -64 && hi <= 64;
    [qmin, qmax] = symmetric ? (reduced ? [-64, 64] : [-127, 127]) : reduced ? [-64, 64] : [-128, 127];
  } else {
    const reduced = hi <= 127;
    [qmin, qmax] = reduced && !symmetric ? [0, 127] : [0, 255];
  }
  return { signed, axis, symmetric, qmin, qmax };
}

/** Quantises a [rows, cols] matrix with a linear scheme; scales rounded by `roundScale`. */
export function quantLinear(W: Float64Array, rows: number, cols: number, s: LinearScheme, roundScale: (x: number) => number = Math.fround): { q: Int32Array; scale: Float64Array; zp: Int32Array } {
  const nScales = s.axis === undefined ? 1 : s.axis === 0 ? rows : cols;
  const lo = new Float64Array(nScales);
  const hi = new Float64Array(nScales);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const i = scaleIndex(r, c, cols, s.axis);
      lo[i] = Math.min(lo[i], W[r * cols + c]);
      hi[i] = Math.max(hi[i], W[r * cols + c]);
    }
  }
  const scale = new Float64Array(nScales);
  const zp = new Int32Array(nScales);
  for (let i = 0; i < nScales; i++) {
    if (s.symmetric) {
      const m = Math.max(Math.abs(lo[i]), Math.abs(hi[i]));
      scale[i] = roundScale((2 * m) / (s.qmax - s.qmin));
      zp[i] = s.signed ? 0 : 128;
    } else {
      scale[i] = roundScale((hi[i] - lo[i]) / (s.qmax - s.qmin));
      zp[i] = scale[i] ? Math.min(s.qmax, Math.max(s.qmin, Math.round(s.qmin - lo[i] / scale[i]))) : s.signed ? 0 : 128;
    }
  }
  const q = new Int32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const i = scaleIndex(r, c, cols, s.axis);
      const v = scale[i] ? Math.round(W[r * cols + c] / scale[i]) + zp[i] : zp[i];
      q[r * cols + c] = Math.min(s.qmax, Math.max(s.qmin, v));
    }
  }
  return { q, scale, zp };
}

// ---------------------------------------------------------------- bnb4 (MatMulBnb4)
// The transposed weight ([N, K], row-major) is flattened and cut into blocks of block_size
// values; each block stores its largest magnitude (absmax) and one 4-bit code per value,
// two codes per byte, the first in the high nibble. Value = table[code] * absmax, with the
// FP4 (quant_type 0) or NF4 (quant_type 1) table.

export const FP4_TABLE = [0, 0.0052083333333, 0.66666667, 1, 0.33333333, 0.5, 0.16666667, 0.25, -0, -0.0052083333333, -0.66666667, -1, -0.33333333, -0.5, -0.16666667, -0.25].map(Math.fround);
export const NF4_TABLE = [
  -1, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0,
  0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1,
].map(Math.fround);

export interface Bnb4Layout {
  K: number;
  N: number;
  blockSize: number;
  /** 0: FP4, 1: NF4. */
  quantType: number;
}

function bnb4Table(quantType: number): number[] {
  if (quantType === 0) return FP4_TABLE;
  if (quantType === 1) return NF4_TABLE;
  throw new Error(`MatMulBnb4: quant_type ${quantType} is neither FP4 (0) nor NF4 (1)`);
}

/** MatMulBnb4 weight as a float64 [K, N] matrix. */
export function dequantBnb4(l: Bnb4Layout, packed: Uint8Array, absmax: ArrayLike<number>): Float64Array {
  const table = bnb4Table(l.quantType);
  const numel = l.K * l.N;
  if (packed.length !== Math.ceil(numel / 2)) throw new Error(`MatMulBnb4: B has ${packed.length} bytes, expected ${Math.ceil(numel / 2)}`);
  if (absmax.length !== Math.ceil(numel / l.blockSize)) throw new Error(`MatMulBnb4: ${absmax.length} absmax values, expected ${Math.ceil(numel / l.blockSize)}`);
  const W = new Float64Array(numel);
  for (let i = 0; i < numel; i++) {
    // Flat index i of the transposed weight: n = i / K, k = i % K.
    const code = i % 2 === 0 ? packed[i >> 1] >> 4 : packed[i >> 1] & 15;
    W[(i % l.K) * l.N + Math.floor(i / l.K)] = table[code] * absmax[Math.floor(i / l.blockSize)];
  }
  return W;
}

/** Quantises a [K, N] matrix for MatMulBnb4: per block absmax, nearest table entry. */
export function quantBnb4(l: Bnb4Layout, W: Float64Array, roundScale: (x: number) => number = Math.fround): { packed: Uint8Array; absmax: Float64Array } {
  const table = bnb4Table(l.quantType);
  const numel = l.K * l.N;
  const flat = (i: number) => W[(i % l.K) * l.N + Math.floor(i / l.K)];
  const absmax = new Float64Array(Math.ceil(numel / l.blockSize));
  for (let i = 0; i < numel; i++) absmax[Math.floor(i / l.blockSize)] = Math.max(absmax[Math.floor(i / l.blockSize)], Math.abs(flat(i)));
  for (let b = 0; b < absmax.length; b++) absmax[b] = roundScale(absmax[b]);
  const packed = new Uint8Array(Math.ceil(numel / 2));
  for (let i = 0; i < numel; i++) {
    const m = absmax[Math.floor(i / l.blockSize)];
    const x = m ? flat(i) / m : 0;
    let best = 0;
    for (let c = 1; c < 16; c++) if (Math.abs(table[c] - x) < Math.abs(table[best] - x)) best = c;
    if (l.quantType === 0 && x < 0 && table[best] === 0) best = 8; // FP4 keeps the sign of a negative zero code
    packed[i >> 1] |= i % 2 === 0 ? best << 4 : best;
  }
  return { packed, absmax };
}
