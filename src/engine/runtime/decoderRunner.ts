// Runs a decoder graph (original, pruned or instrumented) on inputs that a family's own
// model class prepared (see vlmFrontend.ts). Cache layout, element types and output names
// are read from the graph itself, so the same runner serves every package layout and both
// attention styles.

import { OnnxFile } from '../onnx/onnxFile';
import { DataType, GraphProto, ModelProto } from '../onnx/proto';
import { Feeds, openEditedSession, openSession, ort, OwnedSession, RuntimeOptions, toFloat32 } from './ort';

export interface DecoderSpec {
  embeds: string;
  hidden: number;
  past: { key: string; value: string }[];
  present: { key: string; value: string }[];
  kvHeads: number;
  headDim: number;
  kvType: 'float32' | 'float16';
  logits: string;
}

export interface StepResult {
  /** Logits of the last position, float32 [V]. */
  lastLogits: Float32Array;
  vocab: number;
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
  return {
    embeds: embedsVi.name,
    hidden,
    past: pastKeys.map((k, i) => ({ key: k, value: pastValues[i] })),
    present: presentKeys.map((k, i) => ({ key: k, value: presentValues[i] })),
    kvHeads: kvHeads ?? 0,
    headDim: headDim ?? 0,
    kvType: pastVi?.elemType === DataType.FLOAT16 ? 'float16' : 'float32',
    logits: outputNames.find((n) => /logits/.test(n)) ?? outputNames[0],
  };
}

/** Empty KV-cache inputs (batch 1, no past positions) under the decoder's past names. */
export function emptyPast(s: DecoderSpec): Feeds {
  const empty = () => (s.kvType === 'float16' ? new ort.Tensor('float16', new Uint16Array(0), [1, s.kvHeads, 0, s.headDim]) : new ort.Tensor('float32', new Float32Array(0), [1, s.kvHeads, 0, s.headDim]));
  const feeds: Feeds = {};
  for (const p of s.past) for (const n of [p.key, p.value]) feeds[n] = empty();
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

  /**
   * A runner that never runs the decoder: its session has the graph's inputs and outputs and
   * answers every run with placeholder outputs (a 1 x 1 x 1 logits tensor, empty caches), so a
   * frontend's prefill through it yields the exact decoder feeds it prepares (mask, positions,
   * ...) without loading the decoder. Layer-wise execution feeds them to its prologue.
   */
  static feedsOnly(graph: GraphProto, spec: DecoderSpec): DecoderRunner {
    // What onnxruntime reports of a session's inputs: element type and shape, symbolic dims by name.
    const elemType = (t?: number) => (t === DataType.FLOAT16 ? 'float16' : t === DataType.INT64 ? 'int64' : t === DataType.INT32 ? 'int32' : 'float32');
    const meta = (v: GraphProto['input'][number]) => ({ name: v.name, isTensor: true, type: elemType(v.elemType), shape: (v.shape ?? []).map((d) => d.value ?? d.param ?? '') });
    const session = {
      inputNames: graph.input.map((v) => v.name),
      outputNames: graph.output.map((v) => v.name),
      inputMetadata: graph.input.map(meta),
      outputMetadata: graph.output.map(meta),
      run: async () => {
        const out: Record<string, ort.Tensor> = { [spec.logits]: new ort.Tensor('float32', new Float32Array(1), [1, 1, 1]) };
        const empty = emptyPast(spec);
        spec.present.forEach((p, i) => {
          out[p.key] = empty[spec.past[i]?.key] ?? new ort.Tensor('float32', new Float32Array(0), [1, spec.kvHeads, 0, spec.headDim]);
          out[p.value] = empty[spec.past[i]?.value] ?? new ort.Tensor('float32', new Float32Array(0), [1, spec.kvHeads, 0, spec.headDim]);
        });
        return out;
      },
      release: async () => undefined,
    };
    return new DecoderRunner(session as unknown as ort.InferenceSession, spec);
  }

  async dispose(): Promise<void> {
    if (this.owned) await this.owned.dispose();
    else await this.session.release();
  }

  get numLayers(): number {
    return this.spec.past.length;
  }

  /** Feeds without the KV cache: what a family's model class prepared for the decoder. */
  withoutCache(feeds: Feeds): Feeds {
    const cache = new Set(this.spec.past.flatMap((p) => [p.key, p.value]));
    return Object.fromEntries(Object.entries(feeds).filter(([k]) => !cache.has(k)));
  }

  /**
   * One forward pass over prepared inputs (batch 1). Cache inputs missing from `inputs` are
   * empty, shaped for this decoder (so inputs prepared for the original serve a pruned one).
   * `fetch` names extra outputs to return (instrumentation taps).
   */
  async run(inputs: Feeds, fetch: string[] = []): Promise<StepResult> {
    const s = this.spec;
    const names = new Set(this.session.inputNames);
    const feeds: Feeds = Object.fromEntries(Object.entries(inputs).filter(([k]) => names.has(k)));
    for (const [n, t] of Object.entries(emptyPast(s))) feeds[n] ??= t;
    const wanted = [...new Set([...this.session.outputNames, ...fetch])];
    const out = await this.session.run(feeds, wanted);
    const logitsT = out[s.logits];
    const vocab = logitsT.dims[logitsT.dims.length - 1];
    const all = toFloat32(logitsT);
    return { lastLogits: all.slice(all.length - vocab), vocab, outputs: out };
  }
}

export function argmax(v: Float32Array): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
  return best;
}
