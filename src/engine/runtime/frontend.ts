// What calibration, SCP and the benchmark need from "everything around the decoder": a
// prompt (token ids, which positions hold image features), the prompt pass through a given
// decoder runner with the feeds the package's runtime builds, and greedy generation through
// it. One implementation per package runtime; transformers.js packages use their family's
// own model class (vlmFrontend.ts), onnxruntime-genai packages their own vision and embedding
// models as genai's pipeline runs them (genaiFrontend.ts).

import { ModelPackage } from '../package/modelPackage';
import { DecoderRunner, DecoderSpec } from './decoderRunner';
import { GraphProto } from '../onnx/proto';
import { GenaiFrontend } from './genaiFrontend';
import { Feeds, RuntimeOptions } from './ort';
import { ChatMessage, Encoded, Generation, Prefill, VlmFrontend } from './vlmFrontend';

export interface Frontend {
  readonly eosIds: number[];
  encode(messages: ChatMessage[], imagePath: string | undefined, addGenerationPrompt: boolean): Promise<Encoded>;
  /** The prompt pass through `runner`, fetching `fetch` (instrumentation taps) too. */
  prefill(enc: Encoded, runner: DecoderRunner, fetch?: string[]): Promise<Prefill>;
  generate(enc: Encoded, runner: DecoderRunner, maxNewTokens?: number): Promise<Generation>;
  decode(tokens: number[]): string;
  /** One token as text for display, special tokens included. */
  tokenText(id: number): string;
  dispose(): Promise<void>;
}

export function openFrontend(pkg: ModelPackage, opts?: RuntimeOptions): Promise<Frontend> {
  return pkg.layout === 'genai' ? GenaiFrontend.open(pkg, opts) : VlmFrontend.open(pkg, opts);
}

/** The prompt pass's decoder feeds (KV cache left out), as the frontend builds them for `graph`. */
export interface PreparedFeeds {
  feeds: Feeds;
  /** inputs_embeds as float32 [seqLen, hidden]. */
  embeds: Float32Array;
  hidden: number;
}

/**
 * The exact feeds a frontend prepares for the prompt pass (inputs_embeds, attention mask,
 * the family's position ids, ...) without running the decoder: layer-wise execution feeds
 * them to its prologue piece, so it sees what the whole decoder would.
 */
export async function prepareFeeds(frontend: Frontend, enc: Encoded, graph: GraphProto, spec: DecoderSpec): Promise<PreparedFeeds> {
  const p = await frontend.prefill(enc, DecoderRunner.feedsOnly(graph, spec));
  return { feeds: p.feeds, embeds: p.embeds, hidden: p.hidden };
}
