// Pass 1 of Short-LVLM: run calibration samples through the instrumented decoder once and
// fold every per-sample figure into running sums (memory does not grow with the number of
// samples): per-layer input/output cosine on TIS-kept tokens and on all / text / visual
// tokens, TIS histograms per layer and modality, and a few samples' per-token scores.

import { CalibSample } from '../data/datasets';
import { instrumentDecoder, Instrumented, LayerTaps } from '../graph/instrument';
import { AttentionTap } from '../graph/layers';
import { addCalibrationStats, MODALITY_ROWS, StatsTaps, statsInGraphPossible, VISUAL_COLUMN } from '../graph/statsGraph';
import { OnnxFile } from '../onnx/onnxFile';
import { ModelProto } from '../onnx/proto';
import { checkPackageConsistency } from '../package/consistency';
import { ModelPackage } from '../package/modelPackage';
import { DecoderRunner, DecoderView, decoderView, runOutputs } from '../runtime/decoderRunner';
import { dropUnusedInitializers, eliminateDeadNodes } from '../graph/graphIndex';
import { cloneModel } from '../graph/surgery';
import { availableMemory, chooseExecution, Execution, ExecutionChoice, weightBytes } from '../runtime/execution';
import { HiddenState, LayerwiseDecoder } from '../runtime/layerwise';
import { Feeds, RuntimeOptions, toFloat32, ort } from '../runtime/ort';
import { Frontend, openFrontend } from '../runtime/frontend';
import { Encoded, Prefill } from '../runtime/vlmFrontend';
import { calibrationFingerprint, CalibrationStats, CalibrationSums, SampleSums } from './calibSums';
import { attentionFromQK } from './fusedAttention';
import { tokenCosines } from './cosine';
import { AttentionMap, headMean, KeepMode, tisFromSums } from './tis';

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
  /** Compute attention statistics and cosines inside onnxruntime (default) or in JavaScript from the taps. */
  statsInGraph?: boolean;
}

/**
 * Opens what a calibration pass needs: frontend, the decoder and rotary caches. Whole-graph
 * execution keeps two variants, one open at a time: the statistics graph for calibration
 * (only per-token vectors leave onnxruntime) and the taps graph (residual streams,
 * attention) for compensation. Layer-wise pieces serve both, a tap being any tensor of the layer.
 */
export class CalibrationSession {
  private whole?: { kind: 'stats' | 'taps'; runner: DecoderRunner };

  private constructor(
    readonly frontend: Frontend,
    readonly source: OnnxFile,
    readonly inst: Instrumented,
    private readonly statsModel: ModelProto | undefined,
    readonly layerwise: LayerwiseDecoder | undefined,
    readonly execution: ExecutionChoice,
    readonly decoderPath: string,
    /** The package's decoder as the frontend sees it when preparing inputs for layer-wise runs. */
    readonly view: DecoderView,
    /** Per layer: the in-graph statistics outputs (absent: computed in JavaScript from the taps). */
    readonly stats: StatsTaps[] | undefined,
    private readonly opts: SessionOptions & { fallback: { kvHeads?: number; headDim?: number } },
    private readonly rope?: { cos: Float32Array; sin: Float32Array; rotaryDim: number },
  ) {}

  static async open(pkg: ModelPackage, opts: SessionOptions = {}, layers?: number[]): Promise<CalibrationSession> {
    const frontend = await openFrontend(pkg, opts);
    let source: OnnxFile | undefined;
    let cs: CalibrationSession | undefined;
    let lw: LayerwiseDecoder | undefined;
    try {
      source = OnnxFile.open(pkg.decoder);
      const inst = instrumentDecoder(source.model, { layers });
      checkPackageConsistency(pkg, source, inst.structure);
      const fallback = { kvHeads: pkg.text.numKvHeads, headDim: pkg.text.headDim };
      const choice = chooseExecution(opts.execution ?? 'auto', weightBytes(source.model));
      let stats: StatsTaps[] | undefined;
      let statsModel: ModelProto | undefined;
      if (opts.statsInGraph !== false && statsInGraphPossible(inst)) {
        // No taps as outputs: only the statistics leave. Layer-wise, the cosines come from the
        // hidden states the runner holds anyway.
        const bare = instrumentDecoder(source.model, { layers: [] });
        stats = addCalibrationStats(bare, { cosine: choice.execution === 'whole' });
        statsModel = bare.model;
      }
      if (choice.execution === 'layerwise') {
        // One piece open at a time: peak memory is the largest piece plus the states in flight.
        lw = LayerwiseDecoder.open(statsModel ?? inst.model, source, { ...opts, optimization: 'basic', fallback, taps: (k) => layerTapNames(inst.taps[k]), maxOpenBytes: 'one-piece' });
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
      cs = new CalibrationSession(frontend, source, inst, statsModel, lw, choice, pkg.decoder, decoderView(source.graph, fallback), stats, { ...opts, fallback }, rope);
      if (!lw) await cs.runner(stats ? 'stats' : 'taps'); // what calibration runs first
      return cs;
    } catch (e) {
      // The session folders beside the model go with their sessions.
      await cs?.whole?.runner.dispose().catch(() => undefined);
      await lw?.dispose().catch(() => undefined);
      source?.close();
      await frontend.dispose().catch(() => undefined);
      throw e;
    }
  }

  /** The whole-graph runner of one kind, closing the other first (only one holds the weights). */
  async runner(kind: 'stats' | 'taps'): Promise<DecoderRunner> {
    if (this.whole?.kind === kind) return this.whole.runner;
    await this.whole?.runner.dispose();
    this.whole = undefined;
    // The statistics nodes consume what they read, so full optimisation cannot fuse it away;
    // bare taps need basic optimisation.
    const model = kind === 'stats' ? statisticsOnly(this.statsModel!, this.stats!) : this.inst.model;
    const runner = await DecoderRunner.fromModel(model, this.source, { ...this.opts, optimization: kind === 'stats' ? 'all' : 'basic' }, this.opts.fallback);
    this.whole = { kind, runner };
    return runner;
  }

  async dispose(): Promise<void> {
    try {
      await this.whole?.runner.dispose();
      await this.layerwise?.dispose();
    } finally {
      this.source.close();
      await this.frontend.dispose();
    }
  }

  get numLayers(): number {
    return this.inst.structure.layers.length;
  }

  /** Width of the decoder's residual stream. */
  get hidden(): number {
    return this.view.spec.hidden;
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
      const feeds = await this.prepare(enc);
      await lw.run(await lw.prologue(feeds), last, { onLayer: (_l, _i, _input, taps) => void Object.assign(outputs, taps) });
      const embeds = feeds[this.view.spec.embeds];
      return new SampleTaps(this, enc, { outputs, embeds: toFloat32(embeds), hidden: embeds.dims[embeds.dims.length - 1] });
    }
    const fetch = new Set<string>();
    for (const l of layers) {
      const t = this.inst.taps[l];
      for (const n of [t.residualIn, t.residualMid, t.residualOut, t.probs, t.query, t.presentKey]) if (n) fetch.add(n);
    }
    const out = await this.frontend.prefill(enc, await this.runner('taps'), [...fetch]);
    return new SampleTaps(this, enc, out);
  }

  /**
   * The decoder inputs other than the KV cache as the family's runtime builds them for the
   * prompt (3-D M-RoPE positions included), with the inputs the in-graph statistics read.
   */
  async prepare(enc: Encoded): Promise<Feeds> {
    return { ...(await this.frontend.prepare(enc, this.view)), ...this.extraFeeds(enc) };
  }

  /** Inputs the in-graph statistics read: the modality of each position. */
  extraFeeds(enc: Encoded): Record<string, ort.Tensor> {
    return this.stats ? modalityFeeds(enc.isImage) : {};
  }

  /**
   * One sample's per-layer statistics from the in-graph outputs: token importance, and cosines
   * when computed there. The in-graph probabilities are the decoder's own, with its real mask,
   * so masked entries add nothing to the sums; the counts of rows and columns that see each
   * other follow the family's mask (`lastKey`), causal or not.
   */
  statsOf(l: number, outputs: Record<string, ort.Tensor>, enc: Pick<Encoded, 'isImage' | 'lastKey'>): { tis: Float64Array; cos?: Float64Array } {
    const st = this.stats![l];
    const S = enc.isImage.length;
    const from = outputs[st.fromQueries].data as Float64Array;
    const tis = tisFromSums(from.subarray(0, S), from.subarray(S, 2 * S), outputs[st.toVisual].data as Float64Array, enc.isImage, enc.lastKey);
    return { tis, cos: st.cos ? (outputs[st.cos].data as Float64Array) : undefined };
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

/** Feeds for MODALITY_ROWS and VISUAL_COLUMN from a sample's image-position flags. */
export function modalityFeeds(isImage: Uint8Array): Record<string, ort.Tensor> {
  const S = isImage.length;
  const rows = new Float64Array(2 * S);
  const col = new Float64Array(S);
  for (let i = 0; i < S; i++) {
    rows[i] = col[i] = isImage[i] ? 1 : 0;
    rows[S + i] = isImage[i] ? 0 : 1;
  }
  return { [MODALITY_ROWS]: new ort.Tensor('float64', rows, [2, S]), [VISUAL_COLUMN]: new ort.Tensor('float64', col, [S, 1]) };
}

/**
 * The statistics graph with the statistics as its only outputs: the LM head, the logits and
 * the cache outputs are gone, so calibration neither computes nor copies them.
 */
function statisticsOnly(model: ModelProto, stats: StatsTaps[]): ModelProto {
  const m = cloneModel(model);
  const keep = new Set(stats.flatMap((s) => [s.fromQueries, s.toVisual, s.cos]).filter((x): x is string => !!x));
  m.graph.output = m.graph.output.filter((o) => keep.has(o.name));
  eliminateDeadNodes(m.graph);
  dropUnusedInitializers(m.graph);
  return m;
}

/** What a layer piece outputs besides its residual stream: the same taps the whole graph gets. */
function layerTapNames(t: LayerTaps): string[] {
  return [t.residualMid, t.probs, t.query, t.presentKey].filter((n): n is string => !!n);
}

export class SampleTaps {
  constructor(
    private readonly cs: CalibrationSession,
    readonly enc: Encoded,
    private readonly pass: Pick<Prefill, 'outputs' | 'embeds' | 'hidden'>,
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
    const s = sums.begin(n, samples[n], enc, cs.hidden, () => tokenTexts(cs.frontend, enc));
    if (cs.stats) {
      // Only per-token vectors leave onnxruntime.
      const fetch = cs.stats.flatMap((st) => [st.fromQueries, st.toVisual, st.cos!]);
      const out = await runOutputs(await cs.runner('stats'), await cs.prepare(enc), fetch);
      for (const l of layers) {
        const { tis, cos } = cs.statsOf(l, out, enc);
        sums.addLayerStats(s, l, cos!, tis);
      }
    } else {
      const taps = await cs.run(enc, layers);
      for (const l of layers) sums.addLayer(s, l, taps.residualIn(l), taps.residualOut(l), taps.attention(l));
    }
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
      const state = await lw.prologue(await cs.prepare(enc));
      const s = sums.begin(n, samples[n], enc, cs.hidden, () => tokenTexts(cs.frontend, enc));
      group.push({ s, state });
      bytes += stateBytes(state) * 3; // input, output and taps of a layer are alive together
      n++;
    }
    const done0 = group[0].s.index;
    await lw.runMany(
      group.map((g) => g.state),
      L,
      {
        // In-graph statistics: only the token-importance sums besides the residual stream.
        taps: cs.stats ? (l) => [cs.stats![l].fromQueries, cs.stats![l].toVisual] : undefined,
        onLayer: (l, i, input, taps) => {
          opts.checkCancelled?.();
          const g = group[i];
          const xin = toFloat32(input.residual);
          const xout = toFloat32(taps[lw.cut.residuals[l + 1]]);
          if (cs.stats) sums.addLayerStats(g.s, l, tokenCosines(xin, xout, g.s.enc.seqLen, g.s.enc.hidden), cs.statsOf(l, taps, g.s.enc).tis);
          else sums.addLayer(g.s, l, xin, xout, cs.attention(l, taps, g.s.enc.seqLen, g.s.enc.lastKey));
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
