// What calibration, benchmarking and generation need from "everything before the decoder":
// prompt -> decoder input embeddings (image features merged in), token embeddings for
// generated tokens, and the tokenizer's text. One implementation per package runtime:
// transformers.js packages (vlmFrontend) and onnxruntime-genai packages (genaiFrontend).

import { ModelPackage } from '../package/modelPackage';
import { GenaiFrontend } from './genaiFrontend';
import { RuntimeOptions } from './ort';
import { ChatMessage, Encoded, VlmFrontend } from './vlmFrontend';

export interface Frontend {
  readonly eosIds: number[];
  encode(messages: ChatMessage[], imagePath: string | undefined, addGenerationPrompt: boolean): Promise<Encoded>;
  embedTokens(ids: number[]): Promise<Float32Array>;
  decode(tokens: number[]): string;
  /** One token as text for display, special tokens included. */
  tokenText(id: number): string;
  dispose(): Promise<void>;
}

export function openFrontend(pkg: ModelPackage, opts?: RuntimeOptions): Promise<Frontend> {
  return pkg.layout === 'genai' ? GenaiFrontend.open(pkg, opts) : VlmFrontend.open(pkg, opts);
}
