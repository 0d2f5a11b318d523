// Localising (DESIGN.md section 1): per-token cosine of a layer's input and output residual,
// layer choice from one global ranking over the candidate range, the number of layers a ratio
// removes, the random baseline, SCP partner pairing, and the SCP feature gap; each against a
// brute-force or naive float64 reference written here.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { meanOver, tokenCosines } from '../../src/engine/method/cosine';
import { featureGap } from '../../src/engine/method/scp';
import { defaultCandidates, layersToRemove, pairPartners, rankByScore, selectByScore, selectRandom } from '../../src/engine/method/selection';
import { Rng } from '../support/prng';

// ----------------------------------------------------------------------------- cosine

function naiveCosine(a: number[], b: number[]): number {
  const dot = a.reduce((s, x, i) => s + x * b[i], 0);
  const na = Math.sqrt(a.reduce((s, x) => s + x * x, 0));
  const nb = Math.sqrt(b.reduce((s, x) => s + x * x, 0));
  if (na === 0 || nb === 0) return 1; // a zero vector: defined as 1 (no change measured)
  return dot / (na * nb);
}

test('tokenCosines vs a naive per-token cosine (float64 and float32 inputs, zero vectors)', () => {
  const rng = new Rng('cosine');
  const S = 9;
  const D = 33;
  const xin: number[][] = [];
  const xout: number[][] = [];
  for (let t = 0; t < S; t++) {
    const a = Array.from({ length: D }, () => rng.normal() * (1 + t));
    // Residual-like: output = input + a smaller update (cosines near 1, as in real layers).
    const b = a.map((x) => x + (t % 3) * 0.3 * rng.normal() * (1 + t));
    xin.push(a);
    xout.push(b);
  }
  xin[2] = new Array(D).fill(0); // zero input
  xout[5] = new Array(D).fill(0); // zero output
  xin[7] = new Array(D).fill(0);
  xout[7] = new Array(D).fill(0); // both zero
  xout[8] = xin[8].map((x) => -2 * x); // opposite direction: -1
  const ref = xin.map((a, t) => naiveCosine(a, xout[t]));
  const got = tokenCosines(Float64Array.from(xin.flat()), Float64Array.from(xout.flat()), S, D);
  assert.equal(got.length, S);
  for (let t = 0; t < S; t++) assert.ok(Math.abs(got[t] - ref[t]) < 1e-14, `token ${t}: ${got[t]} vs ${ref[t]}`);
  assert.equal(got[2], 1);
  assert.equal(got[5], 1);
  assert.equal(got[7], 1);
  assert.ok(Math.abs(got[8] + 1) < 1e-14);
  // float32 activations (as fetched from onnxruntime): accumulated in float64.
  const a32 = Float32Array.from(xin.flat());
  const b32 = Float32Array.from(xout.flat());
  const ref32 = xin.map((_, t) => naiveCosine(Array.from(a32.subarray(t * D, (t + 1) * D)), Array.from(b32.subarray(t * D, (t + 1) * D))));
  const got32 = tokenCosines(a32, b32, S, D);
  for (let t = 0; t < S; t++) assert.ok(Math.abs(got32[t] - ref32[t]) < 1e-14, `float32 token ${t}`);
  // A 1e-6 difference between two nearly parallel float32 vectors is resolved (float64 sums).
  const base = Float32Array.from({ length: 4096 }, () => rng.normal());
  const near = Float32Array.from(base, (x, i) => x + (i % 7 === 0 ? 2e-3 : 0));
  const c = tokenCosines(base, near, 1, 4096)[0];
  const cRef = naiveCosine(Array.from(base), Array.from(near));
  assert.ok(Math.abs(c - cRef) < 1e-13 && cRef < 1 - 1e-7, `${c} vs ${cRef}`);

  assert.equal(meanOver(got, [0, 1, 3]), (got[0] + got[1] + got[3]) / 3);
  assert.equal(meanOver(got, []), undefined);
});

// ----------------------------------------------------------------------------- featureGap

test('featureGap: mean per-sample cosine and relative L2 ||Xp - Xr||_F / ||Xp||_F vs naive', () => {
  const rng = new Rng('gap');
  const N = 7;
  const D = 20;
  const xp = Array.from({ length: N }, () => Array.from({ length: D }, () => rng.normal()));
  const xr = xp.map((row, n) => row.map((x) => x + 0.1 * (n + 1) * rng.normal()));
  xr[3] = new Array(D).fill(0); // a zero row: its cosine counts as 1
  const cos = xp.reduce((s, row, n) => s + naiveCosine(row, xr[n]), 0) / N;
  let diff = 0;
  let norm = 0;
  for (let n = 0; n < N; n++) for (let d = 0; d < D; d++) {
    diff += (xp[n][d] - xr[n][d]) ** 2;
    norm += xp[n][d] ** 2;
  }
  for (const [a, b] of [[Float64Array.from(xp.flat()), Float64Array.from(xr.flat())], [Float32Array.from(xp.flat()), Float32Array.from(xr.flat())]]) {
    const g = featureGap(a, b, N, D);
    const tol = a instanceof Float32Array ? 1e-6 : 1e-14;
    assert.ok(Math.abs(g.cosine - cos) < tol, `cosine ${g.cosine} vs ${cos}`);
    assert.ok(Math.abs(g.relL2 - Math.sqrt(diff / norm)) < tol, `relL2 ${g.relL2} vs ${Math.sqrt(diff / norm)}`);
  }
  // Identical features: cosine 1, relL2 0; all-zero features: cosine 1, relL2 0.
  const same = featureGap(Float64Array.from(xp.flat()), Float64Array.from(xp.flat()), N, D);
  assert.ok(Math.abs(same.cosine - 1) < 1e-14 && same.relL2 === 0);
  assert.deepEqual(featureGap(new Float64Array(6), new Float64Array(6), 2, 3), { cosine: 1, relL2: 0 });
});

// ----------------------------------------------------------------------------- ratio and candidates

test('layersToRemove: round(r * L), r in (0, 0.5]; default candidates = last half', () => {
  assert.equal(layersToRemove(0.3, 16), 5); // 4.8
  assert.equal(layersToRemove(0.5, 16), 8);
  assert.equal(layersToRemove(0.1, 16), 2); // 1.6
  assert.equal(layersToRemove(0.2, 10), 2);
  assert.equal(layersToRemove(0.4, 32), 13); // 12.8
  assert.equal(layersToRemove(0.3, 40), 12);
  for (const bad of [0, -0.1, 0.51, 1, NaN]) assert.throws(() => layersToRemove(bad, 16), /ratio/, `ratio ${bad}`);
  assert.deepEqual(defaultCandidates(16), [8, 15]);
  assert.deepEqual(defaultCandidates(10), [5, 9]);
  assert.deepEqual(defaultCandidates(7), [3, 6]);
});

// ----------------------------------------------------------------------------- selectByScore / rankByScore

/** The n highest-scored candidates by repeated maximum (ties to the later layer). */
function refSelect(scores: Array<number | null>, n: number, [lo, hi]: [number, number]): number[] {
  const pool: number[] = [];
  for (let i = lo; i <= hi; i++) if (scores[i] !== null && Number.isFinite(scores[i])) pool.push(i);
  const chosen: number[] = [];
  for (let c = 0; c < n; c++) {
    let best = -1;
    for (const i of pool) {
      if (chosen.includes(i)) continue;
      if (best < 0 || (scores[i] as number) > (scores[best] as number) || ((scores[i] as number) === (scores[best] as number) && i > best)) best = i;
    }
    chosen.push(best);
  }
  return chosen.sort((a, b) => a - b);
}

/** Rank = number of candidates that beat it (higher score, or equal score and later layer). */
function refRank(scores: Array<number | null>, [lo, hi]: [number, number]): Array<number | null> {
  return scores.map((s, i) => {
    if (i < lo || i > hi || s === null) return null;
    let r = 0;
    for (let j = lo; j <= hi; j++) {
      const t = scores[j];
      if (t === null || j === i) continue;
      if (t > s || (t === s && j > i)) r++;
    }
    return r;
  });
}

test('selectByScore: the highest scores within the candidate range only', () => {
  // Layers 0-7 would win outright; only 8-15 may be chosen.
  const scores = [0.999, 0.998, 0.997, 0.99, 0.99, 0.99, 0.99, 0.99, 0.9, 0.95, 0.93, 0.97, 0.91, 0.96, 0.92, 0.94];
  assert.deepEqual(selectByScore(scores, 3, [8, 15]), [9, 11, 13]);
  assert.deepEqual(selectByScore(scores, 5, [8, 15]), [9, 10, 11, 13, 15]);
  assert.deepEqual(selectByScore(scores, 2, [0, 15]), [0, 1]);
  // Ties go to the later layer; null / non-finite scores are never chosen.
  assert.deepEqual(selectByScore([0.5, 0.9, 0.9, 0.9, 0.1], 2, [0, 4]), [2, 3]);
  assert.deepEqual(selectByScore([0.5, null, 0.7, NaN, 0.1], 2, [0, 4]), [0, 2]);
  assert.throws(() => selectByScore([0.5, null, null, 0.2], 3, [0, 3]), /only 2 candidate layers have a score/);
  // More layers than candidates, or a range outside the model.
  assert.throws(() => selectByScore(scores, 9, [8, 15]), /cannot remove 9 layers from the 8 candidates/);
  assert.throws(() => selectByScore(scores, 1, [8, 16]), /outside/);
  assert.throws(() => selectByScore(scores, 1, [9, 8]), /outside/);

  const rng = new Rng('select');
  for (let trial = 0; trial < 200; trial++) {
    const L = 4 + Math.floor(rng.uniform() * 30);
    // Few distinct values so ties are common.
    const scores = Array.from({ length: L }, () => (rng.uniform() < 0.1 ? null : Math.round(rng.uniform() * 8) / 8));
    const lo = Math.floor(rng.uniform() * L);
    const hi = lo + Math.floor(rng.uniform() * (L - lo));
    const valid = scores.slice(lo, hi + 1).filter((s) => s !== null).length;
    const n = Math.floor(rng.uniform() * (valid + 1));
    assert.deepEqual(selectByScore(scores, n, [lo, hi]), refSelect(scores, n, [lo, hi]), JSON.stringify({ scores, n, lo, hi }));
    assert.deepEqual(rankByScore(scores, [lo, hi]), refRank(scores, [lo, hi]), JSON.stringify({ scores, lo, hi }));
    // The selection is the top of the ranking.
    const rank = rankByScore(scores, [lo, hi]);
    const topN = rank.flatMap((r, i) => (r !== null && r < n ? [i] : []));
    assert.deepEqual(selectByScore(scores, n, [lo, hi]), topN);
  }
});

test('rankByScore: 0 = most redundant among the candidates, null outside', () => {
  assert.deepEqual(rankByScore([0.99, 0.5, 0.8, 0.9, 0.7], [1, 4]), [null, 3, 1, 0, 2]);
  assert.deepEqual(rankByScore([0.2, 0.2, null, 0.2], [0, 3]), [2, 1, null, 0]);
});

// ----------------------------------------------------------------------------- selectRandom

test('selectRandom: deterministic per seed, within range, distinct, sorted, about uniform', () => {
  for (const [n, lo, hi, L] of [[5, 8, 15, 16], [1, 0, 0, 1], [3, 2, 9, 12], [8, 8, 15, 16]]) {
    const seen = new Set<string>();
    for (let seed = 1000; seed < 1040; seed++) {
      const a = selectRandom(n, [lo, hi], L, seed);
      assert.deepEqual(selectRandom(n, [lo, hi], L, seed), a, 'same seed, same choice');
      assert.equal(a.length, n);
      assert.equal(new Set(a).size, n, 'distinct');
      assert.ok(a.every((i) => Number.isInteger(i) && i >= lo && i <= hi), `in range: ${a}`);
      assert.deepEqual(a, a.slice().sort((x, y) => x - y), 'sorted');
      seen.add(a.join(','));
    }
    const combos = (m: number, k: number): number => (k === 0 ? 1 : (combos(m - 1, k - 1) * m) / k);
    if (combos(hi - lo + 1, n) > 1) assert.ok(seen.size > 1, 'seeds change the choice');
  }
  // The sweep's seeds (1000, 1001, ...) give different subsets.
  assert.notDeepEqual(selectRandom(5, [8, 15], 16, 1000), selectRandom(5, [8, 15], 16, 1001));
  // Each of the 8 candidates is chosen with probability 5/8: over 2000 seeds, 1250 +- 5 sd.
  const count = new Array(16).fill(0);
  for (let seed = 1000; seed < 3000; seed++) for (const i of selectRandom(5, [8, 15], 16, seed)) count[i]++;
  const sd = Math.sqrt(2000 * (5 / 8) * (3 / 8));
  for (let i = 8; i < 16; i++) assert.ok(Math.abs(count[i] - 1250) < 5 * sd, `layer ${i} chosen ${count[i]} times`);
  assert.throws(() => selectRandom(9, [8, 15], 16, 1), /cannot remove 9 layers/);
});

// ----------------------------------------------------------------------------- pairPartners

/**
 * Brute force from the definition: removed layers in ascending order each take, among the
 * retained layers not yet taken, the one at the smallest distance, the lower one on a tie.
 */
function refPartners(removed: number[], L: number): Array<{ pruned: number; partner: number | null }> {
  const retained: number[] = [];
  for (let i = 0; i < L; i++) if (!removed.includes(i)) retained.push(i);
  const taken = new Set<number>();
  return removed.slice().sort((a, b) => a - b).map((p) => {
    let best: number | null = null;
    for (const r of retained) {
      if (taken.has(r)) continue;
      if (best === null) best = r;
      else {
        const dr = Math.abs(r - p);
        const db = Math.abs(best - p);
        if (dr < db || (dr === db && r < best)) best = r;
      }
    }
    if (best !== null) taken.add(best);
    return { pruned: p, partner: best };
  });
}

test('pairPartners: nearest retained layer, below before above, each retained layer once', () => {
  const partners = (removed: number[], L: number) => pairPartners(removed, L).map((p) => p.partner);
  assert.deepEqual(partners([11, 12, 13, 14, 15], 16), [10, 9, 8, 7, 6]);
  assert.deepEqual(partners([0], 16), [1]);
  assert.deepEqual(partners([3, 5], 8), [2, 4]);
  assert.deepEqual(partners([4], 8), [3]);
  assert.deepEqual(partners([3, 4], 8), [2, 5]);
  assert.deepEqual(partners([7], 8), [6]);
  // Unsorted input is paired in ascending order of the removed layer.
  assert.deepEqual(pairPartners([5, 3], 8), [{ pruned: 3, partner: 2 }, { pruned: 5, partner: 4 }]);
  // No free retained layer left: no partner.
  assert.deepEqual(pairPartners([0, 1, 2], 4), [{ pruned: 0, partner: 3 }, { pruned: 1, partner: null }, { pruned: 2, partner: null }]);

  const rng = new Rng('pairs');
  for (let trial = 0; trial < 300; trial++) {
    const L = 2 + Math.floor(rng.uniform() * 30);
    const n = 1 + Math.floor(rng.uniform() * Math.floor(L / 2));
    const all = Array.from({ length: L }, (_, i) => i);
    for (let i = L - 1; i > 0; i--) {
      const j = Math.floor(rng.uniform() * (i + 1));
      [all[i], all[j]] = [all[j], all[i]];
    }
    const removed = all.slice(0, n);
    const got = pairPartners(removed, L);
    assert.deepEqual(got, refPartners(removed, L), JSON.stringify({ removed, L }));
    // Ratio <= 0.5: there are always enough retained layers, all distinct and none removed.
    const ps = got.map((g) => g.partner);
    assert.ok(ps.every((p) => p !== null && !removed.includes(p)));
    assert.equal(new Set(ps).size, ps.length);
  }
});
