// Token Importance Scores (DESIGN.md section 1, "TIS"), head averaging and top-p token selection,
// each checked against a float64 reference written here from the DESIGN text with explicit
// loops (not from the engine's running-sum formulation), on hand-built causal attention maps.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { attentionFromQK } from '../../src/engine/method/fusedAttention';
import { headMean, selectTokens, tisFromSums, tokenImportance } from '../../src/engine/method/tis';
import { bidirectionalImageBlocks } from '../../src/engine/runtime/family';
import { Rng } from '../support/prng';

// ----------------------------------------------------------------------------- references

/** [heads, S, T] causal attention: row q sees keys 0..T-S+q; positive random rows summing to 1. */
function causalProbs(rng: Rng, heads: number, S: number, T = S, sharp = 1): Float64Array {
  const out = new Float64Array(heads * S * T);
  for (let h = 0; h < heads; h++) {
    for (let q = 0; q < S; q++) {
      const last = T - S + q;
      let sum = 0;
      const row = new Float64Array(last + 1);
      for (let k = 0; k <= last; k++) {
        row[k] = Math.exp(sharp * 3 * rng.normal());
        sum += row[k];
      }
      for (let k = 0; k <= last; k++) out[(h * S + q) * T + k] = row[k] / sum;
    }
  }
  return out;
}

/** Mean over heads of the last S key columns, causal (row q, key k <= q). */
function refHeadMean(p: Float64Array, heads: number, S: number, T: number): number[][] {
  const A: number[][] = [];
  for (let q = 0; q < S; q++) {
    A.push([]);
    for (let k = 0; k < S; k++) {
      let s = 0;
      if (k <= q) for (let h = 0; h < heads; h++) s += p[(h * S + q) * T + (T - S + k)];
      A[q].push(s / heads);
    }
  }
  return A;
}

function mean(xs: number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
}

/**
 * DESIGN.md: visual token i = mean of (a) intra: attention received from visual query rows at or
 * after i, divided by the number of such (unmasked) rows, and (b) cross: mean over the text query
 * rows that can see i of A[r][i]; text token i = mean of (a) cross: mean over the visual columns
 * it can see of A[i][j] (0 when it sees none) and (b) intra: column mean over the text rows at or
 * after i. An empty mean is 0.
 */
function refTis(A: number[][], isImage: number[]): number[] {
  const S = isImage.length;
  const out: number[] = [];
  for (let i = 0; i < S; i++) {
    const visRowsAfter: number[] = [];
    const textRowsAfter: number[] = [];
    for (let r = i; r < S; r++) (isImage[r] ? visRowsAfter : textRowsAfter).push(A[r][i]);
    // A term with nothing to average over (no visual key visible yet, no query of that
    // modality after the token) does not exist: the score is the mean of the terms that do.
    const terms: number[][] = [];
    if (isImage[i]) terms.push(visRowsAfter, textRowsAfter);
    else {
      const toVisual: number[] = [];
      for (let j = 0; j <= i; j++) if (isImage[j]) toVisual.push(A[i][j]);
      terms.push(toVisual, textRowsAfter);
    }
    const present = terms.filter((t) => t.length);
    out.push(present.length ? present.reduce((a, t) => a + mean(t), 0) / present.length : 0);
  }
  return out;
}

/** Indices sorted by descending score, ties by ascending index. */
function refOrder(scores: number[]): number[] {
  const idx = scores.map((_, i) => i);
  // Insertion sort: independent of the engine's Array.prototype.sort comparator.
  for (let a = 1; a < idx.length; a++) {
    const x = idx[a];
    let b = a - 1;
    while (b >= 0 && (scores[idx[b]] < scores[x] || (scores[idx[b]] === scores[x] && idx[b] > x))) {
      idx[b + 1] = idx[b];
      b--;
    }
    idx[b + 1] = x;
  }
  return idx;
}

function refSelectCount(scores: number[], p: number): number[] {
  const n = Math.max(1, Math.round(p * scores.length));
  return refOrder(scores).slice(0, n).sort((a, b) => a - b);
}

/** Smallest prefix of the descending order whose mass / total >= p. */
function refSelectNucleus(scores: number[], p: number): number[] {
  const total = scores.reduce((a, b) => a + b, 0);
  const order = refOrder(scores);
  for (let n = 1; n <= order.length; n++) {
    let m = 0;
    for (let j = 0; j < n; j++) m += scores[order[j]];
    if (m / total >= p) return order.slice(0, n).sort((a, b) => a - b);
  }
  return order.slice().sort((a, b) => a - b);
}

function layout(parts: Array<[kind: 'T' | 'V', n: number]>): Uint8Array {
  const out: number[] = [];
  for (const [k, n] of parts) for (let i = 0; i < n; i++) out.push(k === 'V' ? 1 : 0);
  return Uint8Array.from(out);
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    assert.ok(d <= tol * Math.max(1, Math.abs(expected[i])), `${what}[${i}]: ${actual[i]} vs ${expected[i]} (diff ${d})`);
  }
}

// ----------------------------------------------------------------------------- hand example

test('TIS: hand-computed 4x4 example (text, visual, visual, text)', () => {
  // Row = query, column = key; causal rows sum to 1.
  const A = [
    [1, 0, 0, 0],
    [0.5, 0.5, 0, 0],
    [0.2, 0.3, 0.5, 0],
    [0.1, 0.2, 0.3, 0.4],
  ];
  const isImage = Uint8Array.from([0, 1, 1, 0]);
  // t0: no visual key visible, so no cross term; intra rows {0,3}: (1 + 0.1)/2 -> 0.55
  // v1: intra rows {1,2}: (0.5 + 0.3)/2 = 0.4; cross rows {3}: 0.2       -> 0.3
  // v2: intra rows {2}: 0.5; cross rows {3}: 0.3                          -> 0.4
  // t3: cross cols {1,2}: (0.2 + 0.3)/2 = 0.25; intra rows {3}: 0.4       -> 0.325
  const expected = [0.55, 0.3, 0.4, 0.325];
  const tis = tokenImportance({ probs: Float64Array.from(A.flat()), seqLen: 4 }, isImage);
  assertClose(tis, expected, 1e-15, 'tis');
  assertClose(tis, refTis(A, Array.from(isImage)), 1e-15, 'tis vs reference');

  // Two heads whose mean is A: headMean must give A back.
  const h0 = A.flat().map((x, i) => (i % 4 <= Math.floor(i / 4) ? x * 0.5 : 0));
  const h1 = A.flat().map((x, i) => (i % 4 <= Math.floor(i / 4) ? x * 1.5 : 0));
  const hm = headMean(Float64Array.from([...h0, ...h1]), 2, 4);
  assertClose(hm.probs, A.flat(), 1e-15, 'headMean');

  // count: round(0.5 * 4) = 2 -> tokens 0 (0.55) and 2 (0.4)
  assert.deepEqual(selectTokens(tis, 0.5, 'count'), [0, 2]);
  // count: round(0.1 * 4) = 0 -> at least one token
  assert.deepEqual(selectTokens(tis, 0.1, 'count'), [0]);
  // nucleus: total 1.575; 0.55/1.575 = 0.349, +0.4 -> 0.603, +0.325 -> 0.810, +0.3 -> 1
  assert.deepEqual(selectTokens(tis, 0.3, 'nucleus'), [0]);
  assert.deepEqual(selectTokens(tis, 0.5, 'nucleus'), [0, 2]);
  assert.deepEqual(selectTokens(tis, 0.7, 'nucleus'), [0, 2, 3]);
  assert.deepEqual(selectTokens(tis, 1, 'nucleus'), [0, 1, 2, 3]);
});

// ----------------------------------------------------------------------------- random maps

const LAYOUTS: Array<[string, Uint8Array]> = [
  ['LLaVA: text prefix, visual, text suffix', layout([['T', 6], ['V', 16], ['T', 9]])],
  ['visual tokens at the very start', layout([['V', 12], ['T', 7]])],
  ['visual tokens at the very end (no text after)', layout([['T', 5], ['V', 9]])],
  ['two images, interleaved text', layout([['T', 3], ['V', 6], ['T', 4], ['V', 6], ['T', 5]])],
  ['one visual token', layout([['T', 4], ['V', 1], ['T', 4]])],
];

for (const [name, isImage] of LAYOUTS) {
  test(`TIS vs DESIGN reference: ${name}`, () => {
    const rng = new Rng(`tis ${name}`);
    const S = isImage.length;
    for (const heads of [1, 4]) {
      for (const sharp of [0.3, 1, 2]) {
        const p = causalProbs(rng, heads, S, S, sharp);
        const att = headMean(p, heads, S);
        const A = refHeadMean(p, heads, S, S);
        assertClose(att.probs, A.flat(), 1e-14, 'headMean');
        const tis = tokenImportance(att, isImage);
        const ref = refTis(A, Array.from(isImage));
        assertClose(tis, ref, 1e-12, `tis heads=${heads} sharp=${sharp}`);
        for (const frac of [0.05, 0.1, 0.25, 0.5, 1]) {
          assert.deepEqual(selectTokens(tis, frac, 'count'), refSelectCount(ref, frac), `count p=${frac}`);
          assert.deepEqual(selectTokens(tis, frac, 'nucleus'), refSelectNucleus(ref, frac), `nucleus p=${frac}`);
        }
      }
    }
  });
}

test('TIS on a text-only sequence (an LLM) reduces to the text intra-modal term', () => {
  const rng = new Rng('tis text-only');
  const S = 20;
  const isImage = new Uint8Array(S);
  const p = causalProbs(rng, 3, S);
  const A = refHeadMean(p, 3, S, S);
  const tis = tokenImportance(headMean(p, 3, S), isImage);
  assertClose(tis, refTis(A, Array.from(isImage)), 1e-12, 'tis vs reference');
  // DESIGN "TIS reduces to text tokens": the intra-modal column mean alone.
  const intraOnly = Array.from({ length: S }, (_, i) => mean(A.slice(i).map((row) => row[i])));
  assertClose(tis, intraOnly, 1e-12, 'tis = intra');
  for (const frac of [0.1, 0.3, 0.7]) {
    assert.deepEqual(selectTokens(tis, frac, 'count'), refSelectCount(intraOnly, frac));
    assert.deepEqual(selectTokens(tis, frac, 'nucleus'), refSelectNucleus(intraOnly, frac));
  }
});

test('TIS: a text token before the image has no cross-modal term (scored by intra alone)', () => {
  const rng = new Rng('tis prefix');
  const isImage = layout([['T', 3], ['V', 5], ['T', 2]]);
  const p = causalProbs(rng, 2, 10);
  const A = refHeadMean(p, 2, 10, 10);
  const tis = tokenImportance(headMean(p, 2, 10), isImage);
  for (let i = 0; i < 3; i++) {
    const intra = mean([0, 1, 2, 8, 9].filter((r) => r >= i).map((r) => A[r][i]));
    assert.ok(Math.abs(tis[i] - intra) < 1e-14, `token ${i}`);
  }
});

// ----------------------------------------------------------------------------- headMean with a past

test('headMean with T > S (past present): only the last S key columns, mean over heads', () => {
  const rng = new Rng('headmean past');
  for (const [heads, S, T] of [[4, 7, 12], [2, 1, 9], [3, 5, 5]]) {
    const p = causalProbs(rng, heads, S, T);
    const att = headMean(p, heads, S, T);
    assert.equal(att.seqLen, S);
    assert.equal(att.probs.length, S * S);
    const ref = refHeadMean(p, heads, S, T);
    assertClose(att.probs, ref.flat(), 1e-14, `headMean ${heads}x${S}x${T}`);
    // float32 input (as fetched from onnxruntime) gives the same map to float32 precision
    const att32 = headMean(Float32Array.from(p), heads, S, T);
    assertClose(att32.probs, ref.flat(), 1e-6, 'headMean float32');
  }
});

// ----------------------------------------------------------------------------- selection edge cases

test('selectTokens: ties resolved by position (deterministic), count rounding, at least one', () => {
  const flat = new Float64Array(10).fill(0.1);
  assert.deepEqual(selectTokens(flat, 0.3, 'count'), [0, 1, 2]);
  assert.deepEqual(selectTokens(flat, 0.3, 'nucleus'), [0, 1, 2]);
  assert.deepEqual(selectTokens(flat, 0.01, 'count'), [0]);
  const s = Float64Array.from([0.1, 0.5, 0.2, 0.5, 0.2, 0.0, 0.5]);
  assert.deepEqual(selectTokens(s, 2 / 7, 'count'), [1, 3]);
  assert.deepEqual(selectTokens(s, 3 / 7, 'count'), [1, 3, 6]);
  assert.deepEqual(selectTokens(s, 4 / 7, 'count'), [1, 2, 3, 6]);
  // round(p * S): 0.25 * 10 = 2.5 -> 3 (round half up), 0.24 * 10 -> 2
  const r = Float64Array.from({ length: 10 }, (_, i) => 10 - i);
  assert.equal(selectTokens(r, 0.25, 'count').length, 3);
  assert.equal(selectTokens(r, 0.24, 'count').length, 2);
  // Nucleus stops as soon as the mass reaches p exactly (>=, not >): binary fractions, exact sums.
  const exact = Float64Array.from([0.25, 0.5, 0.125, 0.125]);
  assert.deepEqual(selectTokens(exact, 0.5, 'nucleus'), [1]);
  assert.deepEqual(selectTokens(exact, 0.75, 'nucleus'), [0, 1]);
  assert.deepEqual(selectTokens(exact, 0.875, 'nucleus'), [0, 1, 2]);
  // Repeated calls give the same answer; the input is not modified.
  const copy = Float64Array.from(s);
  assert.deepEqual(selectTokens(s, 0.5, 'nucleus'), selectTokens(s, 0.5, 'nucleus'));
  assert.deepEqual(s, copy);
  // Nucleus on a real TIS vector: exactly the smallest prefix reaching p.
  const rng = new Rng('nucleus');
  const isImage = layout([['T', 5], ['V', 30], ['T', 8]]);
  const p = causalProbs(rng, 4, isImage.length);
  const tis = tokenImportance(headMean(p, 4, isImage.length), isImage);
  for (const frac of [0.1, 0.2, 0.5, 0.9]) {
    const kept = selectTokens(tis, frac, 'nucleus');
    const total = tis.reduce((a, b) => a + b, 0);
    const m = kept.reduce((a, i) => a + tis[i], 0);
    assert.ok(m / total >= frac, 'reaches p');
    const smallest = Math.min(...kept.map((i) => tis[i]));
    assert.ok((m - smallest) / total < frac, 'smallest such set');
  }
});

// ----------------------------------------------------------------------------- fused attention

/**
 * Reference attention of a fused op, written the way Hugging Face's Llama does it: per head,
 * q_rot = q * [cos, cos] + rotate_half(q) * [sin, sin] on the first rotaryDim dims (or the
 * interleaved pairs variant), keys taken as given (present_key is already rotated), head h
 * reads kv head floor(h / (heads / kvHeads)), scores * scale, causal softmax over keys
 * 0..T-S+s. Returns [heads][S][T].
 */
function refFusedAttention(
  query: Float64Array, key: Float64Array, S: number, heads: number, kvHeads: number, headDim: number,
  cos: Float64Array, sin: Float64Array, rotaryDim: number, interleaved: boolean, scale: number, rotate: boolean,
): number[][][] {
  const T = key.length / (kvHeads * headDim);
  const half = rotaryDim / 2;
  const out: number[][][] = [];
  for (let h = 0; h < heads; h++) {
    out.push([]);
    const g = Math.floor(h / (heads / kvHeads));
    for (let s = 0; s < S; s++) {
      const pos = T - S + s;
      const q = Array.from(query.subarray((s * heads + h) * headDim, (s * heads + h + 1) * headDim));
      let qr = q.slice();
      if (rotate) {
        if (!interleaved) {
          const cosF = [...Array.from(cos.subarray(pos * half, pos * half + half)), ...Array.from(cos.subarray(pos * half, pos * half + half))];
          const sinF = [...Array.from(sin.subarray(pos * half, pos * half + half)), ...Array.from(sin.subarray(pos * half, pos * half + half))];
          const x = q.slice(0, rotaryDim);
          const rot = [...x.slice(half).map((v) => -v), ...x.slice(0, half)];
          qr = [...x.map((v, i) => v * cosF[i] + rot[i] * sinF[i]), ...q.slice(rotaryDim)];
        } else {
          for (let j = 0; j < half; j++) {
            const c = cos[pos * half + j];
            const sn = sin[pos * half + j];
            qr[2 * j] = q[2 * j] * c - q[2 * j + 1] * sn;
            qr[2 * j + 1] = q[2 * j + 1] * c + q[2 * j] * sn;
          }
        }
      }
      const logits: number[] = [];
      for (let t = 0; t < T; t++) {
        if (t > pos) {
          logits.push(-Infinity);
          continue;
        }
        let d = 0;
        for (let e = 0; e < headDim; e++) d += qr[e] * key[(g * T + t) * headDim + e];
        logits.push(d * scale);
      }
      const m = Math.max(...logits);
      const ex = logits.map((l) => (l === -Infinity ? 0 : Math.exp(l - m)));
      const z = ex.reduce((a, b) => a + b, 0);
      out[h].push(ex.map((e) => e / z));
    }
  }
  return out;
}

function ropeCache(maxPos: number, rotaryDim: number, base = 10000): { cos: Float64Array; sin: Float64Array } {
  const half = rotaryDim / 2;
  const cos = new Float64Array(maxPos * half);
  const sin = new Float64Array(maxPos * half);
  for (let p = 0; p < maxPos; p++) {
    for (let j = 0; j < half; j++) {
      const a = p * base ** (-(2 * j) / rotaryDim);
      cos[p * half + j] = Math.cos(a);
      sin[p * half + j] = Math.sin(a);
    }
  }
  return { cos, sin };
}

test('attentionFromQK vs an independent rotary + GQA + causal softmax', () => {
  const rng = new Rng('fused');
  const cases = [
    { S: 6, past: 0, heads: 4, kvHeads: 2, headDim: 8, rotaryDim: 8, interleaved: false, scale: undefined, rotate: true },
    { S: 5, past: 0, heads: 6, kvHeads: 3, headDim: 12, rotaryDim: 8, interleaved: false, scale: undefined, rotate: true },
    { S: 4, past: 3, heads: 4, kvHeads: 1, headDim: 10, rotaryDim: 6, interleaved: false, scale: undefined, rotate: true },
    { S: 5, past: 0, heads: 2, kvHeads: 2, headDim: 8, rotaryDim: 8, interleaved: true, scale: undefined, rotate: true },
    { S: 5, past: 2, heads: 4, kvHeads: 2, headDim: 8, rotaryDim: 4, interleaved: false, scale: 0.2, rotate: true },
    { S: 5, past: 0, heads: 4, kvHeads: 4, headDim: 8, rotaryDim: 8, interleaved: false, scale: undefined, rotate: false },
  ];
  for (const c of cases) {
    const what = JSON.stringify(c);
    const T = c.S + c.past;
    const q = Float64Array.from({ length: c.S * c.heads * c.headDim }, () => 1.5 * rng.normal());
    const k = Float64Array.from({ length: c.kvHeads * T * c.headDim }, () => 1.5 * rng.normal());
    const { cos, sin } = ropeCache(T + 4, c.rotaryDim);
    const got = attentionFromQK(q, k, c.S, c.heads, c.kvHeads, c.headDim, cos, sin, c.rotaryDim, c.interleaved, c.scale, c.rotate);
    const ref = refFusedAttention(q, k, c.S, c.heads, c.kvHeads, c.headDim, cos, sin, c.rotaryDim, c.interleaved, c.scale ?? 1 / Math.sqrt(c.headDim), c.rotate);
    assert.equal(got.length, c.heads * c.S * T, `${what}: shape [heads, S, T]`);
    for (let h = 0; h < c.heads; h++) for (let s = 0; s < c.S; s++) for (let t = 0; t < T; t++) {
      const g = got[(h * c.S + s) * T + t];
      assert.ok(Math.abs(g - ref[h][s][t]) < 1e-13, `${what}: head ${h} row ${s} key ${t}: ${g} vs ${ref[h][s][t]}`);
    }
    // float32 inputs as fetched from onnxruntime
    const got32 = attentionFromQK(Float32Array.from(q), Float32Array.from(k), c.S, c.heads, c.kvHeads, c.headDim, Float32Array.from(cos), Float32Array.from(sin), c.rotaryDim, c.interleaved, c.scale, c.rotate);
    const ref32 = refFusedAttention(Float64Array.from(Float32Array.from(q)), Float64Array.from(Float32Array.from(k)), c.S, c.heads, c.kvHeads, c.headDim, Float64Array.from(Float32Array.from(cos)), Float64Array.from(Float32Array.from(sin)), c.rotaryDim, c.interleaved, c.scale ?? 1 / Math.sqrt(c.headDim), c.rotate);
    for (let h = 0; h < c.heads; h++) for (let s = 0; s < c.S; s++) for (let t = 0; t < T; t++) {
      assert.ok(Math.abs(got32[(h * c.S + s) * T + t] - ref32[h][s][t]) < 1e-12, `${what}: float32 inputs`);
    }
  }
});

test('attentionFromQK: rotary makes scores depend on relative position only (a check of the caches layout)', () => {
  // The same raw query and key vector at every position, keys rotated here by their own
  // position: with a correct use of the caches, the logit depends only on the distance s - t.
  const rng = new Rng('rope relative');
  const headDim = 8;
  const S = 6;
  const { cos, sin } = ropeCache(S, headDim);
  const q0 = Array.from({ length: headDim }, () => rng.normal());
  const k0 = Array.from({ length: headDim }, () => rng.normal());
  const q = Float64Array.from({ length: S * headDim }, (_, i) => q0[i % headDim]);
  const k = new Float64Array(S * headDim);
  const half = headDim / 2;
  for (let p = 0; p < S; p++) {
    for (let j = 0; j < half; j++) {
      const c = cos[p * half + j];
      const s = sin[p * half + j];
      k[p * headDim + j] = k0[j] * c - k0[j + half] * s;
      k[p * headDim + j + half] = k0[j + half] * c + k0[j] * s;
    }
  }
  const probs = attentionFromQK(q, k, S, 1, 1, headDim, cos, sin);
  // Ratio of weights at distance 0 and 1 is exp(logit(0) - logit(1)), the same on every row >= 1.
  const ratios = Array.from({ length: S - 1 }, (_, i) => probs[(i + 1) * S + i + 1] / probs[(i + 1) * S + i]);
  for (const r of ratios) assert.ok(Math.abs(r - ratios[0]) < 1e-12 * ratios[0], `ratios ${ratios}`);
});

// ----------------------------------------------------------------------------- non-causal masks

test('TIS and head averaging with bidirectional image blocks (Gemma 3 style) follow the mask the decoder applies', () => {
  // Text, image block, text, image block, text. Within a block every image token sees every
  // other; elsewhere causal. The reference builds the visibility matrix from the block list
  // and applies the DESIGN definitions with "rows that can see the token" literally.
  const isImage = layout([['T', 3], ['V', 4], ['T', 2], ['V', 3], ['T', 3]]);
  const S = isImage.length;
  const blocks = [[3, 7], [9, 12]];
  const sees = (q: number, k: number) => k <= q || blocks.some(([a, b]) => q >= a && q < b && k >= a && k < b);
  const rng = new Rng('bidirectional');
  const heads = 3;
  const p = new Float64Array(heads * S * S);
  for (let h = 0; h < heads; h++) for (let q = 0; q < S; q++) {
    let z = 0;
    for (let k = 0; k < S; k++) if (sees(q, k)) z += p[(h * S + q) * S + k] = Math.exp(2 * rng.normal());
    for (let k = 0; k < S; k++) p[(h * S + q) * S + k] /= z;
  }
  const lastKey = bidirectionalImageBlocks({ ids: Array.from({ length: S }, () => 0), isImage, inputs: {} });
  const att = headMean(p, heads, S, S, lastKey);
  const A: number[][] = [];
  for (let q = 0; q < S; q++) {
    A.push([]);
    for (let k = 0; k < S; k++) {
      let s = 0;
      for (let h = 0; h < heads; h++) s += p[(h * S + q) * S + k];
      A[q].push(s / heads);
    }
  }
  assertClose(att.probs, A.flat(), 1e-14, 'head mean keeps the image blocks\' forward attention');
  const ref: number[] = [];
  for (let i = 0; i < S; i++) {
    const rowsOf = (img: number) => Array.from({ length: S }, (_, r) => r).filter((r) => isImage[r] === img && sees(r, i)).map((r) => A[r][i]);
    const terms = isImage[i]
      ? [rowsOf(1), rowsOf(0)]
      : [Array.from({ length: S }, (_, j) => j).filter((j) => isImage[j] && sees(i, j)).map((j) => A[i][j]), rowsOf(0)];
    const present = terms.filter((t) => t.length);
    ref.push(present.reduce((a, t) => a + mean(t), 0) / present.length);
  }
  assertClose(tokenImportance(att, isImage), ref, 1e-12, 'TIS under the block mask');
  // The causal reading of the same map differs (image token 4 is seen by image row 3 too).
  const causal = tokenImportance({ probs: att.probs, seqLen: S }, isImage);
  assert.ok(Math.abs(causal[4] - ref[4]) > 1e-6);
  // The in-graph statistics' sums run over every row and column (masked probabilities are
  // zero); the counts come from the mask: the same scores.
  const fromVis = new Float64Array(S);
  const fromText = new Float64Array(S);
  const toVis = new Float64Array(S);
  for (let r = 0; r < S; r++) for (let c = 0; c < S; c++) {
    (isImage[r] ? fromVis : fromText)[c] += A[r][c];
    if (isImage[c]) toVis[r] += A[r][c];
  }
  assertClose(tisFromSums(fromVis, fromText, toVis, isImage, lastKey), ref, 1e-12, 'TIS from whole-matrix sums under the block mask');

  // Fused attention recomputed under the same mask: an independent masked softmax.
  const headDim = 4;
  const q = Float64Array.from({ length: S * heads * headDim }, () => rng.normal());
  const k = Float64Array.from({ length: heads * S * headDim }, () => rng.normal());
  const got = attentionFromQK(q, k, S, heads, heads, headDim, new Float64Array(0), new Float64Array(0), headDim, false, undefined, false, lastKey);
  for (let h = 0; h < heads; h++) for (let s = 0; s < S; s++) {
    const logits = Array.from({ length: S }, (_, t) => {
      let dot = 0;
      for (let e = 0; e < headDim; e++) dot += q[(s * heads + h) * headDim + e] * k[(h * S + t) * headDim + e];
      return sees(s, t) ? dot / Math.sqrt(headDim) : -Infinity;
    });
    const m = Math.max(...logits);
    const ex = logits.map((x) => Math.exp(x - m));
    const z = ex.reduce((a, b) => a + b, 0);
    for (let t = 0; t < S; t++) assert.ok(Math.abs(got[(h * S + s) * S + t] - ex[t] / z) < 1e-13, `head ${h} row ${s} key ${t}`);
  }
});
