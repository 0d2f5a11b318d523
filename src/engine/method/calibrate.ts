// Pass 1 of Short-LVLM: run calibration samples through the instrumented decoder once and
// fold every per-sample figure into running sums (memory does not grow with the number of
// samples): per-layer input/output cosine on TIS-kept tokens and on all / text / visual
// tokens, TIS histograms per layer and modality, and a few samples' per-token scores.

import { CalibSample } from '../data/datasets';
import { instrumentDecoder, Instrumented } from '../graph/instrument';
import { OnnxFile } from '../onnx/onnxFile';
import { checkPackageConsistency } from '../package/consistency';
import { ModelPackage } from '../package/modelPackage';
import { DecoderRunner } from '../runtime/decoderRunner';
import { RuntimeOptions, toFloat32, ort } from '../runtime/ort';
import { Frontend, openFrontend } from '../runtime/frontend';
import { Encoded, Prefill } from '../runtime/vlmFrontend';
import { Histogram, TokenSample } from '../../protocol/report';
import { meanOver, tokenCosines } from './cosine';
import { attentionFromQK } from './fusedAttention';
import { AttentionMap, headMean, KeepMode, selectTokens, tokenImportance } from './tis';

import type { Progress } from '../../protocol/engineApi';

export type { Progress };

export interface CalibrationOptions extends RuntimeOptions {
  topP: number;
  keepMode: KeepMode;
  /** How many samples keep their per-token scores for the report. */
  keepTokenSamples?: number;
  onProgress?: (p: Progress) => void;
  checkCancelled?: () => void;
}

export interface LayerSums {
  cosTis: number;
  cosAll: number;
  cosText: number;
  nText: number;
  cosVisual: number;
  nVisual: number;
  keptVisual: number;
  keptTotal: number;
}

export interface CalibrationStats {
  numLayers: number;
  hidden: number;
  samples: number;
  tokens: number;
  visualTokens: number;
  layers: LayerSums[];
  histVisual: Histogram[];
  histText: Histogram[];
  tokenSamples: TokenSample[];
  style: string;
}

export const HIST_EDGES = Array.from({ length: 29 }, (_, i) => -7 + i * 0.25); // log10 TIS from 1e-7 to 1

function histogramAdd(h: Histogram, v: number): void {
  const x = Math.log10(Math.max(v, 1e-12));
  let b = Math.floor((x - h.edges[0]) / (h.edges[1] - h.edges[0]));
  b = Math.min(Math.max(b, 0), h.counts.length - 1);
  h.counts[b]++;
}

/** Opens what a calibration pass needs: frontend, instrumented decoder and rotary caches. */
export class CalibrationSession {
  private constructor(
    readonly frontend: Frontend,
    readonly source: OnnxFile,
    readonly inst: Instrumented,
    readonly runner: DecoderRunner,
    private readonly rope?: { cos: Float32Array; sin: Float32Array; rotaryDim: number },
  ) {}

  static async open(pkg: ModelPackage, opts: RuntimeOptions = {}, layers?: number[]): Promise<CalibrationSession> {
    const frontend = await openFrontend(pkg, opts);
    let source: OnnxFile | undefined;
    let runner: DecoderRunner | undefined;
    try {
      source = OnnxFile.open(pkg.decoder);
      const inst = instrumentDecoder(source.model, { layers });
      checkPackageConsistency(pkg, source, inst.structure);
      runner = await DecoderRunner.fromModel(inst.model, source, { ...opts, optimization: 'basic' }, { kvHeads: pkg.text.numKvHeads, headDim: pkg.text.headDim });
      let rope;
      const tap = inst.structure.layers[0]?.attention;
      if (tap?.kind === 'qk') {
        const inits = source.initializerMap();
        const cos = tap.cosCache ? inits.get(tap.cosCache) : undefined;
        const sin = tap.sinCache ? inits.get(tap.sinCache) : undefined;
        if (!cos || !sin) throw new Error('fused attention without cos/sin cache initializers: cannot recompute attention for TIS');
        rope = { cos: source.tensorFloat32(cos), sin: source.tensorFloat32(sin), rotaryDim: cos.dims[1] * 2 };
      }
      return new CalibrationSession(frontend, source, inst, runner, rope);
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
      await this.runner.dispose();
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
    const fetch = new Set<string>();
    for (const l of layers) {
      const t = this.inst.taps[l];
      for (const n of [t.residualIn, t.residualMid, t.residualOut, t.probs, t.query, t.presentKey]) if (n) fetch.add(n);
    }
    const out = await this.frontend.prefill(enc, this.runner, [...fetch]);
    return new SampleTaps(this, enc, out);
  }

  attention(l: number, outputs: Record<string, ort.Tensor>, S: number, lastKey?: Int32Array): AttentionMap {
    const t = this.inst.taps[l];
    const a = this.inst.structure.layers[l].attention!;
    if (t.probs) {
      const p = outputs[t.probs];
      const [, heads, , T] = p.dims;
      return headMean(toFloat32(p), heads, S, T, lastKey);
    }
    if (t.query && t.presentKey && this.rope) {
      const q = toFloat32(outputs[t.query]);
      const k = toFloat32(outputs[t.presentKey]);
      const kvHeads = outputs[t.presentKey].dims[1];
      const headDim = outputs[t.presentKey].dims[3];
      const heads = a.numHeads ?? q.length / S / headDim;
      const scale = a.node?.attribute.find((x) => x.name === 'scale')?.f;
      const probs = attentionFromQK(q, k, S, heads, kvHeads, headDim, this.rope.cos, this.rope.sin, this.rope.rotaryDim, a.rotaryInterleaved ?? false, scale || undefined, a.doRotary ?? true, lastKey);
      return headMean(probs, heads, S, probs.length / (heads * S), lastKey);
    }
    throw new Error(`layer ${l}: no attention tap to compute token importance from`);
  }
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
  const L = cs.numLayers;
  const layers = Array.from({ length: L }, (_, i) => i);
  const sums: LayerSums[] = layers.map(() => ({ cosTis: 0, cosAll: 0, cosText: 0, nText: 0, cosVisual: 0, nVisual: 0, keptVisual: 0, keptTotal: 0 }));
  const mkHist = () => layers.map(() => ({ edges: HIST_EDGES, counts: new Array(HIST_EDGES.length - 1).fill(0) }));
  const histVisual = mkHist();
  const histText = mkHist();
  const tokenSamples: TokenSample[] = [];
  let tokens = 0;
  let visualTokens = 0;
  let hidden = 0;
  const t0 = Date.now();
  for (let n = 0; n < samples.length; n++) {
    opts.checkCancelled?.();
    const enc = await cs.encode(samples[n]);
    const taps = await cs.run(enc, layers);
    const S = enc.seqLen;
    const D = taps.hidden;
    hidden = D;
    tokens += S;
    const visIdx: number[] = [];
    const textIdx: number[] = [];
    for (let i = 0; i < S; i++) (enc.isImage[i] ? visIdx : textIdx).push(i);
    visualTokens += visIdx.length;
    const keep = n < (opts.keepTokenSamples ?? 4);
    const sampleRec: TokenSample | undefined = keep
      ? { id: samples[n].id, image: samples[n].image, tokens: tokenTexts(cs.frontend, enc), isImage: Array.from(enc.isImage), imageGrid: enc.imageGrid, tis: [], kept: [] }
      : undefined;
    for (const l of layers) {
      const tis = tokenImportance(taps.attention(l), enc.isImage);
      const kept = selectTokens(tis, opts.topP, opts.keepMode);
      const cos = tokenCosines(taps.residualIn(l), taps.residualOut(l), S, D);
      const s = sums[l];
      s.cosTis += meanOver(cos, kept)!;
      s.cosAll += meanOver(cos, cos.keys())!;
      const ct = meanOver(cos, textIdx);
      if (ct !== undefined) {
        s.cosText += ct;
        s.nText++;
      }
      const cv = meanOver(cos, visIdx);
      if (cv !== undefined) {
        s.cosVisual += cv;
        s.nVisual++;
      }
      s.keptTotal += kept.length;
      s.keptVisual += kept.filter((i) => enc.isImage[i]).length;
      for (let i = 0; i < S; i++) histogramAdd(enc.isImage[i] ? histVisual[l] : histText[l], tis[i]);
      if (sampleRec) {
        sampleRec.tis.push(Array.from(tis, (x) => Number(x.toPrecision(5))));
        sampleRec.kept.push(kept);
      }
    }
    if (sampleRec) tokenSamples.push(sampleRec);
    const elapsed = (Date.now() - t0) / 1000;
    opts.onProgress?.({ stage: 'calibrate', done: n + 1, total: samples.length, etaSeconds: (elapsed / (n + 1)) * (samples.length - n - 1) });
  }
  return { numLayers: L, hidden, samples: samples.length, tokens, visualTokens, layers: sums, histVisual, histText, tokenSamples, style: cs.inst.structure.style };
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
