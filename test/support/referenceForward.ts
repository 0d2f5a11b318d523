// An independent float64 forward pass of the synthetic LLaMA decoder, straight from the
// weights (no ONNX): RMSNorm, non-interleaved rotary (rotate_half) with theta from the
// weights, grouped-query attention (query head h reads kv head floor(h / (heads/kvHeads))),
// causal softmax, SwiGLU MLP, pre-norm residuals. Batch 1, empty past, no padding.
// Both fixture styles (decomposed and fused) compute exactly this.

import { LayerWeights, SynthWeights } from './synthModels';

type Vec = ArrayLike<number>;

export interface ReferenceOptions {
  /** Layers to skip (the residual stream passes through unchanged), as if removed. */
  skipLayers?: Iterable<number>;
  /** Replacement weights (e.g. compensated down projections), in the same [in, out] layout. */
  replace?: {
    layers?: Record<number, Partial<Record<keyof LayerWeights, Vec>>>;
    finalNorm?: Vec;
    lmHead?: Vec;
  };
  /** Also return each layer's attention probabilities. */
  captureAttention?: boolean;
}

export interface ReferenceResult {
  seqLen: number;
  /** [S, V] */
  logits: Float64Array;
  /**
   * Residual stream, L+1 entries of [S, H]: hidden[l] enters layer l, hidden[l+1] leaves it
   * (hidden[L] goes into the final norm). A skipped layer has hidden[l+1] equal to hidden[l].
   */
  hidden: Float64Array[];
  /** hidden[0..L-1] */
  layerInputs: Float64Array[];
  /** hidden[1..L] */
  layerOutputs: Float64Array[];
  /** Residual stream after each layer's attention add (before its MLP), [S, H]; the input for a skipped layer. */
  layerMids: Float64Array[];
  /** Final-norm output [S, H] (what lm_head reads). */
  finalNormed: Float64Array;
  /** With captureAttention: per layer [heads, S, S] probabilities (row = query, masked entries 0); undefined for skipped layers. */
  attention?: Array<Float64Array | undefined>;
}

/** x [rows, n] -> RMSNorm(x) * w, in float64. */
export function rmsNorm(x: Vec, rows: number, n: number, w: Vec, eps: number): Float64Array {
  const out = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < n; i++) ss += x[r * n + i] * x[r * n + i];
    const inv = 1 / Math.sqrt(ss / n + eps);
    for (let i = 0; i < n; i++) out[r * n + i] = x[r * n + i] * inv * w[i];
  }
  return out;
}

/** x [rows, k] times W [k, n] (row-major) -> [rows, n], in float64. */
export function matmul(x: Vec, rows: number, k: number, W: Vec, n: number): Float64Array {
  if (W.length !== k * n) throw new Error(`matmul: weight has ${W.length} values, expected ${k}x${n}`);
  const out = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    const o = r * n;
    for (let i = 0; i < k; i++) {
      const xi = x[r * k + i];
      if (xi === 0) continue;
      const wo = i * n;
      for (let j = 0; j < n; j++) out[o + j] += xi * W[wo + j];
    }
  }
  return out;
}

/** Rotates each head's vector of x [S, nHeads*hd] in place: position p = row index. */
function applyRotary(x: Float64Array, S: number, nHeads: number, hd: number, invFreq: Float64Array): void {
  const half = hd / 2;
  for (let s = 0; s < S; s++) {
    for (let h = 0; h < nHeads; h++) {
      const base = s * nHeads * hd + h * hd;
      for (let j = 0; j < half; j++) {
        const a = s * invFreq[j];
        const c = Math.cos(a);
        const sn = Math.sin(a);
        const x1 = x[base + j];
        const x2 = x[base + j + half];
        x[base + j] = x1 * c - x2 * sn;
        x[base + j + half] = x2 * c + x1 * sn;
      }
    }
  }
}

function silu(v: number): number {
  return v / (1 + Math.exp(-v));
}

/**
 * The decoder's forward pass on inputs_embeds [S, H] (S = length / H), batch 1, positions 0..S-1.
 */
export function referenceForward(w: SynthWeights, inputsEmbeds: Vec, opts: ReferenceOptions = {}): ReferenceResult {
  const { numLayers: L, hidden: H, heads: nH, kvHeads: kvH, headDim: hd, intermediate: I, vocab: V, eps } = w.dims;
  if (inputsEmbeds.length % H !== 0) throw new Error(`inputs_embeds has ${inputsEmbeds.length} values, not a multiple of hidden ${H}`);
  const S = inputsEmbeds.length / H;
  const nRep = nH / kvH;
  const skip = new Set(opts.skipLayers ?? []);
  const scale = 1 / Math.sqrt(hd);
  const invFreq = new Float64Array(hd / 2);
  for (let j = 0; j < hd / 2; j++) invFreq[j] = 1 / Math.pow(w.rope.theta, (2 * j) / hd);

  let x = Float64Array.from(inputsEmbeds);
  const hidden: Float64Array[] = [x];
  const mids: Float64Array[] = [];
  const attention: Array<Float64Array | undefined> | undefined = opts.captureAttention ? [] : undefined;
  for (let l = 0; l < L; l++) {
    if (skip.has(l)) {
      hidden.push(x);
      mids.push(x);
      attention?.push(undefined);
      continue;
    }
    const lw = { ...w.layers[l], ...(opts.replace?.layers?.[l] ?? {}) } as Record<keyof LayerWeights, Vec>;
    // attention
    const xn = rmsNorm(x, S, H, lw.inputNorm, eps);
    const q = matmul(xn, S, H, lw.q, nH * hd);
    const k = matmul(xn, S, H, lw.k, kvH * hd);
    const v = matmul(xn, S, H, lw.v, kvH * hd);
    applyRotary(q, S, nH, hd, invFreq);
    applyRotary(k, S, kvH, hd, invFreq);
    const ctx = new Float64Array(S * nH * hd);
    const probsAll = attention ? new Float64Array(nH * S * S) : undefined;
    const row = new Float64Array(S);
    for (let h = 0; h < nH; h++) {
      const kvh = Math.floor(h / nRep);
      for (let s = 0; s < S; s++) {
        let max = -Infinity;
        for (let t = 0; t <= s; t++) {
          let dot = 0;
          for (let e = 0; e < hd; e++) dot += q[s * nH * hd + h * hd + e] * k[t * kvH * hd + kvh * hd + e];
          row[t] = dot * scale;
          if (row[t] > max) max = row[t];
        }
        let sum = 0;
        for (let t = 0; t <= s; t++) {
          row[t] = Math.exp(row[t] - max);
          sum += row[t];
        }
        const o = s * nH * hd + h * hd;
        for (let t = 0; t <= s; t++) {
          const p = row[t] / sum;
          if (probsAll) probsAll[h * S * S + s * S + t] = p;
          for (let e = 0; e < hd; e++) ctx[o + e] += p * v[t * kvH * hd + kvh * hd + e];
        }
      }
    }
    attention?.push(probsAll);
    const attnOut = matmul(ctx, S, nH * hd, lw.o, H);
    const r1 = new Float64Array(S * H);
    for (let i = 0; i < r1.length; i++) r1[i] = x[i] + attnOut[i];
    mids.push(r1);
    // MLP
    const xn2 = rmsNorm(r1, S, H, lw.postNorm, eps);
    const gate = matmul(xn2, S, H, lw.gate, I);
    const up = matmul(xn2, S, H, lw.up, I);
    for (let i = 0; i < gate.length; i++) gate[i] = silu(gate[i]) * up[i];
    const down = matmul(gate, S, I, lw.down, H);
    const out = new Float64Array(S * H);
    for (let i = 0; i < out.length; i++) out[i] = r1[i] + down[i];
    x = out;
    hidden.push(x);
  }
  const finalNormed = rmsNorm(x, S, H, opts.replace?.finalNorm ?? w.finalNorm, eps);
  const logits = matmul(finalNormed, S, H, opts.replace?.lmHead ?? w.lmHead, V);
  return { seqLen: S, logits, hidden, layerInputs: hidden.slice(0, L), layerOutputs: hidden.slice(1), layerMids: mids, finalNormed, attention };
}

/** embed_tokens: rows of the [V, H] table. */
export function referenceEmbed(w: SynthWeights, ids: ArrayLike<number>): Float64Array {
  const H = w.dims.hidden;
  const out = new Float64Array(ids.length * H);
  for (let i = 0; i < ids.length; i++) for (let j = 0; j < H; j++) out[i * H + j] = w.embedTokens[ids[i] * H + j];
  return out;
}

/** vision_encoder on one image [3, 16, 16] -> [tokens, H]. */
export function referenceVision(w: SynthWeights, pixels: Vec): Float64Array {
  const { imageSize: Z, patch: P, channels: C, tokens, convWeight, convBias, proj } = w.vision;
  const side = Z / P;
  const feats = new Float64Array(tokens * C);
  for (let py = 0; py < side; py++) {
    for (let px = 0; px < side; px++) {
      const t = py * side + px;
      for (let c = 0; c < C; c++) {
        let acc = convBias[c];
        for (let ch = 0; ch < 3; ch++) {
          for (let ky = 0; ky < P; ky++) {
            for (let kx = 0; kx < P; kx++) {
              acc += convWeight[((c * 3 + ch) * P + ky) * P + kx] * pixels[(ch * Z + py * P + ky) * Z + px * P + kx];
            }
          }
        }
        feats[t * C + c] = acc;
      }
    }
  }
  return matmul(feats, tokens, C, proj, w.dims.hidden);
}
