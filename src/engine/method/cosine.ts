// Cosine similarity between a layer's input and output residual streams, per token, in
// float64 (fp16/fp32 activations of large models lose the 1e-4 differences that rank layers).

export function tokenCosines(xin: Float32Array | Float64Array, xout: Float32Array | Float64Array, S: number, D: number): Float64Array {
  const out = new Float64Array(S);
  for (let t = 0; t < S; t++) {
    let dot = 0;
    let na = 0;
    let nb = 0;
    const o = t * D;
    for (let d = 0; d < D; d++) {
      const a = xin[o + d];
      const b = xout[o + d];
      dot += a * b;
      na += a * a;
      nb += b * b;
    }
    out[t] = na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : 1;
  }
  return out;
}

export function meanOver(values: Float64Array, indices: Iterable<number>): number | undefined {
  let s = 0;
  let n = 0;
  for (const i of indices) {
    s += values[i];
    n++;
  }
  return n ? s / n : undefined;
}
