// Measured output effects of skipping layers (issue 10): the held-out split of the calibration
// set, the answer positions (the first answer token of each sample's first user turn), trials
// that run the model with a set of layers removed, per-layer skip cost, and the greedy search
// with its held-out quality curve.

import { CalibSample } from '../data/datasets';
import { klFromLogits } from '../bench/evaluate';
import { removeLayers } from '../graph/surgery';
import { withReplacements } from '../package/variantEdits';
import { ModelProto } from '../onnx/proto';
import { argmax, DecoderRunner } from '../runtime/decoderRunner';
import { HiddenState, LayerwiseDecoder } from '../runtime/layerwise';
import { Feeds, RuntimeOptions } from '../runtime/ort';
import { Encoded } from '../runtime/vlmFrontend';

/** An answer prompt with the decoder feeds (KV cache left out) its frontend prepared: trials run them in pieces or whole. */
export type Prompt = Encoded & { feeds: Feeds };
import { CurvePoint, OutputEffect } from '../../protocol/report';
import { CalibrationSession, Progress } from './calibrate';
import { greedySelect } from './greedy';

/** A fixed 32-bit mix of the sample index (murmur3 finaliser): the split's pseudo-random order. */
function mixIndex(i: number): number {
  let h = (i + 0x9e3779b9) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * Deterministic pseudo-random split: round(f N) samples, chosen by a fixed hash of their index,
 * are held out; both slices keep the file's order. Not a stride: calibration files often cycle
 * through task families (the bundled one does, with period 4), and every k-th sample would then
 * hold out a single family.
 */
export function splitHoldout<T>(samples: T[], fraction: number): { select: T[]; heldOut: T[]; heldOutIndices: number[] } {
  if (!(fraction >= 0 && fraction < 1)) throw new Error(`holdout must be in [0, 1), got ${fraction}`);
  const n = Math.round(fraction * samples.length);
  const held = new Set(samples.map((_, i) => i).sort((a, b) => mixIndex(a) - mixIndex(b) || a - b).slice(0, n));
  const select: T[] = [];
  const heldOut: T[] = [];
  samples.forEach((s, i) => (held.has(i) ? heldOut : select).push(s));
  if (fraction > 0 && (!heldOut.length || !select.length)) throw new Error(`holdout ${fraction} of ${samples.length} calibration samples leaves an empty slice; use more samples`);
  return { select, heldOut, heldOutIndices: [...held].sort((a, b) => a - b) };
}

/** The prompt whose last position predicts the first answer token: messages up to the first user turn. */
export async function encodeAnswerPrompt(cs: CalibrationSession, s: CalibSample): Promise<Encoded> {
  const first = s.messages.findIndex((m) => m.role === 'user');
  if (first < 0) throw new Error(`calibration sample ${s.id} has no user turn`);
  return cs.frontend.encode(s.messages.slice(0, first + 1), s.image, true);
}

export async function encodePrompts(cs: CalibrationSession, samples: CalibSample[]): Promise<Prompt[]> {
  const out: Prompt[] = [];
  for (const s of samples) {
    const enc = await encodeAnswerPrompt(cs, s);
    out.push({ ...enc, feeds: await cs.frontend.prepare(enc, cs.view) });
  }
  return out;
}

export function compareLogits(ref: Float32Array[], got: Float32Array[]): OutputEffect {
  let kl = 0;
  let agree = 0;
  ref.forEach((r, i) => {
    kl += klFromLogits(r, got[i]);
    if (argmax(r) === argmax(got[i])) agree++;
  });
  return { kl: kl / ref.length, agreement: agree / ref.length };
}

/**
 * Runs the decoder with a set of layers removed on encoded prompts and returns the logits at
 * their last position. Plain removals go through the layer-wise runner from cached hidden
 * states: the original model's residual stream entering each layer is kept per prompt set, so a
 * trial removing S re-runs only the layers from min(S) on (skipping S) and the head. Trials with
 * replaced weights (a compensation check) rebuild the graph with the engine's own surgery and
 * run it whole. `layersRun` counts decoder layers executed, for forward-pass equivalents.
 */
export class TrialRunner {
  trials = 0;
  layersRun = 0;
  samplesRun = 0;
  private lw?: LayerwiseDecoder;
  private readonly cache = new WeakMap<Prompt[], Map<number, HiddenState[]>>();

  constructor(
    private readonly cs: CalibrationSession,
    private readonly fallback: { kvHeads?: number; headDim?: number },
    private readonly opts: RuntimeOptions = {},
  ) {}

  async dispose(): Promise<void> {
    await this.lw?.dispose();
    this.lw = undefined;
  }

  private decoder(): LayerwiseDecoder {
    this.lw ??= LayerwiseDecoder.open(this.cs.source.model, this.cs.source, {
      ...this.opts,
      fallback: this.fallback,
      // A model run layer-wise for memory keeps one piece open at a time here too.
      ...(this.cs.execution?.execution === 'layerwise' ? { maxOpenBytes: 'one-piece' as const } : {}),
    });
    return this.lw;
  }

  /** The original model's states entering `layer` for every prompt, from the nearest cached layer below. */
  private async statesAt(prompts: Prompt[], layer: number): Promise<HiddenState[]> {
    const lw = this.decoder();
    let byLayer = this.cache.get(prompts);
    if (!byLayer) {
      byLayer = new Map();
      const s0: HiddenState[] = [];
      for (const p of prompts) s0.push(await lw.prologue(p.feeds));
      byLayer.set(0, s0);
      this.cache.set(prompts, byLayer);
    }
    const hit = byLayer.get(layer);
    if (hit) return hit;
    const below = Math.max(...[...byLayer.keys()].filter((k) => k <= layer));
    const states = await lw.runMany(byLayer.get(below)!, layer);
    this.layersRun += (layer - below) * prompts.length;
    byLayer.set(layer, states);
    return states;
  }

  async logits(removed: number[], prompts: Prompt[], replace?: Map<string, Float64Array>, checkCancelled?: () => void): Promise<Float32Array[]> {
    checkCancelled?.();
    const L = this.cs.numLayers;
    this.trials++;
    this.samplesRun += prompts.length;
    if (replace?.size) return this.wholeGraph(removed, prompts, replace, checkCancelled);
    const lw = this.decoder();
    const from = removed.length ? Math.min(...removed) : L;
    const states = await this.statesAt(prompts, from);
    const ends = await lw.runMany(states, L, { skip: removed });
    this.layersRun += (L - from - removed.filter((l) => l >= from).length) * prompts.length;
    const out: Float32Array[] = [];
    for (const e of ends) {
      checkCancelled?.();
      out.push((await lw.logits(e)).logits);
    }
    return out;
  }

  private async wholeGraph(removed: number[], prompts: Prompt[], replace: Map<string, Float64Array>, checkCancelled?: () => void): Promise<Float32Array[]> {
    let model: ModelProto = this.cs.source.model;
    // Quantised weights (a package without a float decoder) are re-encoded in their scheme.
    if (replace.size) model = withReplacements(this.cs.source, replace);
    if (removed.length) model = removeLayers(model, removed).model;
    const runner = await DecoderRunner.fromModel(model, this.cs.source, this.opts, this.fallback);
    try {
      const out: Float32Array[] = [];
      for (const p of prompts) {
        checkCancelled?.();
        out.push((await runner.run(p.feeds)).lastLogits);
      }
      this.layersRun += (this.cs.numLayers - removed.length) * prompts.length;
      return out;
    } finally {
      await runner.dispose();
    }
  }

  /** Forward-pass equivalents spent so far, per distinct calibration sample. */
  forwardPassesPerSample(distinctSamples: number): number {
    return this.layersRun / this.cs.numLayers / Math.max(1, distinctSamples);
  }
}

export interface Measured {
  reference: Float32Array[];
  prompts: Prompt[];
}

export async function measureSet(tr: TrialRunner, prompts: Prompt[], checkCancelled?: () => void): Promise<Measured> {
  return { prompts, reference: await tr.logits([], prompts, undefined, checkCancelled) };
}

export async function skipCosts(tr: TrialRunner, m: Measured, numLayers: number, hooks: { onProgress?: (p: Progress) => void; checkCancelled?: () => void } = {}): Promise<OutputEffect[]> {
  const out: OutputEffect[] = [];
  for (let l = 0; l < numLayers; l++) {
    out.push(compareLogits(m.reference, await tr.logits([l], m.prompts, undefined, hooks.checkCancelled)));
    hooks.onProgress?.({ stage: 'skip cost', done: l + 1, total: numLayers });
  }
  return out;
}

export interface GreedyRun {
  curve: CurvePoint[];
}

/** Greedy on the selection samples (mean KL), each point of the order measured on the held-out samples. */
export async function greedyCurve(
  tr: TrialRunner,
  sel: Measured,
  held: Measured,
  o: { candidates: number[]; steps: number; topM?: number; proxy?: Array<number | null> },
  hooks: { onProgress?: (p: Progress) => void; checkCancelled?: () => void } = {},
): Promise<GreedyRun> {
  const totalTrials = Array.from({ length: o.steps }, (_, k) => Math.min(o.topM ?? Infinity, o.candidates.length - k)).reduce((a, b) => a + b, 0);
  let done = 0;
  const steps = await greedySelect(async (set) => {
    const e = compareLogits(sel.reference, await tr.logits(set, sel.prompts, undefined, hooks.checkCancelled));
    hooks.onProgress?.({ stage: 'greedy', done: ++done, total: totalTrials });
    return e.kl;
  }, o);
  const curve: CurvePoint[] = [];
  for (const s of steps) {
    const e = compareLogits(held.reference, await tr.logits(s.removed, held.prompts, undefined, hooks.checkCancelled));
    curve.push({ removed: s.removed, added: s.added, selectionKl: s.cost, kl: e.kl, agreement: e.agreement });
  }
  return { curve };
}
