// Independent decoders for quantised weights, written from the operator documentation for
// the tests (never the engine's codec): float64 [K, N] matrices.

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
