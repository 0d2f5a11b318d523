// Greedy short-answer generation: prefill the prompt, then decode one token at a time with
// the KV cache until end-of-sequence, a newline, or the token budget.

import { DecoderRunner, argmax } from './decoderRunner';
import type { Frontend } from './frontend';
import { Encoded } from './vlmFrontend';

export interface Generation {
  tokens: number[];
  text: string;
  /** Next-token logits after the prompt (for agreement and KL against another model). */
  firstLogits: Float32Array;
  prefillMs: number;
  decodeMs: number;
}

export async function generateGreedy(frontend: Frontend, decoder: DecoderRunner, enc: Encoded, maxNewTokens = 4): Promise<Generation> {
  const t0 = performance.now();
  let step = await decoder.step(enc.embeds, enc.seqLen);
  const t1 = performance.now();
  const firstLogits = step.lastLogits;
  const tokens: number[] = [];
  for (let i = 0; i < maxNewTokens; i++) {
    const next = argmax(step.lastLogits);
    if (frontend.eosIds.includes(next)) break;
    tokens.push(next);
    if (frontend.decode([next]).includes('\n') || i === maxNewTokens - 1) break;
    step = await decoder.step(await frontend.embedTokens([next]), 1, step.present);
  }
  const t2 = performance.now();
  return { tokens, text: frontend.decode(tokens), firstLogits, prefillMs: t1 - t0, decodeMs: t2 - t1 };
}
