// Token Importance Scores (Short-LVLM): for one layer of one sample, from its head-averaged
// causal self-attention. Visual token i: mean of intra-modal (attention received from visual
// queries at or after it) and cross-modal (attention received from text queries that can see
// it). Text token i: mean of cross-modal (its attention to the visual tokens it can see) and
// intra-modal (attention received from text queries at or after it). Column means count only
// unmasked rows. A term with nothing to average over does not exist and the score is the
// mean of the terms that do: a text token before the image has no cross-modal term, and a
// text-only model (an LLM) reduces to the intra-modal text term, as the method says.
// "Can see" follows the mask the decoder really applies: causal, or, for families whose image
// blocks attend bidirectionally, each row's visible keys widened to the end of its block
// (`lastKey`, always a prefix of the sequence; see runtime/family.ts).

export interface AttentionMap {
  /** [S, S] head-averaged attention, row = query, column = key; float64. */
  probs: Float64Array;
  seqLen: number;
  /** Last key each query row sees; absent = causal (row q sees keys 0..q). */
  lastKey?: Int32Array;
}

/** The last key row q sees. */
export function lastVisible(lastKey: Int32Array | undefined, q: number): number {
  return lastKey ? lastKey[q] : q;
}

/** Averages [heads, S, T] probabilities (T >= S; the last S columns are this step's keys) over heads. */
export function headMean(probs: Float32Array | Float64Array, heads: number, S: number, T = S, lastKey?: Int32Array): AttentionMap {
  const out = new Float64Array(S * S);
  const off = T - S;
  for (let h = 0; h < heads; h++) {
    for (let q = 0; q < S; q++) {
      const base = (h * S + q) * T + off;
      const last = lastVisible(lastKey, q);
      for (let k = 0; k <= last; k++) out[q * S + k] += probs[base + k];
    }
  }
  for (let i = 0; i < out.length; i++) out[i] /= heads;
  return { probs: out, seqLen: S, lastKey };
}

export function tokenImportance(att: AttentionMap, isImage: Uint8Array): Float64Array {
  const S = att.seqLen;
  const A = att.probs;
  const lastKey = att.lastKey;
  // Per column: attention received from visual and text rows that see it; per row: attention
  // given to the visual columns it sees.
  const fromVis = new Float64Array(S);
  const fromText = new Float64Array(S);
  const toVis = new Float64Array(S);
  for (let r = 0; r < S; r++) {
    const target = isImage[r] ? fromVis : fromText;
    const last = lastVisible(lastKey, r);
    for (let c = 0; c <= last; c++) {
      target[c] += A[r * S + c];
      if (isImage[c]) toVis[r] += A[r * S + c];
    }
  }
  return tisFromSums(fromVis, fromText, toVis, isImage, lastKey);
}

/**
 * Token importance from the attention sums (what each token receives from visual and from
 * text queries, what it gives visual keys). The counts of rows and columns that can see each
 * other follow from the mask (`lastKey`, absent = causal) and the modality of each position;
 * the sums themselves need nothing more, masked probabilities being zero.
 */
export function tisFromSums(fromVis: ArrayLike<number>, fromText: ArrayLike<number>, toVis: ArrayLike<number>, isImage: Uint8Array, lastKey?: Int32Array): Float64Array {
  const S = isImage.length;
  const tis = new Float64Array(S);
  const nVis = new Float64Array(S);
  const nText = new Float64Array(S);
  // Counts via difference arrays: row r sees columns 0..last(r), and visSeen[r] is the number
  // of visual columns among them (a prefix count).
  const endVis = new Float64Array(S + 1);
  const endText = new Float64Array(S + 1);
  const visPrefix = new Float64Array(S + 1);
  for (let r = 0; r < S; r++) {
    (isImage[r] ? endVis : endText)[lastVisible(lastKey, r)]++;
    visPrefix[r + 1] = visPrefix[r] + (isImage[r] ? 1 : 0);
  }
  let visAfter = 0;
  let textAfter = 0;
  for (let c = S - 1; c >= 0; c--) {
    visAfter += endVis[c];
    textAfter += endText[c];
    nVis[c] = visAfter;
    nText[c] = textAfter;
  }
  for (let i = 0; i < S; i++) {
    if (isImage[i]) {
      tis[i] = meanOfTerms(nVis[i] ? fromVis[i] / nVis[i] : undefined, nText[i] ? fromText[i] / nText[i] : undefined);
    } else {
      const visSeen = visPrefix[lastVisible(lastKey, i) + 1];
      tis[i] = meanOfTerms(visSeen ? toVis[i] / visSeen : undefined, nText[i] ? fromText[i] / nText[i] : undefined);
    }
  }
  return tis;
}

function meanOfTerms(a: number | undefined, b: number | undefined): number {
  if (a === undefined) return b ?? 0;
  if (b === undefined) return a;
  return (a + b) / 2;
}

export type KeepMode = 'count' | 'nucleus';

/**
 * Indices of the tokens to keep: the top p fraction by count (at least one token), or the
 * smallest set whose normalised score mass reaches p (nucleus).
 */
export function selectTokens(scores: Float64Array, p: number, mode: KeepMode = 'count'): number[] {
  const order = Array.from(scores.keys()).sort((a, b) => scores[b] - scores[a] || a - b);
  if (mode === 'count') return order.slice(0, Math.max(1, Math.round(p * scores.length))).sort((a, b) => a - b);
  let total = 0;
  for (const s of scores) total += Math.max(0, s);
  const kept: number[] = [];
  let mass = 0;
  for (const i of order) {
    kept.push(i);
    mass += Math.max(0, scores[i]);
    if (total <= 0 || mass / total >= p) break;
  }
  return kept.sort((a, b) => a - b);
}
