// The paper's ablation on one model: layer choices by TIS cosine (with and without SCP),
// all-token cosine, text-only and visual-only cosine, random dropping over several seeds
// and, where the candidate set is small enough, every subset (the upper bound), for each
// ratio. One calibration pass serves every method; eval items are encoded once and each
// variant is scored in memory (no package written). Answers are one word, one token in
// the tokenizers this targets, so accuracy is scored on the greedy first token.

import { CalibSample, EvalItem, evalMessages, loadCalibration, loadEval, normalizeAnswer } from '../data/datasets';
import { CalibrationSession } from '../method/calibrate';
import { compensate } from '../method/scp';
import { lsCompensate } from '../method/lsCompensation';
import { compareLogits, encodePrompts, greedyCurve, Measured, measureSet, splitHoldout, TrialRunner } from '../method/outputAware';
import { Compensation } from '../../protocol/report';
import { DEFAULT_HOLDOUT, DEFAULT_LS_RIDGE, DEFAULT_OPTIONS, JobHooks, planFromStats, runCalibration } from '../method/shortLvlm';
import { defaultCandidates, layersToRemove, pairPartners, selectRandom } from '../method/selection';
import { removeLayers } from '../graph/surgery';
import { withReplacements } from '../package/variantEdits';
import { openPackage } from '../package/modelPackage';
import { argmax, DecoderRunner } from '../runtime/decoderRunner';
import { Feeds } from '../runtime/ort';
import { ModelProto } from '../onnx/proto';
import type { SweepArgs, SweepOutcome } from '../../protocol/engineApi';
import { checkAgainstModel } from '../../protocol/options';
import { Method, PruneOptions, relativeAccuracy, SweepRow } from '../../protocol/report';
import { klFromLogits } from './evaluate';
import { table } from './format';

export type { SweepArgs };

/** The sweep's result, as the engine API declares it. */
export type SweepResult = SweepOutcome;

interface MethodSpec {
  method: Method;
  comp: Compensation;
  /** Greedy candidates: 'half' = the default last half, 'wide' = every layer but the first and last. */
  range?: 'half' | 'wide';
}

// Compensation marked `ls` (and SCP on a non-paper choice) falls back to plain removal when it
// raises the held-out KL, as the prune job does; `svl` keeps SCP unconditionally (the paper's method).
export const METHOD_SPECS: Record<string, MethodSpec> = {
  svl: { method: 'svl', comp: 'scp' },
  'svl-noscp': { method: 'svl', comp: 'none' },
  'svl-ls': { method: 'svl', comp: 'ls' },
  cosine: { method: 'cosine', comp: 'none' },
  'cosine-scp': { method: 'cosine', comp: 'scp' },
  text: { method: 'text', comp: 'none' },
  visual: { method: 'visual', comp: 'none' },
  greedy: { method: 'greedy', comp: 'none', range: 'half' },
  'greedy-ls': { method: 'greedy', comp: 'ls', range: 'half' },
  'greedy-scp': { method: 'greedy', comp: 'scp', range: 'half' },
  'greedy-wide': { method: 'greedy', comp: 'none', range: 'wide' },
  'greedy-wide-ls': { method: 'greedy', comp: 'ls', range: 'wide' },
};
const PAPER_METHODS = ['svl', 'svl-noscp', 'cosine', 'cosine-scp', 'text', 'visual'];

function combinations(range: number[], k: number): number[][] {
  const out: number[][] = [];
  const rec = (start: number, acc: number[]) => {
    if (acc.length === k) return void out.push([...acc]);
    for (let i = start; i <= range.length - (k - acc.length); i++) rec(i + 1, [...acc, range[i]]);
  };
  rec(0, []);
  return out;
}

function binom(n: number, k: number): number {
  let r = 1;
  for (let i = 1; i <= k; i++) r = (r * (n - k + i)) / i;
  return Math.round(r);
}

interface Scored {
  accuracy: number;
  families: Record<string, number>;
  logits: Float32Array[];
}

export async function sweepJob(a: SweepArgs, hooks: JobHooks = {}): Promise<SweepResult> {
  const t0 = Date.now();
  const unknown = (a.methods ?? []).find((m) => !METHOD_SPECS[m]);
  if (unknown) throw new Error(`unknown sweep method "${unknown}" (known: ${Object.keys(METHOD_SPECS).join(', ')})`);
  const pkg = openPackage(a.model);
  const samples: CalibSample[] = loadCalibration(a.calib, a.samples);
  const items: EvalItem[] = loadEval(a.eval, a.evalSamples);
  let trials: TrialRunner | undefined;
  const cs = await CalibrationSession.open(pkg, { threads: a.threads, device: a.device, execution: a.execution });
  try {
    const L = cs.numLayers;
    const candidates = defaultCandidates(L);
    const base: PruneOptions = { ...DEFAULT_OPTIONS, candidates };
    for (const ratio of a.ratios) checkAgainstModel({ ...base, ratio }, L); // before the calibration pass
    const stats = await runCalibration(cs, samples, base, hooks);

    // Each item's decoder inputs, as the family's class builds them, serve every variant.
    const encoded: Feeds[] = [];
    for (let i = 0; i < items.length; i++) {
      const enc = await cs.frontend.encode(evalMessages(items[i]), items[i].image, true);
      encoded.push(await cs.frontend.prepare(enc, cs.view));
      hooks.onProgress?.({ stage: 'encode', done: i + 1, total: items.length });
    }
    const score = async (model: ModelProto, ref?: Scored): Promise<Scored & { agreement?: number; klMean?: number }> => {
      const runner = await DecoderRunner.fromModel(model, cs.source, { threads: a.threads, device: a.device }, { kvHeads: pkg.text.numKvHeads, headDim: pkg.text.headDim });
      try {
        const fam: Record<string, { n: number; c: number }> = {};
        const logits: Float32Array[] = [];
        let correct = 0;
        let agree = 0;
        let kl = 0;
        for (let i = 0; i < items.length; i++) {
          hooks.checkCancelled?.();
          const step = await runner.run(encoded[i]);
          const tok = argmax(step.lastLogits);
          const ok = normalizeAnswer(cs.frontend.decode([tok])) === normalizeAnswer(items[i].answer);
          const f = (fam[items[i].family] ??= { n: 0, c: 0 });
          f.n++;
          if (ok) {
            f.c++;
            correct++;
          }
          if (ref) {
            if (argmax(ref.logits[i]) === tok) agree++;
            kl += klFromLogits(ref.logits[i], step.lastLogits);
          } else logits.push(step.lastLogits);
        }
        const families = Object.fromEntries(Object.entries(fam).map(([k, v]) => [k, v.c / v.n]));
        return { accuracy: correct / items.length, families, logits, ...(ref ? { agreement: agree / items.length, klMean: kl / items.length } : {}) };
      } finally {
        await runner.dispose();
      }
    };

    const full = await score(cs.source.model);
    const rows: SweepRow[] = [];
    const exhaustive: SweepResult['exhaustive'] = {};
    const random: SweepResult['random'] = {};
    const methods = a.methods ?? PAPER_METHODS;
    const limit = a.exhaustiveLimit ?? 100;
    const seeds = a.randomSeeds ?? 3;
    const range = Array.from({ length: candidates[1] - candidates[0] + 1 }, (_, i) => candidates[0] + i);
    for (const m of methods) if (!METHOD_SPECS[m]) throw new Error(`unknown sweep method "${m}" (known: ${Object.keys(METHOD_SPECS).join(', ')})`);
    // Output-aware variants choose on one slice of the calibration set and check compensation
    // on the other (the score-ranked ones keep every sample, as published).
    const outputAware = methods.some((m) => METHOD_SPECS[m].method === 'greedy' || METHOD_SPECS[m].comp === 'ls');
    const split = splitHoldout(samples, DEFAULT_HOLDOUT);
    const tr = new TrialRunner(cs, { kvHeads: pkg.text.numKvHeads, headDim: pkg.text.headDim }, { threads: a.threads, device: a.device });
    trials = tr;
    let held: Measured | undefined;
    let sel: Measured | undefined;
    if (outputAware) {
      held = await measureSet(tr, await encodePrompts(cs, split.heldOut), hooks.checkCancelled);
      sel = await measureSet(tr, await encodePrompts(cs, split.select), hooks.checkCancelled);
    }
    const maxN = Math.max(...a.ratios.map((r) => layersToRemove(r, L)));
    const greedy: NonNullable<SweepResult['greedy']> = {};
    for (const key of new Set(methods.map((m) => METHOD_SPECS[m]).filter((sp) => sp.method === 'greedy').map((sp) => sp.range ?? 'half'))) {
      const cand: [number, number] = key === 'wide' ? [1, L - 2] : candidates;
      const cr = Array.from({ length: cand[1] - cand[0] + 1 }, (_, i) => cand[0] + i);
      const t = Date.now();
      const before = { trials: tr.trials, layers: tr.layersRun };
      const run = await greedyCurve(tr, sel!, held!, { candidates: cr, steps: maxN, proxy: planFromStats(stats, { ...base, method: 'svl' }).scores }, hooks);
      greedy[key] = { candidates: cand, seconds: (Date.now() - t) / 1000, trials: tr.trials - before.trials, forwardPassesPerSample: (tr.layersRun - before.layers) / L / samples.length, curve: run.curve };
    }
    const jobs: Array<{ ratio: number; label: string; removed: number[]; comp: Compensation; fallback: boolean }> = [];
    for (const ratio of a.ratios) {
      const n = layersToRemove(ratio, L);
      for (const m of methods) {
        const spec = METHOD_SPECS[m];
        const removed = spec.method === 'greedy' ? greedy[spec.range ?? 'half'].curve[n - 1].removed : planFromStats(stats, { ...base, ratio, method: spec.method }).removed;
        jobs.push({ ratio, label: m, removed, comp: spec.comp, fallback: spec.comp === 'ls' || (spec.comp === 'scp' && spec.method === 'greedy') });
      }
      for (let s = 0; s < seeds; s++) jobs.push({ ratio, label: `random#${s}`, removed: selectRandom(n, candidates, L, 1000 + s), comp: 'none', fallback: false });
      if (binom(range.length, n) <= limit) for (const c of combinations(range, n)) jobs.push({ ratio, label: 'exhaustive', removed: c, comp: 'none', fallback: false });
    }
    let done = 0;
    for (const j of jobs) {
      let model = cs.source.model;
      let replace = new Map<string, Float64Array>();
      const fitOn = j.fallback ? split.select : samples;
      if (j.comp === 'scp') replace = (await compensate(cs, fitOn, pairPartners(j.removed, L), { target: base.scpTarget, features: base.features, topP: base.topP, keepMode: base.keepMode, checkCancelled: hooks.checkCancelled })).replace;
      else if (j.comp === 'ls') replace = (await lsCompensate(cs, fitOn, j.removed, { ridge: DEFAULT_LS_RIDGE, checkCancelled: hooks.checkCancelled })).replace;
      let fellBack = false;
      if (j.fallback && replace.size && held) {
        const without = compareLogits(held.reference, await tr.logits(j.removed, held.prompts, undefined, hooks.checkCancelled));
        const withC = compareLogits(held.reference, await tr.logits(j.removed, held.prompts, replace, hooks.checkCancelled));
        if (!(withC.kl < without.kl)) {
          replace = new Map();
          fellBack = true;
        }
      }
      // Quantised weights (a package without a float decoder) are re-encoded in their scheme.
      if (replace.size) model = withReplacements(cs.source, replace);
      const s = await score(removeLayers(model, j.removed).model, full);
      rows.push({ ratio: j.ratio, method: j.label, scp: j.comp === 'scp' && !fellBack, compensation: fellBack ? 'none' : j.comp, ...(fellBack ? { fellBack } : {}), removed: j.removed, accuracy: s.accuracy, relativeAccuracy: relativeAccuracy(s.accuracy, full.accuracy), families: s.families, agreement: s.agreement, klMean: s.klMean });
      hooks.onProgress?.({ stage: 'sweep', done: ++done, total: jobs.length });
    }
    for (const ratio of a.ratios) {
      const ex = rows.filter((r) => r.ratio === ratio && r.method === 'exhaustive');
      if (ex.length) {
        const sorted = [...ex].sort((x, y) => y.accuracy - x.accuracy);
        exhaustive[String(ratio)] = { subsets: ex.length, best: sorted[0], worst: sorted[sorted.length - 1], mean: ex.reduce((t, r) => t + r.accuracy, 0) / ex.length };
      }
      const rnd = rows.filter((r) => r.ratio === ratio && r.method.startsWith('random#')).map((r) => r.accuracy);
      if (rnd.length) {
        const mean = rnd.reduce((t, x) => t + x, 0) / rnd.length;
        random[String(ratio)] = { seeds: rnd.length, mean, sd: Math.sqrt(rnd.reduce((t, x) => t + (x - mean) ** 2, 0) / rnd.length) };
      }
    }
    const result: SweepResult = {
      model: pkg.root,
      numLayers: L,
      candidates,
      calibSamples: samples.length,
      evalItems: items.length,
      full: { accuracy: full.accuracy, families: full.families },
      rows: rows.filter((r) => r.method !== 'exhaustive'),
      ...(Object.keys(greedy).length ? { greedy } : {}),
      exhaustive,
      random,
      table: '',
      seconds: (Date.now() - t0) / 1000,
    };
    result.table = sweepTable(result, methods);
    return result;
  } finally {
    await trials?.dispose();
    await cs.dispose();
  }
}

export function sweepTable(r: SweepResult, methods: string[]): string {
  const ratios = [...new Set(r.rows.map((x) => x.ratio))];
  const pct = (x: number) => (100 * x).toFixed(1);
  const head = ['method', ...ratios.map((x) => `${Math.round(x * 100)}% (${Math.round(x * r.numLayers)} of ${r.numLayers})`)];
  const body: string[][] = [['full model', ...ratios.map(() => pct(r.full.accuracy))]];
  for (const m of methods) {
    body.push([m, ...ratios.map((q) => {
      const row = r.rows.find((x) => x.ratio === q && x.method === m);
      return row ? `${pct(row.accuracy)}${row.fellBack ? '*' : ''} [${row.removed.join(',')}]` : '-';
    })]);
  }
  body.push([`random (mean±sd)`, ...ratios.map((q) => (r.random[String(q)] ? `${pct(r.random[String(q)].mean)}±${pct(r.random[String(q)].sd)}` : '-'))]);
  body.push(['exhaustive best', ...ratios.map((q) => (r.exhaustive[String(q)] ? `${pct(r.exhaustive[String(q)].best.accuracy)} [${r.exhaustive[String(q)].best.removed.join(',')}]` : '-'))]);
  body.push(['exhaustive mean', ...ratios.map((q) => (r.exhaustive[String(q)] ? pct(r.exhaustive[String(q)].mean) : '-'))]);
  body.push(['exhaustive worst', ...ratios.map((q) => (r.exhaustive[String(q)] ? pct(r.exhaustive[String(q)].worst.accuracy) : '-'))]);
  const notes: string[] = [];
  if (r.rows.some((x) => x.fellBack)) notes.push('* compensation raised the held-out KL: fell back to plain removal');
  for (const [k, g] of Object.entries(r.greedy ?? {})) notes.push(`greedy (${k}, layers ${g.candidates.join('-')}): ${g.trials} trials, ${g.forwardPassesPerSample.toFixed(1)} forward-pass equivalents per calibration sample, ${g.seconds.toFixed(0)} s`);
  return [table([head, ...body]), ...notes].join('\n');
}
