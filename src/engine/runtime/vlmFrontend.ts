// Everything before the decoder: the package's own processor (tokenizer, chat template,
// image preprocessing, image-token expansion) through transformers.js, then the vision
// encoder and the token embeddings through onnxruntime, with image features scattered into
// the image-token positions exactly as transformers.js' LLaVA does. Shared by the original
// and every pruned package (they have identical vision encoders and embeddings).

import * as path from 'path';
import { ModelPackage } from '../package/modelPackage';
import { int64Tensor, openSession, ort, RuntimeOptions, toFloat32 } from './ort';

type Transformers = typeof import('@huggingface/transformers');
let tjsPromise: Promise<Transformers> | undefined;

/** Loads transformers.js once, configured for local files only (nothing is downloaded). */
export function transformers(): Promise<Transformers> {
  tjsPromise ??= import('@huggingface/transformers').then((t) => {
    t.env.allowRemoteModels = false;
    t.env.allowLocalModels = true;
    return t;
  });
  return tjsPromise;
}

export type ChatContent = string | Array<{ type: 'image' } | { type: 'text'; text: string }>;
export interface ChatMessage {
  role: 'user' | 'assistant' | 'system';
  content: ChatContent;
}

export interface Encoded {
  ids: number[];
  /** [seqLen, hidden] float32. */
  embeds: Float32Array;
  seqLen: number;
  hidden: number;
  /** 1 where the position holds an image feature. */
  isImage: Uint8Array;
  /** Patch grid of the image tokens (rows, cols), when square. */
  imageGrid?: [number, number];
}

export class VlmFrontend {
  private constructor(
    readonly pkg: ModelPackage,
    private readonly processor: any,
    readonly tokenizer: any,
    private readonly embed: ort.InferenceSession,
    private readonly vision: ort.InferenceSession | undefined,
    readonly imageTokenId: number | undefined,
    readonly eosIds: number[],
  ) {}

  static async open(pkg: ModelPackage, opts?: RuntimeOptions): Promise<VlmFrontend> {
    const t = await transformers();
    t.env.localModelPath = path.dirname(pkg.root) + path.sep;
    const name = path.basename(pkg.root);
    const loadOpts = { local_files_only: true } as const;
    let processor: any;
    let tokenizer: any;
    const hasProcessor = pkg.files.includes('processor_config.json') || pkg.files.includes('preprocessor_config.json');
    try {
      if (hasProcessor) {
        processor = await t.AutoProcessor.from_pretrained(name, loadOpts);
        tokenizer = processor.tokenizer;
      } else tokenizer = await t.AutoTokenizer.from_pretrained(name, loadOpts);
    } catch (e) {
      throw new Error(`cannot load the tokenizer/processor of ${pkg.root}: ${(e as Error).message}`);
    }
    if (!pkg.embedTokens) throw new Error(`${pkg.root} has no onnx/embed_tokens*.onnx: this runner needs separate embeddings`);
    const embed = await openSession(pkg.embedTokens, opts);
    const vision = pkg.visionEncoder ? await openSession(pkg.visionEncoder, opts) : undefined;
    const cfg = (pkg.config ?? {}) as Record<string, any>;
    const gen = cfg.text_config ?? cfg;
    const eos = [gen.eos_token_id ?? cfg.eos_token_id ?? tokenizer.eos_token_id].flat().filter((x: unknown) => typeof x === 'number');
    return new VlmFrontend(pkg, processor, tokenizer, embed, vision, pkg.text.imageTokenIndex, eos);
  }

  async dispose(): Promise<void> {
    await this.embed.release();
    await this.vision?.release();
  }

  /** The prompt string the package's chat template makes of these messages. */
  renderPrompt(messages: ChatMessage[], addGenerationPrompt: boolean): string {
    return this.tokenizer.apply_chat_template(messages, { tokenize: false, add_generation_prompt: addGenerationPrompt }) as string;
  }

  /** The string the processor expands into one token per image feature (`<image>`). */
  get imageTokenText(): string | undefined {
    const configured = this.processor?.config?.image_token ?? this.processor?.image_token;
    if (typeof configured === 'string' && configured) return configured;
    return this.imageTokenId !== undefined ? this.tokenText(this.imageTokenId) : undefined;
  }

  /**
   * The prompt for a sample with an image. Older LLaVA-style templates render message content
   * as a plain string (`USER: {{ content }}`) and drop the image entry of a content list; the
   * image token then goes into the text where the entry was, as LLaVA's own prompts place it.
   */
  private renderWithImage(messages: ChatMessage[], addGenerationPrompt: boolean): string {
    const token = this.imageTokenText;
    const hasList = messages.some((m) => Array.isArray(m.content));
    let first: string | undefined;
    try {
      first = this.renderPrompt(messages, addGenerationPrompt);
    } catch (e) {
      if (!hasList || !token) throw e; // a string-only template may also fail on a list: try the text form
    }
    if (first !== undefined && (!token || !hasList || first.includes(token))) return first;
    const asText = messages.map((m) => ({
      ...m,
      content: Array.isArray(m.content) ? m.content.map((c) => (c.type === 'image' ? `${token}\n` : c.text)).join('') : m.content,
    }));
    const second = this.renderPrompt(asText, addGenerationPrompt);
    if (second.includes(token!)) return second;
    const file = ['chat_template.jinja', 'chat_template.json', 'tokenizer_config.json'].find((f) => this.pkg.files.includes(f)) ?? 'tokenizer_config.json';
    throw new Error(
      `the chat template in ${path.join(this.pkg.root, file)} drops the image: its prompt holds no ${token} token, ` +
        `neither for a content list with an image entry nor for text containing ${token}; the template must render the image`,
    );
  }

  async encode(messages: ChatMessage[], imagePath: string | undefined, addGenerationPrompt: boolean): Promise<Encoded> {
    const t = await transformers();
    const text = imagePath ? this.renderWithImage(messages, addGenerationPrompt) : this.renderPrompt(messages, addGenerationPrompt);
    let ids: number[];
    let imageFeatures: Float32Array | undefined;
    let featureDims: readonly number[] = [];
    if (imagePath) {
      if (!this.processor || !this.vision) throw new Error(`${this.pkg.root} has no vision encoder/processor, but the sample has an image`);
      let image;
      try {
        image = await t.RawImage.read(imagePath);
      } catch (e) {
        throw new Error(`cannot read image ${imagePath}: ${(e as Error).message}`);
      }
      const inputs = await this.processor(image, text);
      ids = Array.from(inputs.input_ids.data as BigInt64Array, Number);
      const pv = inputs.pixel_values;
      const visionInput = this.vision.inputNames[0];
      const out = await this.vision.run({ [visionInput]: new ort.Tensor('float32', pv.data as Float32Array, pv.dims) });
      const feat = out[this.vision.outputNames[0]];
      imageFeatures = toFloat32(feat);
      featureDims = feat.dims;
    } else {
      const enc = this.tokenizer(text);
      ids = Array.from(enc.input_ids.data as BigInt64Array, Number);
    }
    const embOut = await this.embed.run({ [this.embed.inputNames[0]]: int64Tensor(ids, [1, ids.length]) });
    const embT = embOut[this.embed.outputNames[0]];
    const embeds = Float32Array.from(toFloat32(embT));
    const hidden = embT.dims[embT.dims.length - 1];
    const isImage = new Uint8Array(ids.length);
    let grid: [number, number] | undefined;
    if (imageFeatures) {
      const positions = ids.flatMap((id, i) => (id === this.imageTokenId ? [i] : []));
      const nFeat = imageFeatures.length / hidden;
      if (positions.length !== nFeat) {
        const cause = positions.length === 0
          ? `the prompt built from the chat template holds no image token (id ${this.imageTokenId}, config image_token_index): the template or the config's image token is wrong`
          : 'processor_config.json (patch_size, num_additional_image_tokens) and the vision encoder disagree';
        throw new Error(`the prompt has ${positions.length} image tokens but the vision encoder produced ${nFeat} features: ${cause}`);
      }
      positions.forEach((p, k) => {
        embeds.set(imageFeatures!.subarray(k * hidden, (k + 1) * hidden), p * hidden);
        isImage[p] = 1;
      });
      const perImage = featureDims.length === 3 ? featureDims[1] : nFeat;
      const side = Math.round(Math.sqrt(perImage));
      if (side * side === perImage) grid = [side, side];
    }
    return { ids, embeds, seqLen: ids.length, hidden, isImage, imageGrid: grid };
  }

  decode(tokens: number[]): string {
    // A model may answer with end-of-sequence at once; transformers.js rejects decoding [].
    if (tokens.length === 0) return '';
    return this.tokenizer.decode(tokens, { skip_special_tokens: true }) as string;
  }

  /** One token as text for display, special tokens included (`<s>`, `</s>`). */
  tokenText(id: number): string {
    return this.tokenizer.decode([id], { skip_special_tokens: false }) as string;
  }

  async embedTokens(ids: number[]): Promise<Float32Array> {
    const out = await this.embed.run({ [this.embed.inputNames[0]]: int64Tensor(ids, [1, ids.length]) });
    return Float32Array.from(toFloat32(out[this.embed.outputNames[0]]));
  }
}
