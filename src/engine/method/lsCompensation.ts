// Least-squares compensation of removed blocks (ReplaceMe-like, DESIGN.md section 6). For each
// contiguous block [s, e] of removed layers, with i = s - 1 the last kept layer before it:
// X = the MLP output of layer i (residual out - residual mid), Y = h_e - (h_i - mlp_i) (the
// residual stream after the block minus what reaches it without layer i's MLP), over every
// token of the calibration samples; T solves X T ~ Y (float64, ridge) and is folded into layer
// i's down projection, so the pruned layer i writes mid_i + mlp_i T ~ h_e. No node is added.

import { CalibSample } from '../data/datasets';
import { foldMap, LsAccumulator, lsResidual, solveLeastSquares } from '../linalg/leastSquares';
import { Mat } from '../linalg/svd';
import { DataType } from '../onnx/proto';
import { LsMapReport, RecipeLsMap } from '../../protocol/report';
import { CalibrationSession, Progress } from './calibrate';

export interface LsResult {
  replace: Map<string, Float64Array>;
  maps: LsMapReport[];
  recipe: RecipeLsMap[];
  warnings: string[];
}

/** Contiguous runs of the sorted removed layers. */
export function removedBlocks(removed: number[]): Array<[number, number]> {
  const s = [...removed].sort((a, b) => a - b);
  const out: Array<[number, number]> = [];
  for (const l of s) {
    const last = out[out.length - 1];
    if (last && last[1] === l - 1) last[1] = l;
    else out.push([l, l]);
  }
  return out;
}

function toBase64(m: Mat): string {
  return Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength).toString('base64');
}

export async function lsCompensate(
  cs: CalibrationSession,
  samples: CalibSample[],
  removed: number[],
  o: { ridge: number; rank?: number; onProgress?: (p: Progress) => void; checkCancelled?: () => void },
): Promise<LsResult> {
  const res: LsResult = { replace: new Map(), maps: [], recipe: [], warnings: [] };
  const blocks = removedBlocks(removed).filter(([s]) => {
    if (s === 0) res.warnings.push('the removed block starting at layer 0 has no kept layer before it: not compensated');
    return s > 0;
  });
  if (!blocks.length) return res;
  const structure = cs.inst.structure;
  const inits = cs.source.initializerMap();
  for (const [s] of blocks) {
    const ref = structure.layers[s - 1].downProj;
    if (!ref) throw new Error(`layer ${s - 1}: its down projection was not found; least-squares compensation needs it (use --compensation none)`);
    const t = inits.get(ref.name)!;
    if (![DataType.FLOAT, DataType.FLOAT16, DataType.BFLOAT16, DataType.DOUBLE].includes(t.dataType) || t.dims.length !== 2) {
      throw new Error(`layer ${s - 1}: weight ${ref.name} is not a float matrix; least-squares compensation needs float weights (use --compensation none)`);
    }
  }
  const needed = [...new Set(blocks.flatMap(([s, e]) => [s - 1, e]))];
  const accs: LsAccumulator[] = [];
  const yy = blocks.map(() => 0);
  const t0 = Date.now();
  for (let n = 0; n < samples.length; n++) {
    o.checkCancelled?.();
    const enc = await cs.encode(samples[n]);
    const taps = await cs.run(enc, needed);
    const D = taps.hidden;
    blocks.forEach(([s, e], b) => {
      accs[b] ??= new LsAccumulator(D);
      const mid = taps.residualMid(s - 1);
      const outI = taps.residualOut(s - 1);
      const outE = taps.residualOut(e);
      const x = new Float64Array(mid.length);
      const y = new Float64Array(mid.length);
      for (let j = 0; j < mid.length; j++) {
        x[j] = outI[j] - mid[j];
        y[j] = outE[j] - mid[j];
        yy[b] += y[j] * y[j];
      }
      accs[b].add(x, y);
    });
    const el = (Date.now() - t0) / 1000;
    o.onProgress?.({ stage: 'least squares', done: n + 1, total: samples.length, etaSeconds: (el / (n + 1)) * (samples.length - n - 1) });
  }
  blocks.forEach(([s, e], b) => {
    const acc = accs[b];
    const T = solveLeastSquares(acc, { ridge: o.ridge, rank: o.rank });
    const ref = structure.layers[s - 1].downProj!;
    const w = inits.get(ref.name)!;
    res.replace.set(ref.name, foldMap(cs.source.tensorFloat64(w), w.dims[0], w.dims[1], T, ref.inOut));
    const D = acc.dim;
    const identity = { rows: D, cols: D, data: Float64Array.from({ length: D * D }, (_, i) => (i % (D + 1) === 0 ? 1 : 0)) };
    const rel = (m: Mat) => Math.sqrt(Math.max(0, lsResidual(acc, yy[b], m)) / (yy[b] || 1));
    res.maps.push({ block: [s, e], layer: s - 1, weight: ref.name, rank: o.rank ?? null, ridge: o.ridge, tokens: acc.rows, gapBefore: rel(identity), gapAfter: rel(T) });
    res.recipe.push({ weight: ref.name, inOut: ref.inOut, map: { rows: D, cols: D, float64: toBase64(T) } });
  });
  return res;
}
