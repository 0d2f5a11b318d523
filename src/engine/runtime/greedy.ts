// The short-answer loop every frontend runs: prompt pass, then argmax tokens until
// end-of-sequence, a newline, or the token budget. How a pass is fed is the frontend's.

import { argmax } from './decoderRunner';
import type { Generation } from './vlmFrontend';

export async function greedyAnswer<S extends { lastLogits: Float32Array }>(
  io: { readonly eosIds: number[]; decode(tokens: number[]): string },
  prompt: () => Promise<S>,
  advance: (token: number, previous: S) => Promise<S>,
  maxNewTokens: number,
): Promise<Generation> {
  const t0 = performance.now();
  let step = await prompt();
  const t1 = performance.now();
  const firstLogits = step.lastLogits;
  const tokens: number[] = [];
  for (let i = 0; i < maxNewTokens; i++) {
    const next = argmax(step.lastLogits);
    if (io.eosIds.includes(next)) break;
    tokens.push(next);
    if (io.decode([next]).includes('\n') || i === maxNewTokens - 1) break;
    step = await advance(next, step);
  }
  const t2 = performance.now();
  return { tokens, text: io.decode(tokens), firstLogits, prefillMs: t1 - t0, decodeMs: t2 - t1 };
}
