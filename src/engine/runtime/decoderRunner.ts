// Runs a decoder graph (original, pruned or instrumented) step by step with a KV cache.
// Input names, cache layout and element types are read from the graph itself, so the same
// runner serves every package layout and both attention styles.

import { OnnxFile } from '../onnx/onnxFile';
import { DataType, GraphProto, ModelProto } from '../onnx/proto';
import { Feeds, floatTensor, int64Tensor, openEditedSession, openSession, ort, OwnedSession, RuntimeOptions, toFloat32 } from './ort';

export interface DecoderSpec {
  embeds: string;
  embedsType: 'float32' | 'float16';
  hidden: number;
  attentionMask?: string;
  positionIds?: string;
  /** 3 for multimodal rotary (Qwen2-VL: 3 x B x S), else 2. */
  positionRank: number;
  past: { key: string; value: string }[];
  present: { key: string; value: string }[];
  kvHeads: number;
  headDim: number;
  kvType: 'float32' | 'float16';
  logits: string;
}

export interface KvCache {
  length: number;
  tensors: ort.Tensor[]; // key0, value0, key1, value1, ...
}

export interface StepResult {
  /** Logits of the last position, float32 [V]. */
  lastLogits: Float32Array;
  vocab: number;
  present: KvCache;
  outputs: Record<string, ort.Tensor>;
}

function byIndex(names: string[], re: RegExp): string[] {
  return names
    .map((n) => ({ n, m: re.exec(n) }))
    .filter((x) => x.m)
    .sort((a, b) => Number(a.m![1]) - Number(b.m![1]))
    .map((x) => x.n);
}

export function decoderSpec(g: GraphProto, fallback: { kvHeads?: number; headDim?: number; hidden?: number } = {}): DecoderSpec {
  const inputNames = g.input.map((v) => v.name);
  const outputNames = g.output.map((v) => v.name);
  const embedsVi = g.input.find((v) => v.name === 'inputs_embeds') ?? g.input.find((v) => /embed/.test(v.name));
  if (!embedsVi) throw new Error('decoder has no inputs_embeds input: text-only decoders taking input_ids are not runnable by this runner yet');
  const pastKeys = byIndex(inputNames, /^past.*?(\d+).*key/);
  const pastValues = byIndex(inputNames, /^past.*?(\d+).*value/);
  const presentKeys = byIndex(outputNames, /^present.*?(\d+).*key/);
  const presentValues = byIndex(outputNames, /^present.*?(\d+).*value/);
  const pastVi = g.input.find((v) => v.name === pastKeys[0]);
  const kvHeads = pastVi?.shape?.[1]?.value ?? fallback.kvHeads;
  const headDim = pastVi?.shape?.[3]?.value ?? fallback.headDim;
  const hidden = embedsVi.shape?.[2]?.value ?? fallback.hidden;
  if (pastKeys.length && (kvHeads === undefined || headDim === undefined)) throw new Error('cannot tell the KV-cache shape from the graph or config');
  if (hidden === undefined) throw new Error('cannot tell the hidden size from the graph or config');
  const posVi = g.input.find((v) => v.name === 'position_ids');
  return {
    embeds: embedsVi.name,
    embedsType: embedsVi.elemType === DataType.FLOAT16 ? 'float16' : 'float32',
    hidden,
    attentionMask: inputNames.includes('attention_mask') ? 'attention_mask' : undefined,
    positionIds: posVi?.name,
    positionRank: posVi?.shape?.length === 3 ? 3 : 2,
    past: pastKeys.map((k, i) => ({ key: k, value: pastValues[i] })),
    present: presentKeys.map((k, i) => ({ key: k, value: presentValues[i] })),
    kvHeads: kvHeads ?? 0,
    headDim: headDim ?? 0,
    kvType: pastVi?.elemType === DataType.FLOAT16 ? 'float16' : 'float32',
    logits: outputNames.find((n) => /logits/.test(n)) ?? outputNames[0],
  };
}

export function emptyCache(spec: DecoderSpec): KvCache {
  const { kvHeads, headDim, kvType } = spec;
  const empty = () => (kvType === 'float16' ? new ort.Tensor('float16', new Uint16Array(0), [1, kvHeads, 0, headDim]) : new ort.Tensor('float32', new Float32Array(0), [1, kvHeads, 0, headDim]));
  const tensors: ort.Tensor[] = [];
  for (let i = 0; i < spec.past.length; i++) tensors.push(empty(), empty());
  return { length: 0, tensors };
}

/** The graph inputs of one step over `seqLen` new positions (batch 1, no padding) after `past`. */
export function decoderFeeds(s: DecoderSpec, embeds: Float32Array, seqLen: number, past: KvCache): Feeds {
  const total = past.length + seqLen;
  const feeds: Feeds = { [s.embeds]: floatTensor(s.embedsType, embeds, [1, seqLen, s.hidden]) };
  if (s.attentionMask) feeds[s.attentionMask] = int64Tensor(new Array(total).fill(1), [1, total]);
  if (s.positionIds) {
    const pos = Array.from({ length: seqLen }, (_, i) => past.length + i);
    feeds[s.positionIds] = s.positionRank === 3 ? int64Tensor([...pos, ...pos, ...pos], [3, 1, seqLen]) : int64Tensor(pos, [1, seqLen]);
  }
  s.past.forEach((p, i) => {
    feeds[p.key] = past.tensors[2 * i];
    feeds[p.value] = past.tensors[2 * i + 1];
  });
  return feeds;
}

export class DecoderRunner {
  private constructor(
    readonly session: ort.InferenceSession,
    readonly spec: DecoderSpec,
    private readonly owned?: OwnedSession,
  ) {}

  static async fromFile(file: string, opts?: RuntimeOptions, fallback?: { kvHeads?: number; headDim?: number }): Promise<DecoderRunner> {
    const f = OnnxFile.open(file);
    let spec: DecoderSpec;
    try {
      spec = decoderSpec(f.graph, fallback);
    } finally {
      f.close();
    }
    return new DecoderRunner(await openSession(file, opts), spec);
  }

  static async fromModel(model: ModelProto, source: OnnxFile, opts?: RuntimeOptions, fallback?: { kvHeads?: number; headDim?: number }): Promise<DecoderRunner> {
    const spec = decoderSpec(model.graph, fallback);
    const owned = await openEditedSession(model, source, opts);
    return new DecoderRunner(owned.session, spec, owned);
  }

  async dispose(): Promise<void> {
    if (this.owned) await this.owned.dispose();
    else await this.session.release();
  }

  get numLayers(): number {
    return this.spec.past.length;
  }

  emptyCache(): KvCache {
    return emptyCache(this.spec);
  }

  /**
   * One forward step over `seqLen` new positions (batch 1). `embeds` is [seqLen, hidden] float32.
   * `fetch` names extra outputs to return (instrumentation taps).
   */
  async step(embeds: Float32Array, seqLen: number, cache?: KvCache, fetch: string[] = []): Promise<StepResult> {
    const s = this.spec;
    const past = cache ?? this.emptyCache();
    const total = past.length + seqLen;
    const feeds = decoderFeeds(s, embeds, seqLen, past);
    const wanted = [s.logits, ...s.present.flatMap((p) => [p.key, p.value]), ...fetch];
    const out = await this.session.run(feeds, wanted);
    const logitsT = out[s.logits];
    const vocab = logitsT.dims[logitsT.dims.length - 1];
    const all = toFloat32(logitsT);
    const lastLogits = all.slice(all.length - vocab);
    const present: KvCache = { length: total, tensors: s.present.flatMap((p) => [out[p.key], out[p.value]]) };
    return { lastLogits, vocab, present, outputs: out };
  }
}

export function argmax(v: Float32Array): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
  return best;
}
