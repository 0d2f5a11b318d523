// Accuracy and speed of one or more packages on an evaluation set, plus how closely each
// pruned model follows the first (original) one: next-token agreement and KL divergence.

import * as fs from 'fs';
import * as path from 'path';
import { EvalItem, evalMessages, normalizeAnswer } from '../data/datasets';
import { OnnxFile } from '../onnx/onnxFile';
import { checkPackageConsistency } from '../package/consistency';
import { ModelPackage, openPackage } from '../package/modelPackage';
import { DecoderRunner, argmax } from '../runtime/decoderRunner';
import { RuntimeOptions } from '../runtime/ort';
import { Frontend, openFrontend } from '../runtime/frontend';
import { relativeAccuracy } from '../../protocol/report';

export interface FamilyScore {
  n: number;
  correct: number;
  accuracy: number;
}

export interface ModelBench {
  model: string;
  numLayers: number;
  accuracy: number;
  families: Record<string, FamilyScore>;
  samplesPerSecond: number;
  prefillMsMean: number;
  decodeMsMean: number;
  sizeBytes: number;
  /** Against the first model benchmarked (absent for the first itself). */
  relativeAccuracy?: number;
  agreement?: number;
  klMean?: number;
  answers: { id: string; family: string; expected: string; predicted: string; correct: boolean }[];
}

export interface BenchProgress {
  model: string;
  done: number;
  total: number;
  /** Seconds left at the mean time per item so far (all models). */
  etaSeconds?: number;
}

function logSoftmax(v: Float32Array): Float64Array {
  let m = -Infinity;
  for (const x of v) m = Math.max(m, x);
  let s = 0;
  for (const x of v) s += Math.exp(x - m);
  const lse = m + Math.log(s);
  return Float64Array.from(v, (x) => x - lse);
}

/** KL(p || q) from logits, in nats, computed in float64. */
export function klFromLogits(p: Float32Array, q: Float32Array): number {
  const lp = logSoftmax(p);
  const lq = logSoftmax(q);
  let kl = 0;
  for (let i = 0; i < lp.length; i++) kl += Math.exp(lp[i]) * (lp[i] - lq[i]);
  return Math.max(0, kl);
}

export function packageBytes(root: string, files: string[]): number {
  return files.reduce((a, f) => a + fs.statSync(path.join(root, f)).size, 0);
}

/** A package ready to answer: checked, its frontend and its decoder open. */
export interface Answerer {
  pkg: ModelPackage;
  root: string;
  numLayers: number;
  sizeBytes: number;
  frontend: Frontend;
  decoder: DecoderRunner;
}

/** Opens a package for answering questions; the caller disposes `decoder` and `frontend`. */
export async function openAnswerer(model: string, opts: RuntimeOptions = {}): Promise<Answerer> {
  const pkg = openPackage(model);
  const src = OnnxFile.open(pkg.decoder);
  let numLayers: number;
  try {
    checkPackageConsistency(pkg, src);
    numLayers = new Set(src.graph.input.filter((v) => /^past/.test(v.name)).map((v) => v.name.replace(/\.(key|value)$/, ''))).size;
  } finally {
    src.close();
  }
  const frontend = await openFrontend(pkg, opts);
  let decoder: DecoderRunner;
  try {
    decoder = await DecoderRunner.fromFile(pkg.decoder, opts, { kvHeads: pkg.text.numKvHeads, headDim: pkg.text.headDim });
  } catch (e) {
    await frontend.dispose();
    throw e;
  }
  const sizeBytes = packageBytes(pkg.root, pkg.layout === 'single' ? [path.relative(pkg.root, pkg.decoder)] : pkg.files);
  return { pkg, root: pkg.root, numLayers, sizeBytes, frontend, decoder };
}

interface Loaded extends Answerer {
  answers: ModelBench['answers'];
  fam: Record<string, FamilyScore>;
  ms: number;
  prefill: number;
  decode: number;
  agree: number;
  kl: number;
}

/**
 * Benchmarks the models side by side: every item is answered by each model in turn, so a
 * change in machine load affects all of them alike. The first model is the reference for
 * relative accuracy, next-token agreement and KL divergence.
 */
export async function benchModels(
  models: string[],
  items: EvalItem[],
  opts: RuntimeOptions & { maxNewTokens?: number; onProgress?: (p: BenchProgress) => void; checkCancelled?: () => void } = {},
): Promise<ModelBench[]> {
  const loaded: Loaded[] = [];
  try {
    for (const m of models) {
      const a = await openAnswerer(m, opts);
      loaded.push({ ...a, answers: [], fam: {}, ms: 0, prefill: 0, decode: 0, agree: 0, kl: 0 });
    }
    const t0 = performance.now();
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      let ref: Float32Array | undefined;
      for (const l of loaded) {
        opts.checkCancelled?.();
        const t0 = performance.now();
        const enc = await l.frontend.encode(evalMessages(item), item.image, true);
        const g = await l.frontend.generate(enc, l.decoder, opts.maxNewTokens ?? 4);
        l.ms += performance.now() - t0;
        l.prefill += g.prefillMs;
        l.decode += g.decodeMs;
        const predicted = normalizeAnswer(g.text);
        const correct = predicted === normalizeAnswer(item.answer);
        l.answers.push({ id: item.id, family: item.family, expected: item.answer, predicted, correct });
        const f = (l.fam[item.family] ??= { n: 0, correct: 0, accuracy: 0 });
        f.n++;
        if (correct) f.correct++;
        if (!ref) ref = g.firstLogits;
        else {
          if (argmax(ref) === argmax(g.firstLogits)) l.agree++;
          l.kl += klFromLogits(ref, g.firstLogits);
        }
      }
      const perItem = (performance.now() - t0) / 1000 / (i + 1);
      opts.onProgress?.({ model: models.join(', '), done: i + 1, total: items.length, etaSeconds: perItem * (items.length - i - 1) });
    }
    const n = items.length;
    const results = loaded.map((l, k): ModelBench => {
      for (const f of Object.values(l.fam)) f.accuracy = f.correct / f.n;
      const accuracy = l.answers.filter((a) => a.correct).length / n;
      return {
        model: l.root,
        numLayers: l.numLayers,
        accuracy,
        families: l.fam,
        samplesPerSecond: n / (l.ms / 1000),
        prefillMsMean: l.prefill / n,
        decodeMsMean: l.decode / n,
        sizeBytes: l.sizeBytes,
        ...(k > 0 ? { agreement: l.agree / n, klMean: l.kl / n } : {}),
        answers: l.answers,
      };
    });
    for (const r of results.slice(1)) r.relativeAccuracy = relativeAccuracy(r.accuracy, results[0].accuracy);
    return results;
  } finally {
    for (const l of loaded) {
      await l.decoder.dispose();
      await l.frontend.dispose();
    }
  }
}
