// Subspace-Compensated Pruning (pass 2, only for the chosen pairs): per calibration sample,
// the pruned layer's and its partner's output features (mean over the pruned layer's kept
// tokens, or all tokens, or the last token); the top-k right singular vectors V_k of their
// difference H = X^p - X^r (float64); and the partner's residual-writing weight projected
// as W (I + V_k V_k^T) on its output side (the default) or the literal input-side variant.

import { CalibSample } from '../data/datasets';
import { Mat, mat, projectWeight, topRightSingular } from '../linalg/svd';
import { readWeightMatrix } from '../graph/linearWeights';
import { LayerInfo, WeightRef } from '../graph/layers';
import { FeatureMode, PairReport, RecipeCompensation, ScpTarget } from '../../protocol/report';
import { CalibrationSession, Progress } from './calibrate';
import { KeepMode, selectTokens, tokenImportance } from './tis';

export interface ScpOptions {
  rank?: number;
  target: ScpTarget;
  features: FeatureMode;
  topP: number;
  keepMode: KeepMode;
  onProgress?: (p: Progress) => void;
  checkCancelled?: () => void;
}

export interface ScpResult {
  pairs: PairReport[];
  replace: Map<string, Float64Array>;
  compensation: RecipeCompensation[];
  warnings: string[];
}

export function defaultRank(hidden: number): number {
  return Math.max(1, Math.round(hidden / 64));
}

function meanRows(x: Float32Array, tokens: number[], D: number, out: Float32Array, offset: number, sub?: Float32Array): void {
  for (const t of tokens) {
    for (let d = 0; d < D; d++) out[offset + d] += (x[t * D + d] - (sub ? sub[t * D + d] : 0)) / tokens.length;
  }
}

function cosine(a: Float64Array | Float32Array, b: Float64Array | Float32Array, ao: number, bo: number, D: number): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let d = 0; d < D; d++) {
    dot += a[ao + d] * b[bo + d];
    na += a[ao + d] ** 2;
    nb += b[bo + d] ** 2;
  }
  return na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : 1;
}

export function featureGap(xp: Float32Array | Float64Array, xr: Float32Array | Float64Array, N: number, D: number): { cosine: number; relL2: number } {
  let cos = 0;
  let diff = 0;
  let norm = 0;
  for (let n = 0; n < N; n++) {
    cos += cosine(xp, xr, n * D, n * D, D);
    for (let d = 0; d < D; d++) {
      diff += (xp[n * D + d] - xr[n * D + d]) ** 2;
      norm += xp[n * D + d] ** 2;
    }
  }
  return { cosine: cos / N, relL2: norm > 0 ? Math.sqrt(diff / norm) : 0 };
}

/** 2-D PCA of the stacked feature rows (for the paper's Figure 6 style plot). */
function pca2(blocks: Float64Array[], N: number, D: number): [number, number][][] {
  const rows = blocks.length * N;
  const m = mat(rows, D);
  blocks.forEach((b, i) => m.data.set(b.subarray(0, N * D), i * N * D));
  const mean = new Float64Array(D);
  for (let r = 0; r < rows; r++) for (let d = 0; d < D; d++) mean[d] += m.data[r * D + d] / rows;
  for (let r = 0; r < rows; r++) for (let d = 0; d < D; d++) m.data[r * D + d] -= mean[d];
  const { V } = topRightSingular(m, 2);
  const k = V.cols;
  return blocks.map((_, i) =>
    Array.from({ length: N }, (_, n): [number, number] => {
      const coords = [0, 0];
      for (let c = 0; c < k; c++) for (let d = 0; d < D; d++) coords[c] += m.data[(i * N + n) * D + d] * V.data[d * k + c];
      return [Number(coords[0].toPrecision(5)), Number(coords[1].toPrecision(5))];
    }),
  );
}

function toBase64(m: Mat): string {
  return Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength).toString('base64');
}

/** The weights SCP projects in a partner layer (undefined where the graph has none). */
function targetWeights(layer: LayerInfo, target: ScpOptions['target']): Array<WeightRef | undefined> {
  return target === 'down_proj' ? [layer.downProj] : target === 'o_proj' ? [layer.oProj] : [...layer.attnInputWeights, ...layer.mlpInputWeights];
}

export async function compensate(
  cs: CalibrationSession,
  samples: CalibSample[],
  pairs: Array<{ pruned: number; partner: number | null }>,
  opts: ScpOptions,
): Promise<ScpResult> {
  const active = pairs.filter((p): p is { pruned: number; partner: number } => p.partner !== null);
  const warnings = pairs.filter((p) => p.partner === null).map((p) => `layer ${p.pruned} has no free retained partner: not compensated`);
  const result: ScpResult = { pairs: [], replace: new Map(), compensation: [], warnings };
  if (!active.length) return result;
  const structure = cs.inst.structure;
  const unfoldable = active.filter((p) => targetWeights(structure.layers[p.partner], opts.target).some((r) => !r)).map((p) => p.partner);
  if (unfoldable.length) {
    // Gemma 2/3 put a norm between down_proj / o_proj and the residual add: no weight writes
    // linearly into the residual stream, so the projection has nowhere to be folded.
    warnings.push(`SCP skipped: in layer${unfoldable.length > 1 ? 's' : ''} ${unfoldable.join(', ')} no ${opts.target} weight writes linearly into the residual stream (a normalization follows it, as in Gemma's sandwich norms); the layers were removed without compensation (--scp-target input projects their input-side weights instead)`);
    return result;
  }
  const needed = [...new Set(active.flatMap((p) => [p.pruned, p.partner]))];
  const N = samples.length;
  let D = 0;
  const feats = active.map(() => ({ xp: new Float32Array(0), xr: new Float32Array(0), br: new Float32Array(0) }));
  const t0 = Date.now();
  for (let n = 0; n < N; n++) {
    opts.checkCancelled?.();
    const enc = await cs.encode(samples[n]);
    const taps = await cs.run(enc, needed);
    const S = enc.seqLen;
    if (!D) {
      D = taps.hidden;
      for (const f of feats) {
        f.xp = new Float32Array(N * D);
        f.xr = new Float32Array(N * D);
        f.br = new Float32Array(N * D);
      }
    }
    active.forEach((pair, i) => {
      let tokens: number[];
      if (opts.features === 'all') tokens = Array.from({ length: S }, (_, t) => t);
      else if (opts.features === 'last') tokens = [S - 1];
      else tokens = selectTokens(tokenImportance(taps.attention(pair.pruned), enc.isImage), opts.topP, opts.keepMode);
      const f = feats[i];
      const outR = taps.residualOut(pair.partner);
      meanRows(taps.residualOut(pair.pruned), tokens, D, f.xp, n * D);
      meanRows(outR, tokens, D, f.xr, n * D);
      // The branch the projected weight writes: MLP output (down_proj) or attention output (o_proj).
      if (opts.target === 'o_proj') meanRows(taps.residualMid(pair.partner), tokens, D, f.br, n * D, taps.residualIn(pair.partner));
      else meanRows(outR, tokens, D, f.br, n * D, taps.residualMid(pair.partner));
    });
    const elapsed = (Date.now() - t0) / 1000;
    opts.onProgress?.({ stage: 'compensate', done: n + 1, total: N, etaSeconds: (elapsed / (n + 1)) * (N - n - 1) });
  }

  const k = opts.rank ?? defaultRank(D);
  active.forEach((pair, i) => {
    const f = feats[i];
    const H = mat(N, D);
    for (let j = 0; j < N * D; j++) H.data[j] = f.xp[j] - f.xr[j];
    const top = topRightSingular(H, k);
    const V = top.V;
    const layer = structure.layers[pair.partner];
    const refs = targetWeights(layer, opts.target);
    const side: 'output' | 'input' = opts.target === 'input' ? 'input' : 'output';
    const weights: RecipeCompensation['weights'] = [];
    for (const ref of refs) {
      if (!ref) throw new Error(`layer ${pair.partner}: its ${opts.target} weight was not found; pass --no-scp or another --scp-target`);
      // Quantised weights (when only a quantised variant was calibrated) are dequantised here.
      let W: ReturnType<typeof readWeightMatrix>;
      try {
        W = readWeightMatrix(cs.source, ref.name);
      } catch (e) {
        throw new Error(`layer ${pair.partner}: ${(e as Error).message}; pass --no-scp`);
      }
      result.replace.set(ref.name, projectWeight(W.data, W.rows, W.cols, V, side, ref.inOut));
      weights.push({ name: ref.name, side, inOut: ref.inOut });
    }
    const xp = Float64Array.from(f.xp);
    const xr = Float64Array.from(f.xr);
    const gapBefore = featureGap(xp, xr, N, D);
    let gapAfter: PairReport['gapAfter'] = null;
    let after: Float64Array | undefined;
    if (side === 'output') {
      // Partner's compensated output in the original model's context: X^r + (B V) V^T.
      after = Float64Array.from(xr);
      const kk = V.cols;
      for (let n = 0; n < N; n++) {
        for (let c = 0; c < kk; c++) {
          let proj = 0;
          for (let d = 0; d < D; d++) proj += f.br[n * D + d] * V.data[d * kk + c];
          for (let d = 0; d < D; d++) after[n * D + d] += proj * V.data[d * kk + c];
        }
      }
      gapAfter = featureGap(xp, after, N, D);
    }
    const nPlot = Math.min(N, 64);
    const blocks = after ? [xp, xr, after] : [xp, xr];
    const coords = pca2(blocks, nPlot, D);
    result.pairs.push({
      pruned: pair.pruned,
      partner: pair.partner,
      weight: weights.map((w) => w.name).join(', '),
      rank: V.cols,
      singularValues: top.singularValues.slice(0, Math.max(16, V.cols)).map((x) => Number(x.toPrecision(6))),
      gapBefore,
      gapAfter,
      projection: { pruned: coords[0], before: coords[1], after: coords[2] ?? [] },
    });
    result.compensation.push({ pruned: pair.pruned, partner: pair.partner, weights, basis: { rows: V.rows, cols: V.cols, float64: toBase64(V) } });
  });
  return result;
}
