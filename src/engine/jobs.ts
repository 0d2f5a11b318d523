// The engine's entry points, shared by the CLI and the extension's engine process: each job
// takes plain JSON-able arguments and reports progress through hooks.

import * as fs from 'fs';
import * as path from 'path';
import { benchModels, ModelBench } from './bench/evaluate';
import { loadCalibration, loadEval } from './data/datasets';
import { CalibrationSession } from './method/calibrate';
import { applyRecipe, compensationOf, DEFAULT_HOLDOUT, DEFAULT_OPTIONS, hasBudget, JobHooks, JobResult, methodNote, pruneWithStats, runCalibration } from './method/shortLvlm';
import { splitHoldout } from './method/outputAware';
import { Device } from './runtime/device';
import { Execution } from './runtime/execution';
import { openPackage } from './package/modelPackage';
import { writePrunedPackage } from './package/writePackage';
import { PruneOptions, Recipe } from '../protocol/report';

export interface PruneArgs {
  model: string;
  calib?: string;
  out?: string;
  overwrite?: boolean;
  recipe?: string;
  threads?: number;
  /** Whole instrumented graph, layer-wise, or chosen from the decoder size and free memory. */
  execution?: Execution;
  /** onnxruntime execution provider (default cpu). */
  device?: Device;
  options: Partial<PruneOptions>;
}

export interface PruneSummary {
  out: string;
  removed: number[];
  ratio: number;
  numLayers: number;
  method: string;
  scp: boolean;
  compensation?: string;
  note?: string;
  /** Per-layer measured skip cost (held-out KL, agreement), when measured. */
  skipCost?: Array<{ layer: number; kl: number; agreement: number }>;
  compensationNote?: string;
  report?: string;
  seconds: number;
}

export function defaultOutDir(root: string, tag: string): string {
  return path.join(path.dirname(root), `${path.basename(root)}-short-lvlm-${tag}`);
}

export async function pruneJob(a: PruneArgs, hooks: JobHooks = {}): Promise<PruneSummary> {
  const started = Date.now();
  const pkg = openPackage(a.model);
  if (a.recipe) {
    const recipe = JSON.parse(fs.readFileSync(a.recipe, 'utf8')) as Recipe;
    const out = a.out ?? defaultOutDir(pkg.root, `recipe-l${recipe.removed.join('-')}`);
    const r = applyRecipe(pkg, recipe, { outDir: out, overwrite: a.overwrite });
    const L = r.numLayers + r.removed.length;
    return { out: r.outDir, removed: r.removed, ratio: r.removed.length / L, numLayers: r.numLayers, method: 'recipe', scp: recipe.compensation.length > 0, seconds: (Date.now() - started) / 1000 };
  }
  const o: PruneOptions = { ...DEFAULT_OPTIONS, ...a.options };
  if (o.layers?.length) o.method = 'manual';
  if (o.method === 'manual' && !o.scp && !a.calib) {
    // An explicit choice without compensation needs no calibration at all (with --calib, the
    // calibrated path below still writes a report explaining the hand-made choice).
    const out = a.out ?? defaultOutDir(pkg.root, `l${o.layers!.join('-')}`);
    const r = writePrunedPackage(pkg, { remove: o.layers!, outDir: out, overwrite: a.overwrite, checkCancelled: hooks.checkCancelled });
    const L = r.numLayers + r.removed.length;
    return { out: r.outDir, removed: r.removed, ratio: r.removed.length / L, numLayers: r.numLayers, method: 'manual', scp: false, seconds: (Date.now() - started) / 1000 };
  }
  if (!a.calib) throw new Error(o.method === 'manual' ? 'compensating a hand-made choice needs --calib (or pass --no-scp)' : 'automatic pruning needs calibration data: pass --calib <file> (LLaVA conversation JSON/JSONL), or --layers with --no-scp');
  const all = loadCalibration(a.calib, o.samples);
  const comp = compensationOf(o);
  // Output-aware choices (greedy, a budget) calibrate and choose on one slice and measure on
  // the other; the score-ranked methods keep calibrating on every sample as published, and the
  // held-out slice then only feeds the report's skip costs.
  const disjoint = o.method === 'greedy' || hasBudget(o);
  const fraction = o.holdout ?? DEFAULT_HOLDOUT;
  const heldCount = Math.round(fraction * all.length);
  // The score-ranked methods need no held-out slice: with too few samples for one, they skip the measurement.
  const split = disjoint || (heldCount >= 1 && heldCount < all.length) ? splitHoldout(all, fraction) : { select: all, heldOut: [] as typeof all };
  const samples = disjoint ? split.select : all;
  const budgetTag = hasBudget(o) ? `budget${o.minAgreement !== undefined ? `-a${o.minAgreement}` : ''}${o.maxKl !== undefined ? `-kl${o.maxKl}` : ''}` : `r${o.ratio}`;
  const tag = o.method === 'manual' ? `l${o.layers!.join('-')}` : `${o.method}-${budgetTag}${comp === 'scp' ? '' : comp === 'ls' ? '-ls' : '-noscp'}`;
  const out = a.out ?? defaultOutDir(pkg.root, tag);
  if (fs.existsSync(out) && !a.overwrite) throw new Error(`${out} already exists; choose another --out or pass --overwrite`);
  const cs = await CalibrationSession.open(pkg, { threads: a.threads, execution: a.execution, device: a.device });
  hooks.log?.(`decoder execution: ${cs.execution.reason}`);
  // Beside the output folder, so re-running the same command resumes a killed calibration.
  const checkpoint = path.join(path.dirname(path.resolve(out)), `.${path.basename(out)}.calibration.json`);
  try {
    const timings: Record<string, number> = {};
    let t = Date.now();
    const stats = await runCalibration(cs, samples, o, hooks, { checkpoint });
    timings.calibrateSeconds = (Date.now() - t) / 1000;
    t = Date.now();
    const res: JobResult = await pruneWithStats(pkg, cs, samples, stats, o, { outDir: out, overwrite: a.overwrite, calibFile: path.resolve(a.calib), heldOut: split.heldOut, heldOutInCalibration: !disjoint, threads: a.threads, device: a.device }, hooks, timings);
    fs.rmSync(checkpoint, { force: true });
    return {
      out: res.outDir,
      removed: res.report.removed,
      ratio: res.report.removed.length / res.report.model.numLayers,
      numLayers: res.report.output.numLayers,
      method: o.method,
      scp: comp === 'scp' && res.report.compensationCheck?.applied !== false,
      compensation: res.report.compensationCheck?.applied === false ? 'none' : comp,
      note: methodNote(o),
      skipCost: res.report.layers.filter((l) => l.skipCost).map((l) => ({ layer: l.index, kl: l.skipCost!.kl, agreement: l.skipCost!.agreement })),
      compensationNote: res.report.compensationCheck?.note,
      report: path.join(res.outDir, 'short-lvlm-report.json'),
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    await cs.dispose();
  }
}

export interface BenchArgs {
  models: string[];
  eval: string;
  samples?: number;
  threads?: number;
  device?: Device;
}

export async function benchJob(a: BenchArgs, hooks: JobHooks = {}): Promise<ModelBench[]> {
  const items = loadEval(a.eval, a.samples);
  return benchModels(a.models, items, {
    threads: a.threads,
    device: a.device,
    checkCancelled: hooks.checkCancelled,
    onProgress: (p) => hooks.onProgress?.({ stage: 'bench', done: p.done, total: p.total }),
  });
}
