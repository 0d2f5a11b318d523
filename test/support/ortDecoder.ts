// Runs a synthetic decoder in onnxruntime-node (batch 1): builds the feeds the session asks
// for (position_ids only when it is an input), with an empty past or a previous step's present.

import * as ort from 'onnxruntime-node';
import { SynthDims } from './synthModels';

export interface DecoderStep {
  /** [S, V] */
  logits: Float32Array;
  /** present.{i}.key / .value tensors, usable as the next step's past. */
  present: { key: ort.Tensor; value: ort.Tensor }[];
  outputs: ort.InferenceSession.ReturnType;
}

export async function runDecoderStep(
  session: ort.InferenceSession,
  dims: SynthDims,
  embeds: Float32Array,
  past?: { key: ort.Tensor; value: ort.Tensor }[],
): Promise<DecoderStep> {
  const { hidden: H, kvHeads, headDim, numLayers } = dims;
  const S = embeds.length / H;
  const P = past ? past[0].key.dims[2] : 0;
  const feeds: Record<string, ort.Tensor> = {
    inputs_embeds: new ort.Tensor('float32', embeds, [1, S, H]),
    attention_mask: new ort.Tensor('int64', new BigInt64Array(P + S).fill(1n), [1, P + S]),
  };
  if (session.inputNames.includes('position_ids')) {
    feeds.position_ids = new ort.Tensor('int64', BigInt64Array.from({ length: S }, (_, i) => BigInt(P + i)), [1, S]);
  }
  for (let i = 0; i < numLayers; i++) {
    const empty = (): ort.Tensor => new ort.Tensor('float32', new Float32Array(0), [1, kvHeads, 0, headDim]);
    feeds[`past_key_values.${i}.key`] = past ? past[i].key : empty();
    feeds[`past_key_values.${i}.value`] = past ? past[i].value : empty();
  }
  const outputs = await session.run(feeds);
  const present = Array.from({ length: numLayers }, (_, i) => ({ key: outputs[`present.${i}.key`], value: outputs[`present.${i}.value`] }));
  return { logits: outputs.logits.data as Float32Array, present, outputs };
}

/**
 * A text-only prompt's decoder feeds without the KV cache (batch 1, no past): inputs_embeds
 * [1, S, H] float32, a mask of ones, and 0..S-1 positions when the graph takes position_ids.
 */
export function plainPromptFeeds(inputNames: readonly string[], embeds: Float32Array, hidden: number): Record<string, ort.Tensor> {
  const S = embeds.length / hidden;
  const feeds: Record<string, ort.Tensor> = {
    inputs_embeds: new ort.Tensor('float32', embeds, [1, S, hidden]),
    attention_mask: new ort.Tensor('int64', new BigInt64Array(S).fill(1n), [1, S]),
  };
  if (inputNames.includes('position_ids')) feeds.position_ids = new ort.Tensor('int64', BigInt64Array.from({ length: S }, (_, i) => BigInt(i)), [1, S]);
  return feeds;
}

/** Largest |a[i] - b[i]| (same lengths required). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/**
 * Decoder inputs other than the KV cache for one prompt pass of raw embeddings (batch 1):
 * mask of ones, positions 0..S-1 (runners drop what a graph does not take).
 */
export function plainFeeds(embeds: Float32Array, seqLen: number): Record<string, ort.Tensor> {
  return {
    inputs_embeds: new ort.Tensor('float32', embeds, [1, seqLen, embeds.length / seqLen]),
    attention_mask: new ort.Tensor('int64', new BigInt64Array(seqLen).fill(1n), [1, seqLen]),
    position_ids: new ort.Tensor('int64', BigInt64Array.from({ length: seqLen }, (_, i) => BigInt(i)), [1, seqLen]),
  };
}
