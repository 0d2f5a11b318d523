// The short-answer loop every frontend runs: prompt pass, then argmax tokens until
// end-of-sequence, a newline, or the token budget. How a pass is fed is the frontend's.
// "Ask both models" also keeps the logits of every step and can force the tokens fed back
// (the pruned model read along the original's answer, for a per-step KL).

import { argmax } from './decoderRunner';
import type { Generation } from './vlmFrontend';

export interface GenerateOptions {
  /** Stop after a token whose text holds a newline (default true: short answers). */
  stopAtNewline?: boolean;
  /** Keep each step's next-token logits in `stepLogits`. */
  keepSteps?: boolean;
  /**
   * Feed these tokens instead of the argmax ones; the loop ends where they end (after the
   * logits that follow the last one), so the steps line up with the generation they came from.
   */
  forced?: number[];
  /** Throws to stop between steps (a cancel). */
  checkCancelled?: () => void;
}

export async function greedyAnswer<S extends { lastLogits: Float32Array }>(
  io: { readonly eosIds: number[]; decode(tokens: number[]): string },
  prompt: () => Promise<S>,
  advance: (token: number, previous: S) => Promise<S>,
  maxNewTokens: number,
  opts: GenerateOptions = {},
): Promise<Generation> {
  const t0 = performance.now();
  let step = await prompt();
  const t1 = performance.now();
  const firstLogits = step.lastLogits;
  const tokens: number[] = [];
  const stepLogits: Float32Array[] = [];
  let stop: Generation['stop'] = 'limit';
  for (let i = 0; i < maxNewTokens; i++) {
    if (opts.keepSteps) stepLogits.push(step.lastLogits);
    const next = opts.forced ? opts.forced[i] : argmax(step.lastLogits);
    if (next === undefined || io.eosIds.includes(next)) {
      stop = 'eos';
      break;
    }
    tokens.push(next);
    if ((opts.stopAtNewline ?? true) && io.decode([next]).includes('\n')) {
      stop = 'newline';
      break;
    }
    if (i === maxNewTokens - 1) break;
    opts.checkCancelled?.();
    step = await advance(next, step);
  }
  const t2 = performance.now();
  return { tokens, text: io.decode(tokens), firstLogits, prefillMs: t1 - t0, decodeMs: t2 - t1, stop, ...(opts.keepSteps ? { stepLogits } : {}) };
}
