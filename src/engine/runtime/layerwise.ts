// Runs a decoder as a chain of pieces cut from its own graph (graph/cut.ts): the prologue once
// per sample, then any range of layers from a hidden state kept in JavaScript memory, skipping
// any set of layers, then the head at chosen positions. Piece sessions open on first use and
// the least recently used ones close when a weight budget is exceeded, so peak memory can be
// held to about one layer's weights plus the hidden states in flight. Pieces read the
// package's external data through hard links in one session folder; nothing is copied.
//
// Typical use (calibration, skip-cost trials): states = samples.map(prologue); then
// runMany(states, to, { skip, onLayer }) goes layer by layer over all samples, which keeps
// each piece open once per pass even with a budget of one layer.

import * as fs from 'fs';
import * as path from 'path';
import { cutDecoder, DecoderCut, onnxElemType, pieceModel, PieceTypes, PROLOGUE } from '../graph/cut';
import { expectedByteLength, externalLocations, OnnxFile } from '../onnx/onnxFile';
import { encodeModel, ModelProto } from '../onnx/proto';
import { DecoderSpec, decoderSpec, emptyPast } from './decoderRunner';
import { Feeds, linkedCopyDir, ort, RuntimeOptions, sessionOptions, toFloat32 } from './ort';

export interface HiddenState {
  /** The layer this residual stream enters; numLayers once it has passed the last layer. */
  layer: number;
  seqLen: number;
  /** Residual stream [1, seqLen, hidden] in the decoder's float type. */
  residual: ort.Tensor;
  /** What the pieces read besides the residual: prologue outputs and graph inputs (mask, positions, empty past). */
  context: Feeds;
}

export interface LayerwiseOptions extends RuntimeOptions {
  /**
   * Weight bytes of open piece sessions kept between uses (least recently used closed first);
   * 'one-piece': only the piece in use. Default: no limit.
   */
  maxOpenBytes?: number | 'one-piece';
  /** Extra tensors a layer's piece also outputs (taps such as attention probabilities), by layer. */
  taps?: (layer: number) => string[];
  /** KV-cache shape when the graph does not say (from the package config). */
  fallback?: { kvHeads?: number; headDim?: number; hidden?: number };
}

export interface LayerRun {
  /** Layers to pass over: the residual stream goes from a skipped layer's input straight to the next layer. */
  skip?: Iterable<number>;
  /** Called after each layer that ran, with the sample's index in `states`, the state entering the layer and its taps. */
  onLayer?: (layer: number, sample: number, input: HiddenState, taps: Record<string, ort.Tensor>) => void | Promise<void>;
}

interface OpenPiece {
  session: ort.InferenceSession;
  bytes: number;
}

export class LayerwiseDecoder {
  private readonly sessions = new Map<number, OpenPiece>();
  private readonly pieceBytesCache = new Map<number, number>();
  private types: PieceTypes = {};
  /** Encoded pieces by segment and outputs: a file in the session folder, or the bytes. */
  private readonly encoded = new Map<string, string | Uint8Array>();
  private dir?: string;
  private readonly contextNames: Set<string>;

  private constructor(
    readonly cut: DecoderCut,
    readonly spec: DecoderSpec,
    private readonly source: OnnxFile,
    private readonly opts: LayerwiseOptions,
    private readonly ownsSource: boolean,
  ) {
    const L = cut.structure.layers.length;
    this.contextNames = new Set<string>();
    for (let seg = 0; seg <= L; seg++) for (const t of cut.pieceInputs[seg + 1]) if (t !== cut.residuals[seg]) this.contextNames.add(t);
  }

  /** Cuts `model` (the package's decoder or an edited copy of it whose data `source` holds). */
  static open(model: ModelProto, source: OnnxFile, opts: LayerwiseOptions = {}): LayerwiseDecoder {
    return new LayerwiseDecoder(cutDecoder(model), decoderSpec(model.graph, opts.fallback), source, opts, false);
  }

  static fromFile(file: string, opts: LayerwiseOptions = {}): LayerwiseDecoder {
    const source = OnnxFile.open(file);
    try {
      return new LayerwiseDecoder(cutDecoder(source.model), decoderSpec(source.graph, opts.fallback), source, opts, true);
    } catch (e) {
      source.close();
      throw e;
    }
  }

  get numLayers(): number {
    return this.cut.structure.layers.length;
  }

  /** Bytes of the weights a piece reads (-1: prologue, numLayers: head). */
  pieceBytes(seg: number): number {
    let b = this.pieceBytesCache.get(seg);
    if (b === undefined) {
      const names = new Set(this.cut.pieceNodes[seg + 1].flatMap((n) => n.input));
      b = 0;
      for (const t of this.cut.model.graph.initializer) if (names.has(t.name)) b += expectedByteLength(t) ?? 0;
      this.pieceBytesCache.set(seg, b);
    }
    return b;
  }

  /**
   * Runs the prologue for one sample (batch 1, empty past) on the decoder feeds its frontend
   * prepared (frontend.ts prepareFeeds: inputs_embeds, mask, the family's position ids).
   */
  async prologue(prepared: Feeds): Promise<HiddenState> {
    const x = prepared[this.spec.embeds];
    if (!x) throw new Error(`the prologue needs ${this.spec.embeds} among the decoder feeds`);
    const seqLen = x.dims[1];
    const feeds: Feeds = { ...prepared, ...emptyPast(this.spec) };
    const r0 = this.cut.residuals[0];
    const outputs = [...this.cut.shared, ...(feeds[r0] ? [] : [r0])];
    const all: Feeds = { ...feeds };
    if (outputs.length) Object.assign(all, await this.runPiece(PROLOGUE, feeds, outputs));
    const context: Feeds = {};
    for (const t of this.contextNames) {
      if (!all[t]) throw new Error(`the layers read "${t}", which neither the prologue nor the decoder inputs provide`);
      context[t] = all[t];
    }
    return { layer: 0, seqLen, residual: all[r0], context };
  }

  /** Runs layer `state.layer` on one state; returns the state entering the next layer and the taps. */
  async layer(state: HiddenState, taps: string[] = this.opts.taps?.(state.layer) ?? []): Promise<{ state: HiddenState; taps: Record<string, ort.Tensor> }> {
    const k = state.layer;
    if (k < 0 || k >= this.numLayers) throw new Error(`no layer ${k}: the decoder has layers 0..${this.numLayers - 1}`);
    const next = this.cut.residuals[k + 1];
    const out = await this.runPiece(k, { ...state.context, [this.cut.residuals[k]]: state.residual }, [next, ...taps.filter((t) => t !== next)]);
    return { state: { ...state, layer: k + 1, residual: out[next] }, taps: out };
  }

  /** Advances one state to the input of layer `to` (numLayers = through the last layer). */
  async run(state: HiddenState, to: number, opts: LayerRun = {}): Promise<HiddenState> {
    return (await this.runMany([state], to, opts))[0];
  }

  /**
   * Advances every state to the input of layer `to`, layer by layer over all states, so each
   * piece is opened once per call. States must all enter the same layer.
   */
  async runMany(states: HiddenState[], to: number, opts: LayerRun = {}): Promise<HiddenState[]> {
    if (!states.length) return [];
    const from = states[0].layer;
    if (states.some((s) => s.layer !== from)) throw new Error('runMany: every state must enter the same layer');
    if (to < from || to > this.numLayers) throw new Error(`cannot run from layer ${from} to layer ${to} (the decoder has ${this.numLayers})`);
    const skip = new Set(opts.skip ?? []);
    let cur = states;
    for (let k = from; k < to; k++) {
      if (skip.has(k)) {
        cur = cur.map((s) => ({ ...s, layer: k + 1 }));
        continue;
      }
      const next: HiddenState[] = [];
      for (let i = 0; i < cur.length; i++) {
        const r = await this.layer(cur[i]);
        if (opts.onLayer) await opts.onLayer(k, i, cur[i], r.taps);
        next.push(r.state);
      }
      cur = next;
    }
    return cur;
  }

  /**
   * Logits at the given positions of a state that has passed the last layer: float32
   * [positions.length, vocab]. The head (final norm, LM head) works token by token, so only
   * those rows of the residual stream go through it.
   */
  async logits(state: HiddenState, positions: number[] = [state.seqLen - 1]): Promise<{ logits: Float32Array; vocab: number }> {
    const L = this.numLayers;
    if (state.layer !== L) throw new Error(`logits need the state after the last layer; this one enters layer ${state.layer}`);
    const rL = this.cut.residuals[L];
    const headInputs = this.cut.pieceInputs[L + 1].filter((t) => t !== rL);
    if (headInputs.length) throw new Error(`the decoder's head reads ${headInputs.join(', ')} besides the residual stream: not a token-wise head`);
    const rows = selectRows(state.residual, positions);
    const out = await this.runPiece(L, { [rL]: rows }, [this.cut.logits]);
    const t = out[this.cut.logits];
    return { logits: toFloat32(t), vocab: t.dims[t.dims.length - 1] };
  }

  /** Prologue, every layer but `skip`, head: a plain forward pass of the decoder in pieces. */
  async forward(feeds: Feeds, opts: { skip?: Iterable<number>; positions?: number[] } = {}): Promise<{ logits: Float32Array; vocab: number }> {
    const s = await this.run(await this.prologue(feeds), this.numLayers, { skip: opts.skip });
    return this.logits(s, opts.positions);
  }

  /** Closes every open piece session (they reopen on demand). */
  async closePieces(): Promise<void> {
    for (const [k, p] of this.sessions) {
      this.sessions.delete(k);
      await p.session.release();
    }
  }

  async dispose(): Promise<void> {
    await this.closePieces();
    if (this.dir) fs.rmSync(this.dir, { recursive: true, force: true });
    this.dir = undefined;
    if (this.ownsSource) this.source.close();
  }

  private async runPiece(seg: number, feeds: Feeds, outputs: string[]): Promise<Record<string, ort.Tensor>> {
    const session = await this.session(seg, feeds, outputs);
    const want = new Set(session.inputNames);
    const f: Feeds = {};
    for (const n of want) {
      if (!feeds[n]) throw new Error(`piece ${seg} needs input "${n}", which was not provided`);
      f[n] = feeds[n];
    }
    return session.run(f, outputs);
  }

  private async session(seg: number, feeds: Feeds, outputs: string[]): Promise<ort.InferenceSession> {
    const key = seg;
    const hit = this.sessions.get(key);
    if (hit && outputs.every((o) => hit.session.outputNames.includes(o))) {
      this.sessions.delete(key);
      this.sessions.set(key, hit); // most recently used last
      return hit.session;
    }
    if (hit) {
      this.sessions.delete(key);
      await hit.session.release();
    }
    for (const [n, t] of Object.entries(feeds)) if (!this.types[n]) this.types[n] = { elemType: onnxElemType(t.type), rank: t.dims.length };
    const bytes = this.pieceBytes(seg);
    await this.makeRoom(bytes);
    const tapped = seg >= 0 && seg < this.numLayers && outputs.length > 1;
    const so = sessionOptions({ ...this.opts, optimization: this.opts.optimization ?? (tapped ? 'basic' : 'all') });
    const session = await this.createSession(seg, outputs, so);
    this.sessions.set(key, { session, bytes });
    return session;
  }

  private async makeRoom(bytes: number): Promise<void> {
    const budget = this.opts.maxOpenBytes === 'one-piece' ? 0 : this.opts.maxOpenBytes;
    if (budget === undefined) return;
    let total = bytes;
    for (const p of this.sessions.values()) total += p.bytes;
    for (const [k, p] of this.sessions) {
      if (total <= budget) break;
      this.sessions.delete(k);
      total -= p.bytes;
      await p.session.release();
    }
  }

  /**
   * Opens a piece from its encoded protobuf, kept for reopening: a piece with external data is
   * a small file in the session folder; an inline one stays in memory unless it is large.
   */
  private async createSession(seg: number, outputs: string[], so: ort.InferenceSession.SessionOptions): Promise<ort.InferenceSession> {
    const key = `${seg}\n${outputs.join('\n')}`;
    try {
      let encoded = this.encoded.get(key);
      if (!encoded) {
        const m = pieceModel(this.cut, seg, outputs, this.types);
        const bytes = encodeModel(m);
        if (externalLocations(m).length) {
          // One folder for all pieces: every data file the decoder uses is linked once.
          if (!this.dir) this.dir = linkedCopyDir(this.source, externalLocations(this.cut.model));
          const file = path.join(this.dir, `${path.basename(this.source.filePath, '.onnx')}.piece${seg + 1}-${this.encoded.size}.onnx`);
          fs.writeFileSync(file, bytes);
          encoded = file;
        } else encoded = bytes;
        if (typeof encoded === 'string' || bytes.length <= 64 * 2 ** 20) this.encoded.set(key, encoded);
      }
      return await (typeof encoded === 'string' ? ort.InferenceSession.create(encoded, so) : ort.InferenceSession.create(encoded, so));
    } catch (e) {
      const what = seg === PROLOGUE ? 'the prologue' : seg === this.numLayers ? 'the head' : `layer ${seg}`;
      throw new Error(`onnxruntime could not load ${what} of ${path.basename(this.source.filePath)}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
}

/** Rows `positions` of a [1, S, H] tensor, as a [1, P, H] tensor of the same type. */
function selectRows(t: ort.Tensor, positions: number[]): ort.Tensor {
  const [, S, H] = t.dims;
  for (const p of positions) if (!Number.isInteger(p) || p < 0 || p >= S) throw new Error(`position ${p} is outside the sequence (length ${S})`);
  if (positions.length === S && positions.every((p, i) => p === i)) return t;
  const src = t.data as Float32Array | Uint16Array;
  const dst = new (src.constructor as { new (n: number): Float32Array | Uint16Array })(positions.length * H);
  positions.forEach((p, i) => dst.set(src.subarray(p * H, (p + 1) * H), i * H));
  return new ort.Tensor(t.type as 'float32', dst as Float32Array, [1, positions.length, H]);
}
