// The engine's entry points, shared by the CLI and the extension's engine process: each job
// takes plain JSON-able arguments (the EngineApi of src/protocol) and reports progress
// through hooks. Every check that can fail on the user's input runs before calibration.

import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { toBenchmarkReport, attachBenchmark } from './bench/attach';
import { benchModels } from './bench/evaluate';
import { loadCalibration, loadEval } from './data/datasets';
import { discoverLayers } from './graph/layers';
import { CalibrationSession } from './method/calibrate';
import { applyRecipe, compensationOf, DEFAULT_HOLDOUT, DEFAULT_OPTIONS, hasBudget, JobHooks, JobResult, methodNote, pruneWithStats, runCalibration } from './method/shortLvlm';
import { splitHoldout } from './method/outputAware';
import { checkOutputLocation } from './outputLocation';
import { checkLayerIndices } from './graph/surgery';
import { OnnxFile } from './onnx/onnxFile';
import { checkPackageConsistency } from './package/consistency';
import { checkLoadsInRuntime } from './runtime/loadCheck';
import { ModelPackage, openPackage } from './package/modelPackage';
import { writePrunedPackage } from './package/writePackage';
import type { BenchArgs, BenchOutcome, PruneArgs, PruneSummary } from '../protocol/engineApi';
import { outputName, outputTag, recipeTag, REPORT_FILE } from '../protocol/files';
import { checkAgainstModel } from '../protocol/options';
import { PruneOptions, Recipe, RECIPE_FORMAT } from '../protocol/report';

export type { BenchArgs, BenchOutcome, PruneArgs, PruneSummary };

/**
 * Where a calibration for output folder `out` keeps its running sums: in the system's temporary
 * folder, keyed by the output path, so that re-running the same command resumes a killed
 * calibration while nothing is left in the user's folders.
 */
export function calibrationCheckpoint(out: string): string {
  const key = crypto.createHash('sha256').update(path.resolve(out)).digest('hex').slice(0, 24);
  const dir = path.join(os.tmpdir(), 'short-lvlm-resume');
  fs.mkdirSync(dir, { recursive: true });
  return path.join(dir, `${key}.json`);
}

export function defaultOutDir(root: string, tag: string): string {
  return path.join(path.dirname(root), outputName(path.basename(root), tag));
}

/** Decoder layers as the graph has them (the config may disagree; the graph is what is pruned). */
function graphLayerCount(pkg: ModelPackage): number {
  const f = OnnxFile.open(pkg.decoder);
  try {
    return discoverLayers(f.graph).layers.length;
  } finally {
    f.close();
  }
}

/** A recipe file, with errors that name it. */
export function readRecipe(file: string): Recipe {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(`recipe ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a folder, not a recipe.json' : (e as Error).message}`);
  }
  let r: Recipe;
  try {
    r = JSON.parse(text) as Recipe;
  } catch (e) {
    throw new Error(`recipe ${file} is not valid JSON (${(e as Error).message})`);
  }
  if (!r || typeof r !== 'object' || r.format !== RECIPE_FORMAT) throw new Error(`recipe ${file} is not a Short-LVLM recipe (format should be "${RECIPE_FORMAT}")`);
  const ints = (a: unknown) => Array.isArray(a) && a.every((x) => Number.isSafeInteger(x) && x >= 0);
  if (!ints(r.removed) || !Array.isArray(r.compensation) || !r.model || typeof r.model.bytes !== 'number') {
    throw new Error(`recipe ${file} is incomplete or damaged (removed, compensation and model are required)`);
  }
  return r;
}

/**
 * The decoder is read and validated (shapes, data, topology, config against graph) and its
 * weightless graph loaded by onnxruntime before any calibration or output: a broken package
 * is refused up front instead of being passed on.
 */
async function checkDecoder(pkg: ModelPackage): Promise<void> {
  const file = OnnxFile.open(pkg.decoder);
  try {
    checkPackageConsistency(pkg, file);
    await checkLoadsInRuntime(file.model, pkg.decoder);
  } finally {
    file.close();
  }
}

export async function pruneJob(a: PruneArgs, hooks: JobHooks = {}): Promise<PruneSummary> {
  const started = Date.now();
  const pkg = openPackage(a.model);
  await checkDecoder(pkg);
  const summary = (outDir: string, removed: number[], numLayers: number, method: string, scp: boolean, report?: string, warnings?: string[]): PruneSummary => ({
    out: outDir,
    removed,
    ratio: removed.length / (numLayers + removed.length),
    numLayers,
    method,
    scp,
    report,
    ...(warnings?.length ? { warnings } : {}),
    seconds: (Date.now() - started) / 1000,
  });
  if (a.recipe) {
    const recipe = readRecipe(a.recipe);
    const r = applyRecipe(pkg, recipe, { outDir: a.out ?? defaultOutDir(pkg.root, recipeTag(recipe.removed)), overwrite: a.overwrite });
    return { ...summary(r.outDir, r.removed, r.numLayers, 'recipe', recipe.compensation.length > 0), variants: r.variants };
  }
  const o: PruneOptions = { ...DEFAULT_OPTIONS, ...a.options };
  if (o.layers?.length) o.method = 'manual';
  // Every choice checked against the model before any calibration or output (the API takes
  // JSON: a layer list must be safe integers before anything is sized by it).
  const numLayers = graphLayerCount(pkg);
  if (o.layers !== undefined && !Array.isArray(o.layers)) throw new Error('the layers to remove must be a list of layer indices');
  checkAgainstModel(o, numLayers);
  if (o.layers !== undefined) checkLayerIndices(o.layers, numLayers);
  const out = a.out ?? defaultOutDir(pkg.root, outputTag(o));
  if (fs.existsSync(out) && !a.overwrite) throw new Error(`${out} already exists; choose another --out or pass --overwrite`);
  checkOutputLocation(out);
  if (o.method === 'manual' && !o.scp && !a.calib) {
    // An explicit choice without compensation needs no calibration at all (with --calib, the
    // calibrated path below still writes a report explaining the hand-made choice).
    const r = writePrunedPackage(pkg, { remove: o.layers!, outDir: out, overwrite: a.overwrite, checkCancelled: hooks.checkCancelled });
    return { ...summary(r.outDir, r.removed, r.numLayers, 'manual', false), variants: r.variants };
  }
  if (!a.calib) throw new Error(o.method === 'manual' ? 'compensating a hand-made choice needs --calib (or pass --no-scp)' : 'automatic pruning needs calibration data: pass --calib <file> (LLaVA conversation JSON/JSONL), or --layers with --no-scp');
  const all = loadCalibration(a.calib, o.samples);
  const comp = compensationOf(o);
  const cs = await CalibrationSession.open(pkg, { threads: a.threads, execution: a.execution, device: a.device });
  hooks.log?.(`decoder execution: ${cs.execution.reason}`);
  const checkpoint = calibrationCheckpoint(out);
  try {
    // After the package's front end opened: a package the engine cannot run is named before a too-small sample.
    // Output-aware choices (greedy, a budget) calibrate and choose on one slice and measure on
    // the other; the score-ranked methods keep calibrating on every sample as published, and the
    // held-out slice then only feeds the report's skip costs.
    const disjoint = o.method === 'greedy' || hasBudget(o);
    const fraction = o.holdout ?? DEFAULT_HOLDOUT;
    const heldCount = Math.round(fraction * all.length);
    // The score-ranked methods need no held-out slice: with too few samples for one, they skip the measurement.
    const split = disjoint || (heldCount >= 1 && heldCount < all.length) ? splitHoldout(all, fraction) : { select: all, heldOut: [] as typeof all };
    const samples = disjoint ? split.select : all;
    const timings: Record<string, number> = {};
    const t = Date.now();
    const stats = await runCalibration(cs, samples, o, hooks, { checkpoint });
    timings.calibrateSeconds = (Date.now() - t) / 1000;
    const res: JobResult = await pruneWithStats(pkg, cs, samples, stats, o, { outDir: out, overwrite: a.overwrite, calibFile: path.resolve(a.calib), heldOut: split.heldOut, heldOutInCalibration: !disjoint, threads: a.threads, device: a.device }, hooks, timings);
    fs.rmSync(checkpoint, { force: true });
    const applied = res.report.compensationCheck?.applied === false ? 'none' : comp;
    // SCP may be skipped for a family (a norm after the projected weight): say so, not "+ SCP".
    const scp = comp === 'scp' && res.recipe.compensation.length > 0;
    return {
      ...summary(res.outDir, res.report.removed, res.report.output.numLayers, o.method, scp, path.join(res.outDir, REPORT_FILE), res.report.warnings),
      compensation: applied === 'scp' && !scp ? 'none' : applied,
      note: methodNote(o),
      skipCost: res.report.layers.filter((l) => l.skipCost).map((l) => ({ layer: l.index, kl: l.skipCost!.kl, agreement: l.skipCost!.agreement })),
      compensationNote: res.report.compensationCheck?.note,
      variants: res.report.output.variants,
    };
  } finally {
    await cs.dispose();
  }
}

/**
 * Benchmarks the models side by side (the first is the reference) and, unless `save` is
 * false, stores the comparison in the report of every benchmarked package that has one.
 */
export async function benchJob(a: BenchArgs, hooks: JobHooks = {}): Promise<BenchOutcome> {
  const items = loadEval(a.eval, a.samples);
  const measured = await benchModels(a.models, items, {
    threads: a.threads,
    device: a.device,
    checkCancelled: hooks.checkCancelled,
    onProgress: (p) => hooks.onProgress?.({ stage: 'bench', done: p.done, total: p.total }),
  });
  const benchmark = toBenchmarkReport(measured, path.resolve(a.eval));
  hooks.checkCancelled?.();
  const reports = a.save === false ? [] : attachBenchmark(a.models, benchmark, (file, e) => hooks.log?.(`could not add the benchmark to ${file}: ${e.message}`));
  return { benchmark, reports };
}
