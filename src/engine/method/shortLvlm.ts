// The whole job: calibrate once, choose layers, compensate, write the pruned package with its
// report and recipe. `planFromStats` is separate so a sweep can reuse one calibration for
// many (method, ratio) choices.

import * as fs from 'fs';
import * as path from 'path';
import { CalibSample } from '../data/datasets';
import { mat, projectWeight } from '../linalg/svd';
import { checkLayerIndices } from '../graph/surgery';
import { OnnxFile } from '../onnx/onnxFile';
import { readWeightMatrix } from '../graph/linearWeights';
import { ModelPackage } from '../package/modelPackage';
import { writePrunedPackage } from '../package/writePackage';
import { RECIPE_FILE, REPORT_FILE } from '../../protocol/files';
import { DEFAULT_PRUNE_OPTIONS } from '../../protocol/options';
import { LayerReport, PruneOptions, Recipe, RECIPE_FORMAT, Report, REPORT_FORMAT } from '../../protocol/report';
import { calibrate, CalibrationSession, CalibrationStats, layerMeans, Progress } from './calibrate';
import { compensate, ScpResult } from './scp';
import { defaultCandidates, layersToRemove, pairPartners, rankByScore, selectByScore, selectRandom } from './selection';

export const DEFAULT_OPTIONS: PruneOptions = DEFAULT_PRUNE_OPTIONS;

export interface JobHooks {
  onProgress?: (p: Progress) => void;
  checkCancelled?: () => void;
  log?: (line: string) => void;
}

/** Where a calibration keeps its running sums so that a killed run can resume. */
export interface CalibrationResume {
  checkpoint?: string;
}

export interface Plan {
  removed: number[];
  scores: Array<number | null>;
  candidates: [number, number];
}

export function methodScores(stats: CalibrationStats, method: PruneOptions['method']): Array<number | null> {
  const m = layerMeans(stats);
  switch (method) {
    case 'svl': return m.map((x) => x.cosTis);
    case 'cosine': return m.map((x) => x.cosAll);
    case 'text': return m.map((x) => x.cosText);
    case 'visual': return m.map((x) => x.cosVisual);
    default: return m.map((x) => x.cosTis);
  }
}

export function planFromStats(stats: CalibrationStats, o: PruneOptions): Plan {
  const L = stats.numLayers;
  const candidates = o.candidates ?? defaultCandidates(L);
  const scores = methodScores(stats, o.method);
  if (o.method === 'manual') {
    if (!o.layers?.length) throw new Error('manual choice needs a list of layers');
    return { removed: checkLayerIndices(o.layers, L).sort((a, b) => a - b), scores, candidates };
  }
  const n = layersToRemove(o.ratio, L);
  const removed = o.method === 'random' ? selectRandom(n, candidates, L, o.seed) : selectByScore(scores, n, candidates);
  return { removed, scores, candidates };
}

export interface JobResult {
  outDir: string;
  report: Report;
  recipe: Recipe;
}

/** Calibration pass shared by prune and sweep. */
export async function runCalibration(cs: CalibrationSession, samples: CalibSample[], o: PruneOptions, hooks: JobHooks, resume: CalibrationResume = {}): Promise<CalibrationStats> {
  return calibrate(cs, samples, {
    topP: o.topP,
    keepMode: o.keepMode,
    onProgress: hooks.onProgress,
    checkCancelled: hooks.checkCancelled,
    checkpoint: resume.checkpoint,
    onResume: (done, total) => hooks.log?.(`resuming calibration after ${done} of ${total} samples (${resume.checkpoint})`),
  });
}

export async function pruneWithStats(
  pkg: ModelPackage,
  cs: CalibrationSession,
  samples: CalibSample[],
  stats: CalibrationStats,
  o: PruneOptions,
  out: { outDir: string; overwrite?: boolean; calibFile?: string },
  hooks: JobHooks,
  timings: Record<string, number> = {},
): Promise<JobResult> {
  const plan = planFromStats(stats, o);
  const L = stats.numLayers;
  let scp: ScpResult = { pairs: [], replace: new Map(), compensation: [], warnings: [] };
  const pairs = o.scp ? pairPartners(plan.removed, L) : [];
  if (o.scp) {
    const t = Date.now();
    scp = await compensate(cs, samples, pairs, { rank: o.rank, target: o.scpTarget, features: o.features, topP: o.topP, keepMode: o.keepMode, onProgress: hooks.onProgress, checkCancelled: hooks.checkCancelled });
    timings.compensateSeconds = (Date.now() - t) / 1000;
  }
  const means = layerMeans(stats);
  const ranks = rankByScore(plan.scores, plan.candidates);
  const partners = new Set(scp.pairs.map((p) => p.partner));
  const layers: LayerReport[] = means.map((m, i) => ({
    index: i,
    cosTis: m.cosTis,
    cosAll: m.cosAll,
    cosText: m.cosText,
    cosVisual: m.cosVisual,
    rank: ranks[i],
    candidate: i >= plan.candidates[0] && i <= plan.candidates[1],
    status: plan.removed.includes(i) ? 'pruned' : partners.has(i) ? 'partner' : 'retained',
    keptVisualShare: m.keptVisualShare,
  }));
  const decoderRel = path.relative(pkg.root, pkg.decoder);
  const report: Report = {
    format: REPORT_FORMAT,
    createdAt: new Date().toISOString(),
    model: { root: pkg.root, decoder: decoderRel, layout: pkg.layout, style: stats.style, numLayers: L, hiddenSize: stats.hidden },
    output: { root: path.resolve(out.outDir), numLayers: L - plan.removed.length, bytes: 0 },
    options: { ...o, candidates: plan.candidates, samples: samples.length },
    calibration: { file: out.calibFile, samples: stats.samples, tokensMean: stats.tokens / stats.samples, visualTokensMean: stats.visualTokens / stats.samples },
    removed: plan.removed,
    layers,
    histograms: { visual: stats.histVisual, text: stats.histText },
    tokenSamples: stats.tokenSamples,
    pairs: scp.pairs,
    timings,
    warnings: scp.warnings,
  };
  const recipe: Recipe = {
    format: RECIPE_FORMAT,
    model: { decoder: decoderRel, numLayers: L, bytes: fs.statSync(pkg.decoder).size },
    removed: plan.removed,
    compensation: scp.compensation,
    options: report.options,
  };
  const t = Date.now();
  const res = writePrunedPackage(pkg, {
    remove: plan.removed,
    replace: scp.replace,
    outDir: out.outDir,
    overwrite: out.overwrite,
    // The report is complete once the decoder is written (its size, the write time): it goes
    // into the temporary folder with the package, before the rename, and is never rewritten.
    extraJson: (written) => {
      timings.writeSeconds = (Date.now() - t) / 1000;
      report.output.bytes = written.bytes;
      report.output.variants = written.variants;
      report.output.leftOut = written.leftOut;
      for (const v of written.variants) if (v.note) report.warnings.push(`${v.file}: ${v.note}`);
      return { [REPORT_FILE]: report, [RECIPE_FILE]: recipe };
    },
    checkCancelled: hooks.checkCancelled,
  });
  return { outDir: res.outDir, report, recipe };
}

/** Re-applies a recipe (layers and compensation bases) without calibration. */
export function applyRecipe(pkg: ModelPackage, recipe: Recipe, out: { outDir: string; overwrite?: boolean }) {
  if (recipe.format !== RECIPE_FORMAT) throw new Error(`not a Short-LVLM recipe (format ${String(recipe.format)})`);
  const src = OnnxFile.open(pkg.decoder);
  try {
    const size = fs.statSync(pkg.decoder).size;
    if (recipe.model?.bytes !== size) throw new Error(`the recipe was made for a decoder of ${recipe.model?.bytes} bytes; ${path.basename(pkg.decoder)} has ${size}: not the same model`);
    const inits = src.initializerMap();
    const replace = new Map<string, Float64Array>();
    for (const [i, c] of recipe.compensation.entries()) {
      // A recipe is a file the user may have edited: its bases must be what the weights need.
      const b = c?.basis;
      const bad = (why: string) => new Error(`the recipe's compensation ${i} is damaged: ${why}`);
      if (!b || !Number.isSafeInteger(b.rows) || !Number.isSafeInteger(b.cols) || b.rows <= 0 || b.cols <= 0 || b.cols > b.rows || typeof b.float64 !== 'string') throw bad('its basis needs rows >= cols > 0 and base64 data');
      const buf = Buffer.from(b.float64, 'base64');
      if (buf.length !== b.rows * b.cols * 8) throw bad(`its basis holds ${buf.length} bytes, ${b.rows} x ${b.cols} float64 need ${b.rows * b.cols * 8}`);
      const V = mat(b.rows, b.cols, new Float64Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength)));
      if (!V.data.every(Number.isFinite)) throw bad('its basis holds values that are not finite');
      if (!Array.isArray(c.weights)) throw bad('no list of weights');
      for (const w of c.weights) {
        if (!inits.has(w?.name)) throw new Error(`recipe weight ${w?.name} is not in the model`);
        if ((w.side !== 'output' && w.side !== 'input') || typeof w.inOut !== 'boolean') throw bad(`weight ${w.name} has no side and layout`);
        // Quantised weights (a package without a float decoder) are read dequantised.
        let W: ReturnType<typeof readWeightMatrix>;
        try {
          W = readWeightMatrix(src, w.name);
        } catch (e) {
          throw bad((e as Error).message);
        }
        replace.set(w.name, projectWeight(W.data, W.rows, W.cols, V, w.side, w.inOut));
      }
    }
    return writePrunedPackage(pkg, { remove: recipe.removed, replace, outDir: out.outDir, overwrite: out.overwrite, extraJson: { [RECIPE_FILE]: recipe } });
  } finally {
    src.close();
  }
}
