// What calibration, SCP and the benchmark need from "everything around the decoder": a
// prompt (token ids, which positions hold image features), the prompt pass through a given
// decoder runner with the feeds the package's runtime builds, and greedy generation through
// it. One implementation per package runtime; transformers.js packages use their family's
// own model class (vlmFrontend.ts), onnxruntime-genai packages their own vision and embedding
// models as genai's pipeline runs them (genaiFrontend.ts).

import { ModelPackage } from '../package/modelPackage';
import { DecoderRunner, DecoderView } from './decoderRunner';
import { GenaiFrontend } from './genaiFrontend';
import type { GenerateOptions } from './greedy';
import { Feeds, RuntimeOptions } from './ort';
import { ChatMessage, Encoded, Generation, Prefill, VlmFrontend } from './vlmFrontend';

export interface Frontend {
  readonly eosIds: number[];
  encode(messages: ChatMessage[], imagePath: string | undefined, addGenerationPrompt: boolean): Promise<Encoded>;
  /** The prompt pass through `runner`, fetching `fetch` (instrumentation taps) too. */
  prefill(enc: Encoded, runner: DecoderRunner, fetch?: string[]): Promise<Prefill>;
  /**
   * The decoder inputs (KV cache left out) the prompt pass gets, without running the decoder:
   * what a layer-wise run feeds its prologue (M-RoPE position ids included).
   */
  prepare(enc: Encoded, decoder: DecoderView): Promise<Feeds>;
  generate(enc: Encoded, runner: DecoderRunner, maxNewTokens?: number, opts?: GenerateOptions): Promise<Generation>;
  decode(tokens: number[]): string;
  /** One token as text for display, special tokens included. */
  tokenText(id: number): string;
  dispose(): Promise<void>;
}

export function openFrontend(pkg: ModelPackage, opts?: RuntimeOptions): Promise<Frontend> {
  return pkg.layout === 'genai' ? GenaiFrontend.open(pkg, opts) : VlmFrontend.open(pkg, opts);
}
