// Greedy short-answer generation: prefill the prompt, then decode one token at a time with
// the KV cache until end-of-sequence, a newline, or the token budget. The decoder pass is
// the caller's (each runtime feeds its decoder in its own way).

import { argmax } from './decoderRunner';
import { Encoded } from './vlmFrontend';

/** What the loop needs of a frontend. */
export interface TokenIo {
  readonly eosIds: number[];
  decode(tokens: number[]): string;
  embedTokens(ids: number[]): Promise<Float32Array>;
}

/** One decoder pass over new positions given the cache of the previous one (none at first). */
export type DecoderStep<C> = (embeds: Float32Array, seqLen: number, cache?: C) => Promise<{ lastLogits: Float32Array; cache: C }>;

export interface Generation {
  tokens: number[];
  text: string;
  /** Next-token logits after the prompt (for agreement and KL against another model). */
  firstLogits: Float32Array;
  prefillMs: number;
  decodeMs: number;
}

export async function generateGreedy<C>(io: TokenIo, step: DecoderStep<C>, enc: Encoded, maxNewTokens = 4): Promise<Generation> {
  const t0 = performance.now();
  let out = await step(enc.embeds, enc.seqLen);
  const t1 = performance.now();
  const firstLogits = out.lastLogits;
  const tokens: number[] = [];
  for (let i = 0; i < maxNewTokens; i++) {
    const next = argmax(out.lastLogits);
    if (io.eosIds.includes(next)) break;
    tokens.push(next);
    if (io.decode([next]).includes('\n') || i === maxNewTokens - 1) break;
    out = await step(await io.embedTokens([next]), 1, out.cache);
  }
  const t2 = performance.now();
  return { tokens, text: io.decode(tokens), firstLogits, prefillMs: t1 - t0, decodeMs: t2 - t1 };
}
