// Attention probabilities of a fused attention op (com.microsoft GroupQueryAttention /
// MultiHeadAttention), which never exposes them: recomputed in float64 from the op's query
// input (before its built-in rotary) and its present-key output (rotary already applied).
// Batch 1. Causal: query row s sits at absolute position T - S + s and sees keys 0..T-S+s.

/**
 * @param query      [S, heads * headDim] (the op's query input, batch 1)
 * @param presentKey [kvHeads, T, headDim] (the op's present_key output, batch 1), T >= S
 * @param cos, sin   rotary caches [maxPositions, rotaryDim / 2] (the op's cos_cache / sin_cache)
 * @param rotaryDim  rotated leading part of each head (default headDim)
 * @param interleaved rotate pairs (2j, 2j+1) instead of halves (rotate_half, the default)
 * @param scale      default 1 / sqrt(headDim)
 * @param applyRotary false when the query is already rotated (separate RotaryEmbedding nodes)
 * @param lastKey    per query row, the last of this step's keys it sees (a non-causal mask;
 *                   absent = causal)
 * @returns [heads, S, T] probabilities (masked entries 0); [heads, S, S] with an empty past
 */
export function attentionFromQK(
  query: Float32Array | Float64Array,
  presentKey: Float32Array | Float64Array,
  S: number,
  heads: number,
  kvHeads: number,
  headDim: number,
  cos: Float32Array | Float64Array,
  sin: Float32Array | Float64Array,
  rotaryDim: number = headDim,
  interleaved = false,
  scale?: number,
  applyRotary = true,
  lastKey?: Int32Array,
): Float64Array {
  if (query.length !== S * heads * headDim) throw new Error(`attentionFromQK: query has ${query.length} values, expected ${S}x${heads}x${headDim}`);
  if (heads % kvHeads !== 0) throw new Error(`attentionFromQK: ${heads} heads is not a multiple of ${kvHeads} kv heads`);
  const T = presentKey.length / (kvHeads * headDim);
  if (!Number.isInteger(T) || T < S) throw new Error(`attentionFromQK: present key has ${presentKey.length} values, not [${kvHeads}, T >= ${S}, ${headDim}]`);
  if (rotaryDim % 2 !== 0 || rotaryDim > headDim) throw new Error(`attentionFromQK: rotary dim ${rotaryDim} must be even and at most ${headDim}`);
  const half = rotaryDim / 2;
  const past = T - S;
  if (applyRotary && half > 0 && cos.length < (past + S) * half) {
    throw new Error(`attentionFromQK: rotary cache covers ${cos.length / half} positions, ${past + S} needed`);
  }
  const sc = scale ?? 1 / Math.sqrt(headDim);
  const nRep = heads / kvHeads;

  // Rotated query, float64 [S, heads, headDim].
  const q = Float64Array.from(query);
  if (applyRotary) {
    for (let s = 0; s < S; s++) {
      const p = past + s;
      for (let h = 0; h < heads; h++) {
        const b = (s * heads + h) * headDim;
        for (let j = 0; j < half; j++) {
          const c = cos[p * half + j];
          const sn = sin[p * half + j];
          const i1 = interleaved ? b + 2 * j : b + j;
          const i2 = interleaved ? b + 2 * j + 1 : b + j + half;
          const x1 = q[i1];
          const x2 = q[i2];
          q[i1] = x1 * c - x2 * sn;
          q[i2] = x2 * c + x1 * sn;
        }
      }
    }
  }

  const out = new Float64Array(heads * S * T);
  const row = new Float64Array(T);
  for (let h = 0; h < heads; h++) {
    const kvh = Math.floor(h / nRep);
    for (let s = 0; s < S; s++) {
      const last = past + (lastKey ? lastKey[s] : s);
      let max = -Infinity;
      for (let t = 0; t <= last; t++) {
        let dot = 0;
        const qb = (s * heads + h) * headDim;
        const kb = (kvh * T + t) * headDim;
        for (let e = 0; e < headDim; e++) dot += q[qb + e] * presentKey[kb + e];
        row[t] = dot * sc;
        if (row[t] > max) max = row[t];
      }
      let sum = 0;
      for (let t = 0; t <= last; t++) {
        row[t] = Math.exp(row[t] - max);
        sum += row[t];
      }
      const o = (h * S + s) * T;
      for (let t = 0; t <= last; t++) out[o + t] = row[t] / sum;
    }
  }
  return out;
}
