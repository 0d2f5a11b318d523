// The front of an onnxruntime-genai package, run the way genai's multimodal pipeline runs it:
// genai_config.json names the vision, embedding and decoder models and their input/output
// names. For a prompt with images (model type phi3v): the prompt is split at its
// `<|image_N|>` tags, each text chunk is tokenized on its own, and every tag becomes
// num_img_tokens copies of -N; the vision model turns the processor's pixel_values and
// image_sizes into image_features [tokens, hidden]; the embedding model takes input_ids and
// image_features and writes the features at the negative ids itself (the merge is part of the
// package's embedding graph, not of the runtime). Generated tokens go through the embedding
// model with an empty image_features. The decoder is fed here too, under the config's names:
// inputs_embeds, attention_mask, 1-D position_ids when the graph takes them, the KV cache.
//
// Images: Phi-3-vision's HD transform (resize, CLIP normalisation and padding by
// transformers.js' Phi3VImageProcessor, configured from the package's ort-extensions
// processor_config.json; the global view and the tiles laid out as genai's processor does).
// Model types whose pipeline differs (3-D M-RoPE positions, bidirectional image attention,
// per-image vision loops, audio) are refused with a one-line reason.

import * as fs from 'fs';
import * as path from 'path';
import { ModelPackage } from '../package/modelPackage';
import type { Frontend } from './frontend';
import { DecoderRunner, DecoderView, SessionInfo } from './decoderRunner';
import { GenerateOptions, greedyAnswer } from './greedy';
import { Feeds, floatTensor, int64Tensor, openSession, ort, RuntimeOptions, toFloat32 } from './ort';
import { ChatContent, ChatMessage, Encoded, Generation, Prefill, transformers } from './vlmFrontend';

/** genai_config.json model types whose front end the engine does not run, and why. */
const UNSUPPORTED_TYPES: Record<string, string> = {
  qwen2_5_vl: '3-D M-RoPE position_ids computed from image_grid_thw',
  qwen3_vl: '3-D M-RoPE position_ids computed from image_grid_thw',
  qwen3_5: '3-D M-RoPE position_ids computed from image_grid_thw',
  qwen3_5_moe: '3-D M-RoPE position_ids computed from image_grid_thw',
  fara: '3-D M-RoPE position_ids computed from image_grid_thw',
  videochat_flash_qwen: 'video features and 3-D M-RoPE position_ids',
  gemma3: 'bidirectional attention among image tokens and its own image processor',
  mistral3: "Pixtral's per-image vision loop",
  phi4mm: 'the speech and vision adapters of a multi-modal model',
  gemma4: 'per-layer inputs from the embedding model',
  whisper: 'an encoder-decoder speech model',
};

/** CLIP's normalisation, which Phi-3-vision's image transform uses. */
const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073];
const CLIP_STD = [0.26862954, 0.26130258, 0.27577711];
const IMAGE_TAG = /<\|image_(\d+)\|>/g;

type Section = { filename?: string; config_filename?: string; inputs?: Record<string, string>; outputs?: Record<string, string> };

export interface GenaiModel {
  type: string;
  decoder: Section;
  embedding?: Section;
  vision?: Section;
  eosIds: number[];
}

export function genaiModel(pkg: ModelPackage): GenaiModel {
  const m = ((pkg.config ?? {}).model ?? {}) as Record<string, unknown>;
  const eos = [m.eos_token_id].flat().filter((x): x is number => typeof x === 'number');
  return {
    type: typeof m.type === 'string' ? m.type : '',
    decoder: (m.decoder ?? {}) as Section,
    embedding: m.embedding as Section | undefined,
    vision: m.vision as Section | undefined,
    eosIds: eos,
  };
}

/** Why the engine cannot run this genai package's front end, or undefined when it can. */
export function genaiUnsupported(pkg: ModelPackage): string | undefined {
  const g = genaiModel(pkg);
  const what = `onnxruntime-genai package of type "${g.type || '?'}"`;
  const reason = UNSUPPORTED_TYPES[g.type];
  if (reason) return `${what}: the engine does not run its front end (${reason}); layers can still be removed with --layers ... --no-scp`;
  if (!g.embedding?.filename) {
    return `${what}: the decoder takes input_ids and there is no embedding model; the engine calibrates decoders that take inputs_embeds (layers can still be removed with --layers ... --no-scp)`;
  }
  if (g.vision?.filename && g.type !== 'phi3v') return `${what}: its vision pipeline is not known to the engine (supported: phi3v)`;
  return undefined;
}

function sectionName(s: Section | undefined, kind: 'inputs' | 'outputs', key: string): string {
  return s?.[kind]?.[key] ?? key;
}

/** Present key/value tensors of every layer, in the config's past-name order (key0, value0, ...). */
export interface GenaiCache {
  length: number;
  tensors: ort.Tensor[];
}

export interface GenaiStep {
  lastLogits: Float32Array;
  vocab: number;
  outputs: Record<string, ort.Tensor>;
  /** The decoder inputs of this pass, KV cache left out. */
  feeds: Feeds;
  cache: GenaiCache;
}

/** A prompt as genai's pipeline made it: the embedding model's output is the decoder's input. */
export interface GenaiEncoded extends Encoded {
  /** inputs_embeds, float32 [seqLen, hidden]. */
  embeds: Float32Array;
  hidden: number;
}

function genaiEncoded(enc: Encoded): GenaiEncoded {
  const g = enc as GenaiEncoded;
  if (!(g.embeds instanceof Float32Array)) throw new Error('this sample was not encoded by the onnxruntime-genai front end');
  return g;
}

interface GenaiDecoderIo {
  embeds: string;
  attentionMask?: string;
  positionIds?: string;
  past: string[];
  present: string[];
  logits: string;
}

export class GenaiFrontend implements Frontend {
  private readonly ioByRunner = new WeakMap<DecoderView, GenaiDecoderIo>();

  private constructor(
    readonly pkg: ModelPackage,
    private readonly tokenizer: any,
    private readonly imageProcessor: any,
    private readonly embedding: ort.InferenceSession,
    private readonly vision: ort.InferenceSession | undefined,
    private readonly model: GenaiModel,
    readonly eosIds: number[],
  ) {}

  static async open(pkg: ModelPackage, opts?: RuntimeOptions): Promise<GenaiFrontend> {
    const problem = genaiUnsupported(pkg);
    if (problem) throw new Error(problem);
    const model = genaiModel(pkg);
    const t = await transformers();
    t.env.localModelPath = path.dirname(pkg.root) + path.sep;
    let tokenizer: any;
    try {
      tokenizer = await t.AutoTokenizer.from_pretrained(path.basename(pkg.root), { local_files_only: true });
    } catch (e) {
      throw new Error(`cannot load the tokenizer of ${pkg.root} (tokenizer.json, tokenizer_config.json): ${(e as Error).message}`);
    }
    const imageProcessor = model.vision?.filename ? phi3ImageProcessor(t, pkg.root, model.vision) : undefined;
    const embedding = await openSession(path.join(pkg.root, model.embedding!.filename!), opts);
    let vision: ort.InferenceSession | undefined;
    try {
      vision = model.vision?.filename ? await openSession(path.join(pkg.root, model.vision.filename), opts) : undefined;
    } catch (e) {
      await embedding.release();
      throw e;
    }
    const eos = model.eosIds.length ? model.eosIds : [tokenizer.eos_token_id].filter((x: unknown) => typeof x === 'number');
    return new GenaiFrontend(pkg, tokenizer, imageProcessor, embedding, vision, model, eos);
  }

  async dispose(): Promise<void> {
    await this.embedding.release();
    await this.vision?.release();
  }

  async encode(messages: ChatMessage[], imagePath: string | undefined, addGenerationPrompt: boolean): Promise<GenaiEncoded> {
    // LLaVA-style data marks the image with `<image>`; genai prompts mark it `<|image_1|>`.
    const tagged = messages.map((m) => ({ ...m, content: retag(m.content) }));
    const prompt = this.tokenizer.apply_chat_template(tagged, { tokenize: false, add_generation_prompt: addGenerationPrompt }) as string;
    const tags = [...prompt.matchAll(IMAGE_TAG)].map((m) => Number(m[1]));
    let features: ort.Tensor | undefined;
    let perImage: number[] = [];
    if (imagePath) {
      if (!this.vision || !this.imageProcessor) throw new Error(`${this.pkg.root} has no vision model, but the sample has an image`);
      const t = await transformers();
      let image;
      try {
        image = await t.RawImage.read(imagePath);
      } catch (e) {
        throw new Error(`cannot read image ${imagePath}: ${(e as Error).message}`);
      }
      const inputs = await phi3Crops(t, this.imageProcessor, image);
      perImage = [inputs.numImgTokens];
      features = await this.runVision(inputs.pixelValues, inputs.imageSizes);
    }
    if (new Set(tags).size !== perImage.length) {
      throw new Error(`the prompt has ${new Set(tags).size} image tag(s) <|image_N|> but ${perImage.length} image(s) were given: check the chat template`);
    }
    const chunks = prompt.split(IMAGE_TAG).filter((_, i) => i % 2 === 0); // split() keeps the captured numbers at odd indices
    const ids: number[] = [];
    chunks.forEach((chunk, i) => {
      // Each chunk is encoded on its own with the tokenizer's own special tokens, as genai does.
      if (chunk) ids.push(...(this.tokenizer.encode(chunk) as number[]));
      if (i < tags.length) {
        const n = tags[i];
        if (n < 1 || n > perImage.length) throw new Error(`image tag <|image_${n}|> has no image (${perImage.length} given)`);
        for (let k = 0; k < perImage[n - 1]; k++) ids.push(-n);
      }
    });
    const nImage = ids.filter((id) => id < 0).length;
    const featRows = features ? features.dims[0] : 0;
    if (featRows !== nImage) {
      throw new Error(`the processor asks for ${nImage} image tokens but the vision model produced ${featRows} features: processor_config.json and vision model disagree`);
    }
    const out = await this.runEmbedding(ids, features);
    const hidden = out.dims[out.dims.length - 1];
    const isImage = Uint8Array.from(ids, (id) => (id < 0 ? 1 : 0));
    return { ids, embeds: Float32Array.from(toFloat32(out)), seqLen: ids.length, hidden, isImage, inputs: {} };
  }

  /** Runs the vision model on processor outputs; image_features [tokens, hidden]. */
  async runVision(pixelValues: { data: Float32Array; dims: number[] }, imageSizes: { data: BigInt64Array; dims: number[] }): Promise<ort.Tensor> {
    const v = this.model.vision!;
    const pvName = sectionName(v, 'inputs', 'pixel_values');
    const feeds: Record<string, ort.Tensor> = { [pvName]: floatInput(this.vision!, pvName, pixelValues.data, pixelValues.dims) };
    const sizesName = sectionName(v, 'inputs', 'image_sizes');
    if (this.vision!.inputNames.includes(sizesName)) feeds[sizesName] = new ort.Tensor('int64', imageSizes.data, imageSizes.dims);
    const outName = sectionName(v, 'outputs', 'image_features');
    const out = (await this.vision!.run(feeds, [outName]))[outName];
    // Some exports keep a batch axis; the embedding model takes [tokens, hidden].
    return out.dims.length === 3 ? new ort.Tensor(out.type as 'float32', out.data as Float32Array, [out.dims[0] * out.dims[1], out.dims[2]]) : out;
  }

  /** Runs the embedding model: input_ids (negative at image positions) + image_features -> inputs_embeds [1, S, hidden]. */
  async runEmbedding(ids: number[], features?: ort.Tensor): Promise<ort.Tensor> {
    const e = this.model.embedding!;
    const idsName = sectionName(e, 'inputs', 'input_ids');
    const featName = sectionName(e, 'inputs', 'image_features');
    const idsType = this.embedding.inputMetadata.find((m) => m.name === idsName);
    const feeds: Record<string, ort.Tensor> = {
      [idsName]: idsType?.isTensor && idsType.type === 'int32' ? new ort.Tensor('int32', Int32Array.from(ids), [1, ids.length]) : new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, ids.length]),
    };
    const featMeta = this.embedding.inputMetadata.find((m) => m.name === featName);
    if (featMeta) {
      const hidden = featMeta.isTensor ? Number(featMeta.shape[featMeta.shape.length - 1]) : NaN;
      if (features) feeds[featName] = features;
      else if (Number.isInteger(hidden) && hidden > 0) feeds[featName] = floatInput(this.embedding, featName, new Float32Array(0), [0, hidden]);
      else throw new Error(`${e.filename}: cannot tell the width of ${featName} to feed no image features`);
    }
    const outName = sectionName(e, 'outputs', 'inputs_embeds');
    return (await this.embedding.run(feeds, [outName]))[outName];
  }

  /**
   * One decoder pass over `seqLen` new positions (batch 1) with genai's inputs: inputs_embeds,
   * attention_mask of ones over past + new, position_ids past..past+seqLen-1 when the graph
   * takes them, and the KV cache under the config's past/present names (empty at first).
   */
  async decoderStep(runner: DecoderRunner, embeds: Float32Array, seqLen: number, cache?: GenaiCache, fetch: string[] = []): Promise<GenaiStep> {
    const io = this.decoderIo(runner);
    const total = (cache?.length ?? 0) + seqLen;
    const feeds = this.stepFeeds(runner, embeds, seqLen, cache);
    const out = await runner.session.run(feeds, [...new Set([io.logits, ...io.present, ...fetch])]);
    const logits = out[io.logits];
    const vocab = logits.dims[logits.dims.length - 1];
    const all = toFloat32(logits);
    const inputs: Feeds = Object.fromEntries(Object.entries(feeds).filter(([name]) => !io.past.includes(name)));
    return { lastLogits: all.slice(all.length - vocab), vocab, outputs: out, feeds: inputs, cache: { length: total, tensors: io.present.map((n) => out[n]) } };
  }

  /** genai's decoder inputs for `seqLen` new positions after `cache` (empty cache when absent). */
  private stepFeeds(decoder: DecoderView, embeds: Float32Array, seqLen: number, cache?: GenaiCache): Feeds {
    const io = this.decoderIo(decoder);
    const past = cache?.length ?? 0;
    const total = past + seqLen;
    const s = decoder.spec;
    const feeds: Feeds = { [io.embeds]: floatInput(decoder.session, io.embeds, embeds, [1, seqLen, s.hidden]) };
    if (io.attentionMask) feeds[io.attentionMask] = int64Tensor(new Array(total).fill(1), [1, total]);
    if (io.positionIds) feeds[io.positionIds] = int64Tensor(Array.from({ length: seqLen }, (_, i) => past + i), [1, seqLen]);
    const empty = s.kvType === 'float16' ? new ort.Tensor('float16', new Uint16Array(0), [1, s.kvHeads, 0, s.headDim]) : new ort.Tensor('float32', new Float32Array(0), [1, s.kvHeads, 0, s.headDim]);
    io.past.forEach((name, i) => (feeds[name] = cache?.tensors[i] ?? empty));
    return feeds;
  }

  async prepare(enc: Encoded, decoder: DecoderView): Promise<Feeds> {
    const g = genaiEncoded(enc);
    const io = this.decoderIo(decoder);
    const feeds = this.stepFeeds(decoder, g.embeds, g.seqLen);
    for (const n of io.past) delete feeds[n];
    return feeds;
  }

  async prefill(enc: Encoded, runner: DecoderRunner, fetch: string[] = []): Promise<Prefill> {
    const g = genaiEncoded(enc);
    const r = await this.decoderStep(runner, g.embeds, g.seqLen, undefined, fetch);
    return { lastLogits: r.lastLogits, vocab: r.vocab, outputs: r.outputs, feeds: r.feeds, embeds: g.embeds, hidden: g.hidden };
  }

  /** Greedy short answer as genai's generator runs it: prompt pass, then one token at a time through the embedding model. */
  async generate(enc: Encoded, runner: DecoderRunner, maxNewTokens = 4, opts?: GenerateOptions): Promise<Generation> {
    const g = genaiEncoded(enc);
    return greedyAnswer(
      this,
      () => this.decoderStep(runner, g.embeds, g.seqLen),
      async (next, previous) => this.decoderStep(runner, await this.embedTokens([next]), 1, previous.cache),
      maxNewTokens,
      opts,
    );
  }

  /** The decoder's input/output names from genai_config.json, checked against the graph. */
  private decoderIo(runner: DecoderView): GenaiDecoderIo {
    const cached = this.ioByRunner.get(runner);
    if (cached) return cached;
    const d = this.model.decoder;
    const inputs = new Set(runner.session.inputNames);
    const outputs = new Set(runner.session.outputNames);
    const L = runner.spec.past.length;
    const pattern = (key: string, fallback: string) => (i: number) => (d[key.startsWith('present') ? 'outputs' : 'inputs']?.[key] ?? fallback).replace('%d', String(i));
    const pastKey = pattern('past_key_names', 'past_key_values.%d.key');
    const pastValue = pattern('past_value_names', 'past_key_values.%d.value');
    const presentKey = pattern('present_key_names', 'present.%d.key');
    const presentValue = pattern('present_value_names', 'present.%d.value');
    const io: GenaiDecoderIo = {
      embeds: sectionName(d, 'inputs', 'inputs_embeds'),
      attentionMask: inputs.has(sectionName(d, 'inputs', 'attention_mask')) ? sectionName(d, 'inputs', 'attention_mask') : undefined,
      positionIds: inputs.has(sectionName(d, 'inputs', 'position_ids')) ? sectionName(d, 'inputs', 'position_ids') : undefined,
      past: Array.from({ length: L }, (_, i) => [pastKey(i), pastValue(i)]).flat(),
      present: Array.from({ length: L }, (_, i) => [presentKey(i), presentValue(i)]).flat(),
      logits: sectionName(d, 'outputs', 'logits'),
    };
    const positions = runner.session.inputMetadata.find((m) => m.name === io.positionIds);
    if (positions?.isTensor && positions.shape.length === 3) {
      throw new Error(`${d.filename} takes 3-D (M-RoPE) position_ids; the engine feeds genai packages 1-D positions only`);
    }
    const missing = [io.embeds, ...io.past].filter((n) => !inputs.has(n)).concat([io.logits, ...io.present].filter((n) => !outputs.has(n)));
    if (missing.length) throw new Error(`genai_config.json and ${d.filename} disagree: the graph has no ${missing.slice(0, 3).join(', ')}`);
    this.ioByRunner.set(runner, io);
    return io;
  }

  async embedTokens(ids: number[]): Promise<Float32Array> {
    return Float32Array.from(toFloat32(await this.runEmbedding(ids)));
  }

  decode(tokens: number[]): string {
    if (tokens.length === 0) return '';
    return this.tokenizer.decode(tokens, { skip_special_tokens: true }) as string;
  }

  tokenText(id: number): string {
    return id < 0 ? `<|image_${-id}|>` : (this.tokenizer.decode([id], { skip_special_tokens: false }) as string);
  }
}

/**
 * Message content as the string a genai prompt is: genai callers write the image tag into the
 * text themselves, and the builder's chat templates (Phi-3-vision's) render string content
 * only. LLaVA-style `<image>` and content-list image entries become `<|image_1|>`.
 */
function retag(content: ChatContent): string {
  if (typeof content === 'string') return content.replace(/<image>/g, '<|image_1|>');
  let n = 0;
  return content.map((c) => (c.type === 'image' ? `<|image_${++n}|>\n` : c.text)).join('');
}

function floatInput(session: SessionInfo, name: string, data: Float32Array, dims: readonly number[]): ort.Tensor {
  const meta = session.inputMetadata.find((m) => m.name === name);
  return floatTensor(meta?.isTensor && meta.type === 'float16' ? 'float16' : 'float32', data, [...dims]);
}

const CROP = 336;

/**
 * Phi-3-vision's HD transform for one image, as genai's image processor lays it out: the
 * image resized to at most num_crops tiles of 336 x 336 (transformers.js' Phi3VImageProcessor
 * resizes, normalises with CLIP's statistics and pads it), a bicubic 336 x 336 global view
 * first, then the tiles cut out of the padded image row by row, zero crops up to
 * num_crops + 1; image_sizes is the padded [height, width].
 */
export async function phi3Crops(t: Awaited<ReturnType<typeof transformers>>, proc: any, image: unknown) {
  const { pixel_values: pv } = await proc.preprocess(image); // [3, H, W], H and W multiples of 336
  const [C, H, W] = pv.dims as number[];
  const rows = H / CROP;
  const cols = W / CROP;
  const numCrops = proc.config.num_crops as number;
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows * cols > numCrops) {
    throw new Error(`Phi-3-vision image transform gave a ${W}x${H} image, not at most ${numCrops} tiles of ${CROP}`);
  }
  const plane = CROP * CROP;
  const data = new Float32Array((numCrops + 1) * C * plane);
  const global = await t.interpolate_4d(pv.unsqueeze(0), { size: [CROP, CROP], mode: 'bicubic' });
  data.set(global.data as Float32Array, 0);
  const src = pv.data as Float32Array;
  for (let ty = 0; ty < rows; ty++) {
    for (let tx = 0; tx < cols; tx++) {
      const crop = 1 + ty * cols + tx;
      for (let c = 0; c < C; c++) {
        for (let y = 0; y < CROP; y++) {
          const from = c * H * W + (ty * CROP + y) * W + tx * CROP;
          data.set(src.subarray(from, from + CROP), (crop * C + c) * plane + y * CROP);
        }
      }
    }
  }
  return {
    pixelValues: { data, dims: [1, numCrops + 1, C, CROP, CROP] },
    imageSizes: { data: BigInt64Array.from([BigInt(H), BigInt(W)]), dims: [1, 2] },
    numImgTokens: proc.calc_num_image_tokens_from_image_size(W, H) as number,
  };
}

/** transformers.js' Phi-3-vision HD image processor, set up from the package's ort-extensions processor_config.json. */
export function phi3ImageProcessor(t: Awaited<ReturnType<typeof transformers>>, root: string, vision: Section): any {
  const file = path.join(root, vision.config_filename ?? 'processor_config.json');
  let cfg: any;
  try {
    cfg = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`cannot read the image processor config ${file}: ${(e as Error).message}`);
  }
  const ops = (cfg?.processor?.transforms ?? []) as { operation?: { type?: string; attrs?: Record<string, number> } }[];
  const op = ops.map((x) => x.operation).find((o) => o?.type === 'Phi3ImageTransform');
  if (!op) throw new Error(`${file}: no Phi3ImageTransform step; only Phi-3-vision's image transform is supported for genai packages`);
  const numCrops = op.attrs?.num_crops ?? 4;
  const numImgTokens = op.attrs?.num_img_tokens ?? 144;
  return new (t as any).Phi3VImageProcessor({ num_crops: numCrops, num_img_tokens: numImgTokens, image_mean: CLIP_MEAN, image_std: CLIP_STD });
}
