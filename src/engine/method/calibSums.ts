// The running sums of a calibration pass, fed one (sample, layer) at a time in any order that
// keeps samples in order within each layer (whole-graph: sample by sample; layer-wise: layer by
// layer over a group of samples), so both give the same sums. The sums after a number of
// completed samples are a checkpoint: written atomically, they let a killed run resume there.

import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { CalibSample } from '../data/datasets';
import { Encoded } from '../runtime/vlmFrontend';
import { Histogram, TokenSample } from '../../protocol/report';
import { meanOver, tokenCosines } from './cosine';
import { AttentionMap, KeepMode, selectTokens, tokenImportance } from './tis';

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

/** One sample's share of the sums, open while its layers are being added. */
export interface SampleSums {
  index: number;
  enc: Pick<Encoded, 'seqLen' | 'isImage'> & { hidden: number };
  visIdx: number[];
  textIdx: number[];
  record?: TokenSample;
}

const CHECKPOINT_FORMAT = 'short-lvlm-calibration-checkpoint/1';

interface Checkpoint {
  format: string;
  fingerprint: string;
  stats: CalibrationStats;
}

export class CalibrationSums {
  readonly stats: CalibrationStats;

  constructor(numLayers: number, style: string, private readonly opts: { topP: number; keepMode: KeepMode; keepTokenSamples?: number }) {
    const layers = Array.from({ length: numLayers }, (_, i) => i);
    const mkHist = () => layers.map(() => ({ edges: HIST_EDGES, counts: new Array(HIST_EDGES.length - 1).fill(0) }));
    this.stats = {
      numLayers,
      hidden: 0,
      samples: 0,
      tokens: 0,
      visualTokens: 0,
      layers: layers.map(() => ({ cosTis: 0, cosAll: 0, cosText: 0, nText: 0, cosVisual: 0, nVisual: 0, keptVisual: 0, keptTotal: 0 })),
      histVisual: mkHist(),
      histText: mkHist(),
      tokenSamples: [],
      style,
    };
  }

  /** Samples completed so far: the next sample to calibrate. */
  get done(): number {
    return this.stats.samples;
  }

  begin(index: number, sample: CalibSample, enc: Encoded & { hidden: number }, tokenTexts: () => string[]): SampleSums {
    const S = enc.seqLen;
    const visIdx: number[] = [];
    const textIdx: number[] = [];
    for (let i = 0; i < S; i++) (enc.isImage[i] ? visIdx : textIdx).push(i);
    const keep = index < (this.opts.keepTokenSamples ?? 4);
    const record: TokenSample | undefined = keep
      ? { id: sample.id, image: sample.image, tokens: tokenTexts(), isImage: Array.from(enc.isImage), imageGrid: enc.imageGrid, tis: [], kept: [] }
      : undefined;
    return { index, enc: { seqLen: S, hidden: enc.hidden, isImage: enc.isImage }, visIdx, textIdx, record };
  }

  /** Adds layer l of one sample; layers of a sample must come in order. */
  addLayer(s: SampleSums, l: number, residualIn: Float32Array, residualOut: Float32Array, attention: AttentionMap): void {
    const { seqLen: S, hidden: D, isImage } = s.enc;
    const tis = tokenImportance(attention, isImage);
    const kept = selectTokens(tis, this.opts.topP, this.opts.keepMode);
    const cos = tokenCosines(residualIn, residualOut, S, D);
    const sum = this.stats.layers[l];
    sum.cosTis += meanOver(cos, kept)!;
    sum.cosAll += meanOver(cos, cos.keys())!;
    const ct = meanOver(cos, s.textIdx);
    if (ct !== undefined) {
      sum.cosText += ct;
      sum.nText++;
    }
    const cv = meanOver(cos, s.visIdx);
    if (cv !== undefined) {
      sum.cosVisual += cv;
      sum.nVisual++;
    }
    sum.keptTotal += kept.length;
    sum.keptVisual += kept.filter((i) => isImage[i]).length;
    for (let i = 0; i < S; i++) histogramAdd(isImage[i] ? this.stats.histVisual[l] : this.stats.histText[l], tis[i]);
    if (s.record) {
      s.record.tis.push(Array.from(tis, (x) => Number(x.toPrecision(5))));
      s.record.kept.push(kept);
    }
  }

  /** Closes a sample whose every layer was added; samples must end in order. */
  end(s: SampleSums): void {
    if (s.index !== this.stats.samples) throw new Error(`calibration sample ${s.index} ended out of order (expected ${this.stats.samples})`);
    this.stats.samples++;
    this.stats.hidden = s.enc.hidden;
    this.stats.tokens += s.enc.seqLen;
    this.stats.visualTokens += s.visIdx.length;
    if (s.record) this.stats.tokenSamples.push(s.record);
  }

  /** Writes the sums so far to `file` (temporary file, then rename: never half written). */
  save(file: string, fingerprint: string): void {
    const body: Checkpoint = { format: CHECKPOINT_FORMAT, fingerprint, stats: this.stats };
    const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
    fs.writeFileSync(tmp, JSON.stringify(body));
    fs.renameSync(tmp, file);
  }

  /** Restores sums from a checkpoint of the same run (same fingerprint); false if there is none or it is another run's. */
  load(file: string, fingerprint: string): boolean {
    let body: Checkpoint;
    try {
      body = JSON.parse(fs.readFileSync(file, 'utf8')) as Checkpoint;
    } catch {
      return false;
    }
    if (body.format !== CHECKPOINT_FORMAT || body.fingerprint !== fingerprint || body.stats.numLayers !== this.stats.numLayers) return false;
    Object.assign(this.stats, body.stats);
    return true;
  }
}

/**
 * Identifies a calibration run for resuming: the decoder file (path, size, modification
 * time), the samples in order and the options that change the sums.
 */
export function calibrationFingerprint(decoder: string, samples: CalibSample[], opts: { topP: number; keepMode: KeepMode; keepTokenSamples?: number }): string {
  const st = fs.statSync(decoder);
  const h = crypto.createHash('sha256');
  h.update(JSON.stringify([path.resolve(decoder), st.size, st.mtimeMs, opts.topP, opts.keepMode, opts.keepTokenSamples ?? 4]));
  for (const s of samples) h.update(JSON.stringify([s.id, s.image, s.messages]));
  return h.digest('hex');
}
