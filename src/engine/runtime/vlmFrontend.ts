// Everything before and around the decoder is the package family's own transformers.js
// code: its processor (chat template, image preprocessing, image-token expansion, argument
// order), and its model class (vision encoder, token embeddings, merging image features,
// position ids such as Qwen2-VL's 3-D M-RoPE from get_rope_index, attention masks, and the
// generation loop's per-step inputs). Only the decoder session that class calls is swapped
// for one of the engine's runners (original, pruned, or instrumented with taps), so the
// engine sees exactly the feeds the family's class builds. The class is built directly on
// sessions opened here, so the package's decoder is never loaded a second time.

import * as fs from 'fs';
import * as path from 'path';
import { ModelPackage } from '../package/modelPackage';
import { DecoderRunner, DecoderView, SessionInfo, StepResult, withoutCache } from './decoderRunner';
import { Family, FamilyError, imagesFirst, ProcessorOutputs, resolveFamily } from './family';
import type { Frontend } from './frontend';
import { GenerateOptions, greedyAnswer } from './greedy';
import { Feeds, openSession, ort, RuntimeOptions, toFloat32 } from './ort';

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

/** A prompt as the family's processor made it; the decoder inputs come from `prefill`. */
export interface Encoded {
  ids: number[];
  seqLen: number;
  /** 1 where the position holds an image feature (the family's image token). */
  isImage: Uint8Array;
  /** Patch grid of one image's tokens (rows, cols), when they form one. */
  imageGrid?: [number, number];
  /** Last key each query row sees, when the decoder is not causal (see family.ts). */
  lastKey?: Int32Array;
  /** Processor outputs, handed to the family's model class. */
  inputs: ProcessorOutputs;
}

export interface Prefill extends StepResult {
  /** The decoder feeds the family's class built, KV cache left out. */
  feeds: Feeds;
  /** inputs_embeds as float32 [seqLen, hidden]. */
  embeds: Float32Array;
  hidden: number;
}

export interface Generation {
  tokens: number[];
  text: string;
  /** Next-token logits after the prompt (for agreement and KL against another model). */
  firstLogits: Float32Array;
  /** Prompt pass (vision encoder, embeddings, decoder) and answer tokens, in ms. */
  prefillMs: number;
  decodeMs: number;
  /** Why generation ended: end-of-sequence (or the forced tokens ran out), a newline, or the token budget. */
  stop: 'eos' | 'newline' | 'limit';
  /** With keepSteps: the next-token logits of every step, the one that chose end-of-sequence included. */
  stepLogits?: Float32Array[];
}

/**
 * What the family's class sees as its decoder session; each run goes to the current target.
 * A target without a runner only records the inputs (for layer-wise runs, which feed them to
 * their own prologue) and returns no outputs.
 */
class DecoderSlot {
  target?: { runner?: DecoderRunner; view: DecoderView; fetch: string[]; last?: StepResult; feeds?: Feeds };

  private get session(): SessionInfo {
    if (!this.target) throw new Error('decoder called outside a routed run');
    return this.target.view.session;
  }
  get inputNames() { return this.session.inputNames; }
  get outputNames() { return this.session.outputNames; }
  get inputMetadata() { return this.session.inputMetadata; }
  get outputMetadata() { return this.session.outputMetadata; }

  async run(feeds: Feeds): Promise<Record<string, ort.Tensor>> {
    const t = this.target!;
    t.feeds = feeds;
    if (!t.runner) return {};
    const r = await t.runner.run(feeds, t.fetch);
    t.last = r;
    // transformers.js reads logits and present.* only; taps stay with the engine.
    const names = new Set(t.runner.session.outputNames);
    return Object.fromEntries(Object.entries(r.outputs).filter(([k]) => names.has(k)));
  }

  async release(): Promise<void> {}
}

export class VlmFrontend implements Frontend {
  private readonly slot = new DecoderSlot();

  private constructor(
    readonly pkg: ModelPackage,
    readonly family: Family,
    private readonly t: Transformers,
    private readonly processor: any,
    /** The processor takes (images, text), as LLaVA's does, rather than (text, images). */
    private readonly imagesFirst: boolean,
    readonly tokenizer: any,
    private readonly model: any,
    private readonly owned: ort.InferenceSession[],
    readonly imageTokenId: number | undefined,
    readonly eosIds: number[],
  ) {
    model.sessions.decoder_model_merged = this.slot;
  }

  static async open(pkg: ModelPackage, opts?: RuntimeOptions): Promise<VlmFrontend> {
    const t = await transformers();
    const family = resolveFamily(t, pkg);
    t.env.localModelPath = path.dirname(pkg.root) + path.sep;
    const name = path.basename(pkg.root);
    const loadOpts = { local_files_only: true } as const;
    let processor: any;
    let config: any;
    try {
      config = await t.AutoConfig.from_pretrained(name, loadOpts);
      processor = await t.AutoProcessor.from_pretrained(name, loadOpts);
    } catch (e) {
      throw new Error(`cannot load the config/processor of ${pkg.root} (${family.modelType}): ${(e as Error).message.split('\n')[0]}`);
    }
    if (!processor.tokenizer) throw new FamilyError(`model family "${family.modelType}": ${pkg.root} has no tokenizer files`);
    if (!processor.image_processor) throw new FamilyError(`model family "${family.modelType}": ${pkg.root} has no preprocessor_config.json`);
    const order = imagesFirst(processor);
    const owned: ort.InferenceSession[] = [];
    try {
      for (const f of [pkg.embedTokens!, pkg.visionEncoder!]) owned.push(await openSession(f, opts));
      const [embed, vision] = owned;
      const genFile = path.join(pkg.root, 'generation_config.json');
      const configs = { generation_config: fs.existsSync(genFile) ? JSON.parse(fs.readFileSync(genFile, 'utf8')) : null };
      const model = new family.modelClass(config, { embed_tokens: embed, vision_encoder: vision, decoder_model_merged: undefined }, configs);
      const cfg = (pkg.config ?? {}) as Record<string, any>;
      const gen = cfg.text_config ?? cfg;
      const eos = [gen.eos_token_id ?? cfg.eos_token_id ?? configs.generation_config?.eos_token_id ?? processor.tokenizer.eos_token_id]
        .flat()
        .filter((x: unknown) => typeof x === 'number');
      return new VlmFrontend(pkg, family, t, processor, order, processor.tokenizer, model, owned, cfg.image_token_id ?? cfg.image_token_index, eos);
    } catch (e) {
      for (const s of owned) await s.release();
      throw e;
    }
  }

  async dispose(): Promise<void> {
    for (const s of this.owned) await s.release();
  }

  private contentListsMemo?: boolean;
  /**
   * Whether the chat template reads message content as a list of typed items: a text entry
   * renders as the same text would as a string (or the template takes lists only). A
   * string-only template may still print a list's representation, which this tells apart.
   */
  private get contentLists(): boolean {
    if (this.contentListsMemo === undefined) {
      const render = (content: ChatContent) => String(this.tokenizer.apply_chat_template([{ role: 'user', content }], { tokenize: false }));
      const probe = 'SHORTLVLMPROBE';
      let asList: string | undefined;
      let asString: string | undefined;
      try {
        asList = render([{ type: 'text', text: probe }]);
      } catch {
        asList = undefined;
      }
      try {
        asString = render(probe);
      } catch {
        asString = undefined;
      }
      this.contentListsMemo = asList !== undefined && asList.includes(probe) && (asString === undefined || asString === asList);
    }
    return this.contentListsMemo;
  }

  /**
   * LLaVA-JSON turns mark the image with `<image>` in a string. A template that loops over
   * content lists gets an image entry instead (Qwen2-VL, Idefics3, Gemma 3 templates emit
   * their own image markers from it); a string-only template keeps the marker in the text.
   * Every turn becomes a list there, answers too: SmolVLM's template loops over the content
   * of assistant turns as well, and a string is not iterable in it.
   */
  templateMessages(messages: ChatMessage[]): ChatMessage[] {
    if (!this.contentLists) return messages;
    return messages.map((m) => {
      if (typeof m.content !== 'string') return m;
      const content: Exclude<ChatContent, string> = [];
      m.content.split('<image>').forEach((text, i) => {
        if (i > 0) content.push({ type: 'image' });
        const rest = i > 0 ? text.replace(/^\n/, '') : text;
        if (rest) content.push({ type: 'text', text: rest });
      });
      return { ...m, content };
    });
  }

  /** The prompt string the package's chat template makes of these messages. */
  renderPrompt(messages: ChatMessage[], addGenerationPrompt: boolean): string {
    return this.tokenizer.apply_chat_template(this.templateMessages(messages), { tokenize: false, add_generation_prompt: addGenerationPrompt }) as string;
  }

  /**
   * The marker the processor looks for in the prompt and expands into the image's tokens:
   * `<image>` for most families, Gemma 3's begin-of-image token (`boi_token`), which its
   * processor replaces by the whole image block.
   */
  get imageTokenText(): string | undefined {
    const configured = this.processor?.boi_token ?? this.processor?.config?.image_token ?? this.processor?.image_token;
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
    const text = imagePath ? this.renderWithImage(messages, addGenerationPrompt) : this.renderPrompt(messages, addGenerationPrompt);
    let inputs: ProcessorOutputs;
    if (imagePath) {
      let image;
      try {
        image = await this.t.RawImage.read(imagePath);
      } catch (e) {
        throw new Error(`cannot read image ${imagePath}: ${(e as Error).message}`);
      }
      inputs = this.imagesFirst ? await this.processor(image, text) : await this.processor(text, image);
    } else inputs = this.tokenizer(text);
    const ids = Array.from(inputs.input_ids.data as BigInt64Array, Number);
    const isImage = Uint8Array.from(ids, (id) => (imagePath && id === this.imageTokenId ? 1 : 0));
    if (imagePath && !isImage.some((x) => x)) {
      throw new Error(`the prompt built from the chat template holds no image token (id ${this.imageTokenId}, the config's image_token_id / image_token_index) after ${this.family.modelType}'s processor: the template or the config's image token is wrong`);
    }
    const view = { ids, isImage, inputs };
    const cfg = this.model.config;
    return { ids, seqLen: ids.length, isImage, inputs, imageGrid: imagePath ? this.family.hooks.imageGrid(view, cfg) : undefined, lastKey: this.family.hooks.attention?.(view, cfg) };
  }

  /** Runs `fn` with the family's decoder calls going to `runner` (fetching `fetch` too). */
  private async routed<T>(runner: DecoderRunner, fetch: string[], fn: () => Promise<T>): Promise<T> {
    this.slot.target = { runner, view: runner, fetch };
    try {
      return await fn();
    } finally {
      this.slot.target = undefined;
    }
  }

  /** One forward pass of the family's class; the decoder step it made, and its feeds. */
  private async forward(modelInputs: any): Promise<{ outputs: any; step: StepResult; feeds: Feeds }> {
    const target = this.slot.target!;
    target.last = undefined;
    const outputs = await this.model.forward(modelInputs);
    if (!target.last || !target.feeds) throw new Error(`${this.family.className} did not call its decoder`);
    return { outputs, step: target.last, feeds: target.feeds };
  }

  /** Model inputs for the first step, as the family's generation loop prepares them. */
  private firstInputs(enc: Encoded): { modelInputs: any; allIds: bigint[][]; genConfig: any } {
    const genConfig = this.model._prepare_generation_config(null, {});
    const { model_inputs } = this.model._prepare_model_inputs({ inputs: null, model_kwargs: { ...enc.inputs } });
    const allIds = [enc.ids.map(BigInt)];
    return { modelInputs: this.model.prepare_inputs_for_generation(allIds, model_inputs, genConfig), allIds, genConfig };
  }

  /** The prompt pass through `runner`, with the feeds the family's class built for it. */
  async prefill(enc: Encoded, runner: DecoderRunner, fetch: string[] = []): Promise<Prefill> {
    return this.routed(runner, fetch, async () => {
      const { step, feeds } = await this.forward(this.firstInputs(enc).modelInputs);
      const e = feeds[runner.spec.embeds];
      this.checkLength(enc, e);
      return { ...step, feeds: runner.withoutCache(feeds), embeds: toFloat32(e), hidden: e.dims[e.dims.length - 1] };
    });
  }

  private checkLength(enc: Encoded, embeds: ort.Tensor): void {
    if (embeds.dims[1] !== enc.seqLen) {
      // Token-level figures (TIS, kept tokens) index the processor's ids.
      throw new FamilyError(`model family "${this.family.modelType}": its class gave the decoder ${embeds.dims[1]} positions for a ${enc.seqLen}-token prompt; families that change the sequence length when merging image features are not supported`);
    }
  }

  /** The decoder inputs the prompt pass would get (KV cache left out), without running the decoder. */
  async prepare(enc: Encoded, decoder: DecoderView): Promise<Feeds> {
    const target: NonNullable<DecoderSlot['target']> = { view: decoder, fetch: [] };
    this.slot.target = target;
    try {
      await this.model.forward(this.firstInputs(enc).modelInputs);
    } finally {
      this.slot.target = undefined;
    }
    if (!target.feeds) throw new Error(`${this.family.className} did not call its decoder`);
    this.checkLength(enc, target.feeds[decoder.spec.embeds]);
    return withoutCache(decoder.spec, target.feeds);
  }

  /**
   * Greedy short answer through `runner`, driven by the family's own per-step input
   * preparation (cache, attention mask, position ids); stops at end-of-sequence, a newline,
   * or the token budget.
   */
  async generate(enc: Encoded, runner: DecoderRunner, maxNewTokens = 4, opts?: GenerateOptions): Promise<Generation> {
    return this.routed(runner, [], async () => {
      let { modelInputs, allIds, genConfig } = this.firstInputs(enc);
      let outputs: any;
      const pass = async () => {
        const r = await this.forward(modelInputs);
        outputs = r.outputs;
        return r.step;
      };
      return greedyAnswer(this, pass, (next) => {
        allIds[0].push(BigInt(next));
        modelInputs = this.model._update_model_kwargs_for_generation({ generated_input_ids: [[BigInt(next)]], outputs, model_inputs: modelInputs, is_encoder_decoder: false });
        modelInputs = this.model.prepare_inputs_for_generation(allIds, modelInputs, genConfig);
        return pass();
      }, maxNewTokens, opts);
    });
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
}
