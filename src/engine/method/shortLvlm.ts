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
import { RuntimeOptions } from '../runtime/ort';
import { foldMap } from '../linalg/leastSquares';
import { Compensation, CompensationCheck, DEFAULT_METHOD, resolveCompensation, CurvePoint, LayerReport, OutputEffect, PruneOptions, Recipe, RECIPE_FORMAT, Report, REPORT_FORMAT, SelectionReport } from '../../protocol/report';
import { calibrate, CalibrationSession, CalibrationStats, layerMeans, Progress } from './calibrate';
import { compensate, ScpResult } from './scp';
import { defaultCandidates, layersToRemove, outputAwareCandidates, pairPartners, rankByScore, selectByScore, selectRandom } from './selection';
import { withinBudget } from './greedy';
import { lsCompensate } from './lsCompensation';
import { compareLogits, encodePrompts, greedyCurve, Measured, measureSet, skipCosts, TrialRunner } from './outputAware';

export const DEFAULT_OPTIONS: PruneOptions = DEFAULT_PRUNE_OPTIONS;

/** Held-out share of the calibration set for measured effects, and the least-squares ridge. */
export const DEFAULT_HOLDOUT = 0.25;
export const DEFAULT_LS_RIDGE = 1e-4;

export function compensationOf(o: PruneOptions): Compensation {
  return resolveCompensation(o);
}

export function hasBudget(o: PruneOptions): boolean {
  return o.minAgreement !== undefined || o.maxKl !== undefined;
}

/** The plain sentence the report and the CLI print about who chose the layers. */
export function methodNote(o: PruneOptions): string {
  const comp = compensationOf(o);
  const c = comp === 'scp' ? 'subspace-compensated (SCP, the paper\'s)' : comp === 'ls' ? 'least-squares compensated (not the paper\'s SCP; dropped if it does not help on held-out samples)' : 'not compensated';
  switch (o.method) {
    case 'svl': return `Layers chosen by Short-LVLM's TIS-weighted cosine (the paper's method), ${c}.`;
    case 'greedy': return `Layers chosen by measured output change (greedy, KL to the original model), not by the paper's TIS cosine; ${c}.`;
    case 'manual': return `Layers chosen by hand, ${c}.`;
    default: return `Layers chosen by the ${o.method} baseline (not the paper's method), ${c}.`;
  }
}

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

type PruneOut = { outDir: string; overwrite?: boolean; calibFile?: string; heldOut?: CalibSample[]; heldOutInCalibration?: boolean; threads?: number; device?: RuntimeOptions['device'] };

export async function pruneWithStats(
  pkg: ModelPackage,
  cs: CalibrationSession,
  samples: CalibSample[],
  stats: CalibrationStats,
  o: PruneOptions,
  out: PruneOut,
  hooks: JobHooks,
  timings: Record<string, number> = {},
): Promise<JobResult> {
  const tr = new TrialRunner(cs, { kvHeads: pkg.text.numKvHeads, headDim: pkg.text.headDim }, { threads: out.threads, device: out.device });
  try {
    return await pruneWithTrials(pkg, cs, tr, samples, stats, o, out, hooks, timings);
  } finally {
    await tr.dispose();
  }
}

async function pruneWithTrials(
  pkg: ModelPackage,
  cs: CalibrationSession,
  tr: TrialRunner,
  samples: CalibSample[],
  stats: CalibrationStats,
  o: PruneOptions,
  out: PruneOut,
  hooks: JobHooks,
  timings: Record<string, number>,
): Promise<JobResult> {
  const L = stats.numLayers;
  const heldOut = out.heldOut ?? [];
  const warnings: string[] = [];
  let held: Measured | undefined;
  let skip: OutputEffect[] | undefined;
  let t = Date.now();
  if (heldOut.length) {
    held = await measureSet(tr, await encodePrompts(cs, heldOut), hooks.checkCancelled);
    skip = await skipCosts(tr, held, L, hooks);
    timings.skipCostSeconds = (Date.now() - t) / 1000;
  }
  t = Date.now();
  const { plan, selection } = await choose(cs, tr, samples, stats, o, held, hooks);
  timings.selectSeconds = (Date.now() - t) / 1000;
  const comp = compensationOf(o);
  let scp: ScpResult = { pairs: [], replace: new Map(), compensation: [], warnings: [] };
  let ls: Awaited<ReturnType<typeof lsCompensate>> | undefined;
  let check: CompensationCheck | undefined;
  if (comp === 'scp') {
    const tc = Date.now();
    scp = await compensate(cs, samples, pairPartners(plan.removed, L), { rank: o.rank, target: o.scpTarget, features: o.features, topP: o.topP, keepMode: o.keepMode, onProgress: hooks.onProgress, checkCancelled: hooks.checkCancelled });
    timings.compensateSeconds = (Date.now() - tc) / 1000;
  } else if (comp === 'ls') {
    const tc = Date.now();
    ls = await lsCompensate(cs, samples, plan.removed, { ridge: o.lsRidge ?? DEFAULT_LS_RIDGE, rank: o.lsRank, onProgress: hooks.onProgress, checkCancelled: hooks.checkCancelled });
    warnings.push(...ls.warnings);
    timings.compensateSeconds = (Date.now() - tc) / 1000;
  }
  const replace = comp === 'ls' ? ls!.replace : scp.replace;
  if (held && replace.size && plan.removed.length) {
    // Compensation must not make the held-out output worse than plain removal.
    const without = selection?.curve[plan.removed.length - 1] ?? compareLogits(held.reference, await tr.logits(plan.removed, held.prompts, undefined, hooks.checkCancelled));
    const withC = compareLogits(held.reference, await tr.logits(plan.removed, held.prompts, replace, hooks.checkCancelled));
    const helps = withC.kl < without.kl;
    const kind = comp as 'scp' | 'ls';
    // The paper's method stays as published: SCP is kept under svl, and the report says when it hurt.
    const applied = helps || o.method === 'svl';
    const name = kind === 'scp' ? 'SCP' : 'least-squares compensation';
    const note = helps
      ? `${name} lowered the held-out KL from ${without.kl.toFixed(4)} to ${withC.kl.toFixed(4)}: applied`
      : applied
        ? `${name} raised the held-out KL from ${without.kl.toFixed(4)} to ${withC.kl.toFixed(4)}; kept because --method svl applies the paper's method unchanged`
        : `${name} raised the held-out KL from ${without.kl.toFixed(4)} to ${withC.kl.toFixed(4)}: not applied, layers removed without compensation`;
    check = { kind, without: { kl: without.kl, agreement: without.agreement }, with: withC, applied, note };
    if (!helps) warnings.push(note);
    if (!applied) {
      replace.clear();
      scp = { pairs: [], replace, compensation: [], warnings: scp.warnings };
      if (ls) ls = { ...ls, recipe: [] };
    }
  }
  timings.trials = tr.trials;
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
    ...(skip ? { skipCost: skip[i] } : {}),
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
    warnings: [...scp.warnings, ...warnings],
    methodNote: methodNote(o),
    ...(held ? { measurement: { positions: 'first-answer-token' as const, heldOutSamples: heldOut.length, heldOutIds: heldOut.map((x) => x.id), selectionSamples: samples.length, trials: tr.trials, forwardPassesPerSample: tr.forwardPassesPerSample(out.heldOutInCalibration ? samples.length : samples.length + heldOut.length), heldOutInCalibration: !!out.heldOutInCalibration } } : {}),
    ...(selection ? { selection } : {}),
    ...(ls && check?.applied !== false ? { lsMaps: ls.maps } : {}),
    ...(check ? { compensationCheck: check } : {}),
  };
  const recipe: Recipe = {
    format: RECIPE_FORMAT,
    model: { decoder: decoderRel, numLayers: L, bytes: fs.statSync(pkg.decoder).size },
    removed: plan.removed,
    compensation: scp.compensation,
    ...(ls?.recipe.length ? { lsMaps: ls.recipe } : {}),
    options: report.options,
  };
  const tw = Date.now();
  const res = writePrunedPackage(pkg, {
    remove: plan.removed,
    // SCP's or least squares' replaced weights (emptied above when the held-out check refused them).
    replace,
    outDir: out.outDir,
    overwrite: out.overwrite,
    // The report is complete once the decoder is written (its size, the write time): it goes
    // into the temporary folder with the package, before the rename, and is never rewritten.
    extraJson: (written) => {
      timings.writeSeconds = (Date.now() - t) / 1000;
      report.output.bytes = written.bytes;
      report.output.variants = written.variants;
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
    for (const [i, m] of (recipe.lsMaps ?? []).entries()) {
      const bad = (why: string) => new Error(`the recipe's least-squares map ${i} is damaged: ${why}`);
      const T0 = m?.map;
      if (!T0 || !Number.isSafeInteger(T0.rows) || T0.rows <= 0 || T0.cols !== T0.rows || typeof T0.float64 !== 'string' || typeof m.inOut !== 'boolean') throw bad('it needs a square map, base64 data and a layout');
      if (!inits.has(m.weight)) throw new Error(`recipe weight ${m.weight} is not in the model`);
      const buf = Buffer.from(T0.float64, 'base64');
      if (buf.length !== T0.rows * T0.cols * 8) throw bad(`its map holds ${buf.length} bytes, ${T0.rows} x ${T0.cols} float64 need ${T0.rows * T0.cols * 8}`);
      const T = mat(T0.rows, T0.cols, new Float64Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength)));
      if (!T.data.every(Number.isFinite)) throw bad('its map holds values that are not finite');
      let W: ReturnType<typeof readWeightMatrix>;
      try {
        W = readWeightMatrix(src, m.weight);
      } catch (e) {
        throw bad((e as Error).message);
      }
      // Into the replace map: the written package carries it into every dtype variant.
      replace.set(m.weight, foldMap(W.data, W.rows, W.cols, T, m.inOut));
    }
    return writePrunedPackage(pkg, { remove: recipe.removed, replace, outDir: out.outDir, overwrite: out.overwrite, extraJson: { [RECIPE_FILE]: recipe } });
  } finally {
    src.close();
  }
}

/** Most layers a budget may remove: every candidate, at most half the layers. */
function budgetSteps(L: number, candidates: [number, number]): number {
  return Math.min(Math.floor(L / 2), candidates[1] - candidates[0] + 1);
}

/**
 * The layers to remove: by score (the paper's and the baselines'), or greedily by measured
 * output change; with a quality budget, the longest prefix of the method's order that keeps
 * the held-out agreement / KL within it (the curve is recorded either way when measured).
 */
async function choose(
  cs: CalibrationSession,
  tr: TrialRunner,
  samples: CalibSample[],
  stats: CalibrationStats,
  o: PruneOptions,
  held: Measured | undefined,
  hooks: JobHooks,
): Promise<{ plan: Plan; selection?: SelectionReport }> {
  const L = stats.numLayers;
  const budget = hasBudget(o);
  if (budget && !held) throw new Error('a quality budget (--min-agreement / --max-kl) needs held-out samples: set --holdout above 0');
  if (o.method !== 'greedy' && !budget) return { plan: planFromStats(stats, o) };
  if (o.method === 'manual' || o.method === 'random') throw new Error(`a quality budget cannot be combined with --method ${o.method}`);
  const candidates = o.candidates ?? (o.method === 'greedy' ? outputAwareCandidates(L) : defaultCandidates(L));
  const range = Array.from({ length: candidates[1] - candidates[0] + 1 }, (_, i) => candidates[0] + i);
  const steps = budget ? budgetSteps(L, candidates) : layersToRemove(o.ratio, L);
  const proxy = methodScores(stats, 'svl');
  let curve: CurvePoint[];
  if (o.method === 'greedy') {
    const sel = await measureSet(tr, await encodePrompts(cs, samples), hooks.checkCancelled);
    if (!held) throw new Error('greedy selection needs held-out samples: set --holdout above 0');
    curve = (await greedyCurve(tr, sel, held, { candidates: range, steps, topM: o.topM, proxy }, hooks)).curve;
  } else {
    // A score-ranked method's order is its ranking: measure each prefix on the held-out slice.
    const scores = methodScores(stats, o.method);
    curve = [];
    for (let n = 1; n <= steps; n++) {
      const removed = selectByScore(scores, n, candidates);
      const e = compareLogits(held!.reference, await tr.logits(removed, held!.prompts, undefined, hooks.checkCancelled));
      curve.push({ removed, added: removed.find((l) => !(curve[n - 2]?.removed ?? []).includes(l)) ?? removed[0], selectionKl: e.kl, ...e });
    }
  }
  let n = steps;
  if (budget) {
    n = withinBudget(curve, { minAgreement: o.minAgreement, maxKl: o.maxKl });
    if (n === 0) throw new Error(`no layer can be removed within the budget (${budgetText(o)}): removing the cheapest layer already gives agreement ${curve[0].agreement.toFixed(3)}, KL ${curve[0].kl.toFixed(4)} on the held-out samples`);
  }
  const selection: SelectionReport = {
    method: o.method,
    objective: 'mean-kl',
    candidates: range,
    ...(o.topM !== undefined ? { topM: o.topM } : {}),
    curve,
    ...(budget ? { budget: { minAgreement: o.minAgreement, maxKl: o.maxKl, layers: n } } : {}),
  };
  return { plan: { removed: curve[n - 1].removed, scores: o.method === 'greedy' ? proxy : methodScores(stats, o.method), candidates }, selection };
}

function budgetText(o: PruneOptions): string {
  return [o.minAgreement !== undefined ? `agreement >= ${o.minAgreement}` : '', o.maxKl !== undefined ? `KL <= ${o.maxKl}` : ''].filter(Boolean).join(', ');
}
