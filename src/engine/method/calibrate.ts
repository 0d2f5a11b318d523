// Pass 1 of Short-LVLM: run calibration samples through the instrumented decoder once and
// fold every per-sample figure into running sums (memory does not grow with the number of
// samples): per-layer input/output cosine on TIS-kept tokens and on all / text / visual
// tokens, TIS histograms per layer and modality, and a few samples' per-token scores.

import { CalibSample } from '../data/datasets';
import { instrumentDecoder, Instrumented, LayerTaps } from '../graph/instrument';
import { AttentionTap } from '../graph/layers';
import { OnnxFile } from '../onnx/onnxFile';
import { checkPackageConsistency } from '../package/consistency';
import { ModelPackage } from '../package/modelPackage';
import { DecoderRunner } from '../runtime/decoderRunner';
import { availableMemory, chooseExecution, Execution, ExecutionChoice, weightBytes } from '../runtime/execution';
import { HiddenState, LayerwiseDecoder } from '../runtime/layerwise';
import { RuntimeOptions, toFloat32, ort } from '../runtime/ort';
import { Frontend, openFrontend, prepareFeeds, PreparedFeeds } from '../runtime/frontend';
import { Encoded, Prefill } from '../runtime/vlmFrontend';
import { calibrationFingerprint, CalibrationStats, CalibrationSums, SampleSums } from './calibSums';
import { attentionFromQK } from './fusedAttention';
import { AttentionMap, headMean, KeepMode } from './tis';

import type { Progress } from '../../protocol/engineApi';

export type { Progress };

export interface CalibrationOptions extends RuntimeOptions {
  topP: number;
  keepMode: KeepMode;
  /** How many samples keep their per-token scores for the report. */
  keepTokenSamples?: number;
  onProgress?: (p: Progress) => void;
  checkCancelled?: () => void;
  /** File holding the running sums after the last completed samples; an existing one of the same run is resumed. */
  checkpoint?: string;
  /** Called when a checkpoint is resumed, with the samples already done. */
  onResume?: (done: number, total: number) => void;
  /** Layer-wise: most samples whose hidden states are in memory at once (default 64). */
  samplesInFlight?: number;
  /** Layer-wise: bytes of hidden states in flight (default a quarter of the available memory, at most 4 GiB). */
  inFlightBytes?: number;
}

export { HIST_EDGES } from './calibSums';
export type { CalibrationStats, LayerSums } from './calibSums';

export interface SessionOptions extends RuntimeOptions {
  /** Whole instrumented graph, layer-wise pieces, or chosen from the decoder size and free memory (default). */
  execution?: Execution;
}

/**
 * Opens what a calibration pass needs: frontend, the decoder (whole instrumented graph, or
 * layer-wise pieces with the same taps) and rotary caches.
 */
export class CalibrationSession {
  private constructor(
    readonly frontend: Frontend,
    readonly source: OnnxFile,
    readonly inst: Instrumented,
    readonly runner: DecoderRunner | undefined,
    readonly layerwise: LayerwiseDecoder | undefined,
    readonly execution: ExecutionChoice,
    readonly decoderPath: string,
    private readonly rope?: { cos: Float32Array; sin: Float32Array; rotaryDim: number },
  ) {}

  static async open(pkg: ModelPackage, opts: SessionOptions = {}, layers?: number[]): Promise<CalibrationSession> {
    const frontend = await openFrontend(pkg, opts);
    let source: OnnxFile | undefined;
    let runner: DecoderRunner | undefined;
    try {
      source = OnnxFile.open(pkg.decoder);
      const inst = instrumentDecoder(source.model, { layers });
      checkPackageConsistency(pkg, source, inst.structure);
      const fallback = { kvHeads: pkg.text.numKvHeads, headDim: pkg.text.headDim };
      const choice = chooseExecution(opts.execution ?? 'auto', weightBytes(source.model));
      let lw: LayerwiseDecoder | undefined;
      if (choice.execution === 'whole') runner = await DecoderRunner.fromModel(inst.model, source, { ...opts, optimization: 'basic' }, fallback);
      else {
        // One piece open at a time: peak memory is the largest piece plus the states in flight.
        lw = LayerwiseDecoder.open(source.model, source, { ...opts, optimization: 'basic', fallback, taps: (k) => layerTapNames(inst.taps[k]), maxOpenBytes: 'one-piece' });
      }
      let rope;
      const tap = inst.structure.layers[0]?.attention;
      // Rotary inside the attention op needs its caches; with separate RotaryEmbedding nodes
      // (or no rotary) the op's query and key inputs are already what it attends with.
      if (tap?.kind === 'qk' && tap.doRotary) {
        const inits = source.initializerMap();
        const cos = tap.cosCache ? inits.get(tap.cosCache) : undefined;
        const sin = tap.sinCache ? inits.get(tap.sinCache) : undefined;
        if (!cos || !sin) throw new Error('fused attention without cos/sin cache initializers: cannot recompute attention for TIS');
        rope = { cos: source.tensorFloat32(cos), sin: source.tensorFloat32(sin), rotaryDim: cos.dims[1] * 2 };
      }
      return new CalibrationSession(frontend, source, inst, runner, lw, choice, pkg.decoder, rope);
    } catch (e) {
      // The instrumented session's folder beside the model goes with it.
      await runner?.dispose().catch(() => undefined);
      source?.close();
      await frontend.dispose().catch(() => undefined);
      throw e;
    }
  }

  async dispose(): Promise<void> {
    try {
      await this.runner?.dispose();
      await this.layerwise?.dispose();
    } finally {
      this.source.close();
      await this.frontend.dispose();
    }
  }

  get numLayers(): number {
    return this.inst.structure.layers.length;
  }

  async encode(s: CalibSample): Promise<Encoded> {
    return this.frontend.encode(s.messages, s.image, false);
  }

  /**
   * Runs one sample's prompt pass, the decoder inputs built by the family's own model class;
   * returns accessors for the taps of the requested layers.
   */
  async run(enc: Encoded, layers: number[]): Promise<SampleTaps> {
    if (this.layerwise) {
      // Every layer up to the last one asked for; their outputs carry the instrumented names.
      const lw = this.layerwise;
      const outputs: Record<string, ort.Tensor> = {};
      const last = Math.max(...layers) + 1;
      const prepared = await this.prepare(enc, lw);
      await lw.run(await lw.prologue(prepared.feeds), last, { onLayer: (_l, _i, _input, taps) => void Object.assign(outputs, taps) });
      return new SampleTaps(this, enc, { ...prepared, outputs, lastLogits: new Float32Array(0), vocab: 0 });
    }
    const fetch = new Set<string>();
    for (const l of layers) {
      const t = this.inst.taps[l];
      for (const n of [t.residualIn, t.residualMid, t.residualOut, t.probs, t.query, t.presentKey]) if (n) fetch.add(n);
    }
    const out = await this.frontend.prefill(enc, this.runner!, [...fetch]);
    return new SampleTaps(this, enc, out);
  }

  /** The decoder feeds the frontend prepares for this prompt (the decoder is not run). */
  prepared(enc: Encoded): Promise<PreparedFeeds> {
    return prepareFeeds(this.frontend, enc, this.source.graph, (this.runner ?? this.layerwise)!.spec);
  }

  /** The decoder feeds the frontend prepares for this prompt, for a layer-wise prologue. */
  prepare(enc: Encoded, lw: LayerwiseDecoder): Promise<PreparedFeeds> {
    return prepareFeeds(this.frontend, enc, lw.cut.model.graph, lw.spec);
  }

  attention(l: number, outputs: Record<string, ort.Tensor>, S: number, lastKey?: Int32Array): AttentionMap {
    const t = this.inst.taps[l];
    const a = this.inst.structure.layers[l].attention!;
    if (t.probs) {
      const p = outputs[t.probs];
      const [, heads, , T] = p.dims;
      return headMean(toFloat32(p), heads, S, T, lastKey);
    }
    if (t.query && t.presentKey && (this.rope || !a.doRotary)) {
      const q = queryPart(toFloat32(outputs[t.query]), S, a);
      const k = toFloat32(outputs[t.presentKey]);
      const kvHeads = outputs[t.presentKey].dims[1];
      const headDim = outputs[t.presentKey].dims[3];
      const heads = a.numHeads ?? q.length / S / headDim;
      const scale = a.node?.attribute.find((x) => x.name === 'scale')?.f;
      const rope = this.rope ?? { cos: new Float32Array(0), sin: new Float32Array(0), rotaryDim: headDim };
      const probs = attentionFromQK(q, k, S, heads, kvHeads, headDim, rope.cos, rope.sin, rope.rotaryDim, a.rotaryInterleaved ?? false, scale || undefined, a.doRotary ?? true, lastKey);
      return headMean(probs, heads, S, probs.length / (heads * S), lastKey);
    }
    throw new Error(`layer ${l}: no attention tap to compute token importance from`);
  }
}

/** The query part of a fused op's first input: packed [S, (heads + 2 kv) * hd] when its key input is empty. */
export function queryPart(q: Float32Array, S: number, a: AttentionTap): Float32Array {
  if (a.key || !a.numHeads || !a.kvNumHeads) return q;
  const row = q.length / S;
  const hd = row / (a.numHeads + 2 * a.kvNumHeads);
  const width = a.numHeads * hd;
  const out = new Float32Array(S * width);
  for (let s = 0; s < S; s++) out.set(q.subarray(s * row, s * row + width), s * width);
  return out;
}

/** What a layer piece outputs besides its residual stream: the same taps the whole graph gets. */
function layerTapNames(t: LayerTaps): string[] {
  return [t.residualMid, t.probs, t.query, t.presentKey].filter((n): n is string => !!n);
}

export class SampleTaps {
  constructor(
    private readonly cs: CalibrationSession,
    readonly enc: Encoded,
    private readonly pass: Prefill,
  ) {}

  /** Width of the residual stream. */
  get hidden(): number {
    return this.pass.hidden;
  }

  residualIn(l: number): Float32Array {
    const n = this.cs.inst.taps[l].residualIn;
    return n ? toFloat32(this.pass.outputs[n]) : this.pass.embeds;
  }

  residualMid(l: number): Float32Array {
    return toFloat32(this.pass.outputs[this.cs.inst.taps[l].residualMid]);
  }

  residualOut(l: number): Float32Array {
    return toFloat32(this.pass.outputs[this.cs.inst.taps[l].residualOut]);
  }

  attention(l: number): AttentionMap {
    return this.cs.attention(l, this.pass.outputs, this.enc.seqLen, this.enc.lastKey);
  }
}

export async function calibrate(cs: CalibrationSession, samples: CalibSample[], opts: CalibrationOptions): Promise<CalibrationStats> {
  const sums = new CalibrationSums(cs.numLayers, cs.inst.structure.style, opts);
  const fingerprint = opts.checkpoint ? calibrationFingerprint(cs.decoderPath, samples, opts) : '';
  if (opts.checkpoint && sums.load(opts.checkpoint, fingerprint)) opts.onResume?.(sums.done, samples.length);
  // A checkpoint after every completed sample (or group) unless writing it costs more than
  // about 5 % of the time since the last one.
  let lastSave = 0;
  let saveCost = 0;
  const checkpoint = (force = false) => {
    if (!opts.checkpoint) return;
    const now = Date.now();
    if (!force && now - lastSave < 20 * saveCost) return;
    sums.save(opts.checkpoint, fingerprint);
    lastSave = Date.now();
    saveCost = lastSave - now;
  };
  const t0 = Date.now();
  const first = sums.done;
  const progress = (done: number) => {
    const elapsed = (Date.now() - t0) / 1000;
    const rate = (done - first) / Math.max(elapsed, 1e-3);
    opts.onProgress?.({ stage: 'calibrate', done: Math.floor(done), total: samples.length, etaSeconds: rate > 0 ? (samples.length - done) / rate : undefined });
  };
  if (cs.layerwise) await calibrateLayerwise(cs, cs.layerwise, samples, sums, opts, checkpoint, progress);
  else await calibrateWhole(cs, samples, sums, opts, checkpoint, progress);
  checkpoint(true);
  return sums.stats;
}

type Checkpointer = (force?: boolean) => void;

/** One instrumented session: each sample runs through every layer at once. */
async function calibrateWhole(cs: CalibrationSession, samples: CalibSample[], sums: CalibrationSums, opts: CalibrationOptions, checkpoint: Checkpointer, progress: (done: number) => void): Promise<void> {
  const layers = Array.from({ length: cs.numLayers }, (_, i) => i);
  for (let n = sums.done; n < samples.length; n++) {
    opts.checkCancelled?.();
    const enc = await cs.encode(samples[n]);
    const taps = await cs.run(enc, layers);
    const s = sums.begin(n, samples[n], { ...enc, hidden: taps.hidden }, () => tokenTexts(cs.frontend, enc));
    for (const l of layers) sums.addLayer(s, l, taps.residualIn(l), taps.residualOut(l), taps.attention(l));
    sums.end(s);
    checkpoint();
    progress(n + 1);
  }
}

/**
 * Layer by layer over groups of samples: the group's hidden states stay in memory while each
 * layer's piece runs over all of them, so only one layer's weights need to be open. A group
 * is as many samples as fit in the in-flight budget; a checkpoint follows each group.
 */
async function calibrateLayerwise(
  cs: CalibrationSession,
  lw: LayerwiseDecoder,
  samples: CalibSample[],
  sums: CalibrationSums,
  opts: CalibrationOptions,
  checkpoint: Checkpointer,
  progress: (done: number) => void,
): Promise<void> {
  const L = cs.numLayers;
  const budget = opts.inFlightBytes ?? defaultInFlightBytes();
  const maxGroup = opts.samplesInFlight ?? 64;
  for (let n = sums.done; n < samples.length; ) {
    const group: Array<{ s: SampleSums; state: HiddenState }> = [];
    let bytes = 0;
    while (n < samples.length && group.length < maxGroup && (group.length === 0 || bytes < budget)) {
      opts.checkCancelled?.();
      const enc = await cs.encode(samples[n]);
      const prepared = await cs.prepare(enc, lw);
      const state = await lw.prologue(prepared.feeds);
      const s = sums.begin(n, samples[n], { ...enc, hidden: prepared.hidden }, () => tokenTexts(cs.frontend, enc));
      group.push({ s, state });
      bytes += stateBytes(state) * 3; // input, output and taps of a layer are alive together
      n++;
    }
    const done0 = group[0].s.index;
    await lw.runMany(
      group.map((g) => g.state),
      L,
      {
        onLayer: (l, i, input, taps) => {
          opts.checkCancelled?.();
          const g = group[i];
          sums.addLayer(g.s, l, toFloat32(input.residual), toFloat32(taps[lw.cut.residuals[l + 1]]), cs.attention(l, taps, g.s.enc.seqLen));
          if (i === group.length - 1) progress(done0 + (group.length * (l + 1)) / L);
        },
      },
    );
    for (const g of group) sums.end(g.s);
    checkpoint();
  }
}

function stateBytes(s: HiddenState): number {
  let b = (s.residual.data as ArrayLike<number> & { byteLength: number }).byteLength;
  for (const t of Object.values(s.context)) b += (t.data as { byteLength?: number }).byteLength ?? 0;
  return b;
}

/** Hidden states in flight: a quarter of the memory available, at most 4 GiB. */
function defaultInFlightBytes(): number {
  return Math.min(availableMemory() / 4, 4 * 2 ** 30);
}

function tokenTexts(frontend: Frontend, enc: Encoded): string[] {
  return enc.ids.map((id, i) => (enc.isImage[i] ? '<image>' : frontend.tokenText(id) || String(id)));
}

export function layerMeans(st: CalibrationStats): { cosTis: number; cosAll: number; cosText: number | null; cosVisual: number | null; keptVisualShare: number }[] {
  return st.layers.map((s) => ({
    cosTis: s.cosTis / st.samples,
    cosAll: s.cosAll / st.samples,
    cosText: s.nText ? s.cosText / s.nText : null,
    cosVisual: s.nVisual ? s.cosVisual / s.nVisual : null,
    keptVisualShare: s.keptTotal ? s.keptVisual / s.keptTotal : 0,
  }));
}
