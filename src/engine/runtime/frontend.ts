// What calibration, benchmarking and generation need from everything around the decoder:
// prompt -> encoded sample (image features merged into the decoder's input embeddings), the
// decoder's prompt pass and a greedy answer with that runtime's own decoder inputs, and the
// tokenizer's text. One implementation per package runtime: transformers.js packages
// (vlmFrontend) and onnxruntime-genai packages (genaiFrontend).

import { ModelPackage } from '../package/modelPackage';
import { DecoderRunner, KvCache, StepResult } from './decoderRunner';
import { GenaiFrontend } from './genaiFrontend';
import { Generation, generateGreedy } from './generate';
import { Feeds, RuntimeOptions } from './ort';
import { ChatMessage, Encoded, VlmFrontend } from './vlmFrontend';

/** The decoder's prompt pass: logits, the requested taps, and the embeddings it was fed. */
export interface Prefill extends Pick<StepResult, 'lastLogits' | 'vocab' | 'outputs'> {
  /** The decoder inputs of the pass, KV cache left out (when the runtime builds them itself). */
  feeds?: Feeds;
  /** inputs_embeds as float32 [seqLen, hidden]. */
  embeds: Float32Array;
  hidden: number;
}

export interface Frontend {
  readonly eosIds: number[];
  encode(messages: ChatMessage[], imagePath: string | undefined, addGenerationPrompt: boolean): Promise<Encoded>;
  /** The prompt pass of `runner` (original, pruned or instrumented); `fetch` names extra outputs. */
  prefill(enc: Encoded, runner: DecoderRunner, fetch?: string[]): Promise<Prefill>;
  generate(enc: Encoded, runner: DecoderRunner, maxNewTokens?: number): Promise<Generation>;
  embedTokens(ids: number[]): Promise<Float32Array>;
  decode(tokens: number[]): string;
  /** One token as text for display, special tokens included. */
  tokenText(id: number): string;
  dispose(): Promise<void>;
}

/** transformers.js packages: the runner's own step feeds (1-D positions, all-ones mask). */
class TransformersJsFrontend implements Frontend {
  constructor(private readonly fe: VlmFrontend) {}
  get eosIds(): number[] {
    return this.fe.eosIds;
  }
  encode(messages: ChatMessage[], imagePath: string | undefined, addGenerationPrompt: boolean): Promise<Encoded> {
    return this.fe.encode(messages, imagePath, addGenerationPrompt);
  }
  async prefill(enc: Encoded, runner: DecoderRunner, fetch: string[] = []): Promise<Prefill> {
    const r = await runner.step(enc.embeds, enc.seqLen, undefined, fetch);
    return { lastLogits: r.lastLogits, vocab: r.vocab, outputs: r.outputs, embeds: enc.embeds, hidden: enc.hidden };
  }
  generate(enc: Encoded, runner: DecoderRunner, maxNewTokens = 4): Promise<Generation> {
    const step = async (embeds: Float32Array, seqLen: number, cache?: KvCache) => {
      const r = await runner.step(embeds, seqLen, cache);
      return { lastLogits: r.lastLogits, cache: r.present };
    };
    return generateGreedy(this.fe, step, enc, maxNewTokens);
  }
  embedTokens(ids: number[]): Promise<Float32Array> {
    return this.fe.embedTokens(ids);
  }
  decode(tokens: number[]): string {
    return this.fe.decode(tokens);
  }
  tokenText(id: number): string {
    return this.fe.tokenText(id);
  }
  dispose(): Promise<void> {
    return this.fe.dispose();
  }
}

export async function openFrontend(pkg: ModelPackage, opts?: RuntimeOptions): Promise<Frontend> {
  return pkg.layout === 'genai' ? GenaiFrontend.open(pkg, opts) : new TransformersJsFrontend(await VlmFrontend.open(pkg, opts));
}
