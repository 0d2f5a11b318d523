// The output-aware greedy search against brute force over every subset, on synthetic costs
// built so that the best subsets are known: a separable cost with small interactions (greedy
// is optimal there), a redundant pair (cheap alone, costly together: re-measuring after each
// removal must avoid the second one, where a one-shot ranking by single-layer cost takes both),
// and a proxy trap (the layer the proxy ranks most redundant is the costliest).

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { greedySelect, withinBudget } from '../../src/engine/method/greedy';
import { Rng } from '../support/prng';

function subsets(range: number[], k: number): number[][] {
  if (k === 0) return [[]];
  if (range.length < k) return [];
  const [h, ...t] = range;
  return [...subsets(t, k - 1).map((s) => [h, ...s]), ...subsets(t, k)];
}

async function bruteBest(cost: (s: number[]) => Promise<number>, range: number[], k: number): Promise<{ set: number[]; cost: number }> {
  let best = { set: [] as number[], cost: Infinity };
  for (const s of subsets(range, k)) {
    const c = await cost(s);
    if (c < best.cost) best = { set: s, cost: c };
  }
  return best;
}

test('greedy equals brute force on a separable cost with small interactions, at every size', async () => {
  const rng = new Rng(7);
  const L = 8;
  // Per-layer costs spaced by at least 1; interactions below 1 / (L^2) cannot reorder them.
  const base = Array.from({ length: L }, (_, i) => i + 1).sort(() => rng.uniform() - 0.5);
  const inter = Array.from({ length: L }, () => Array.from({ length: L }, () => rng.uniform() / (L * L)));
  const cost = async (s: number[]) => s.reduce((t, l) => t + base[l], 0) + s.reduce((t, a) => t + s.reduce((u, b) => u + (a < b ? inter[a][b] : 0), 0), 0);
  const range = Array.from({ length: L }, (_, i) => i);
  const steps = await greedySelect(cost, { candidates: range, steps: 5 });
  for (let k = 1; k <= 5; k++) {
    const bf = await bruteBest(cost, range, k);
    assert.deepEqual(steps[k - 1].removed, bf.set, `size ${k}`);
    assert.ok(Math.abs(steps[k - 1].cost - bf.cost) < 1e-12);
  }
  // Round k tries every remaining candidate.
  assert.deepEqual(steps.map((s) => s.trials), [8, 7, 6, 5, 4]);
});

test('greedy re-measures after each removal: it avoids the second layer of a redundant pair, as brute force does', async () => {
  // Layers 2 and 3 each cost little alone but duplicate each other: removing both costs a lot.
  const single = [5, 4, 0.1, 0.2, 3, 1, 2, 6];
  const cost = async (s: number[]) => s.reduce((t, l) => t + single[l], 0) + (s.includes(2) && s.includes(3) ? 10 : 0);
  const range = Array.from({ length: 8 }, (_, i) => i);
  const steps = await greedySelect(cost, { candidates: range, steps: 3 });
  for (let k = 1; k <= 3; k++) assert.deepEqual(steps[k - 1].removed, (await bruteBest(cost, range, k)).set, `size ${k}`);
  assert.deepEqual(steps[1].removed, [2, 5]);
  // One-shot ranking by single-layer cost would take 2 and 3 (cost 10.3 against 1.1).
  assert.ok((await cost([2, 3])) > steps[1].cost);
});

test('narrowing to the proxy\'s top-m changes the pool, not the rule; a proxy trap costs only when m excludes the cheap layers', async () => {
  const single = [5, 0.5, 0.6, 9, 0.7, 4, 3, 2];
  const proxy = [0.1, 0.2, 0.3, 0.99, 0.4, 0.5, 0.6, 0.7]; // layer 3 looks most redundant and is the costliest
  const cost = async (s: number[]) => s.reduce((t, l) => t + single[l], 0);
  const range = Array.from({ length: 8 }, (_, i) => i);
  const full = await greedySelect(cost, { candidates: range, steps: 2, proxy, topM: 8 });
  assert.deepEqual(full[1].removed, (await bruteBest(cost, range, 2)).set);
  const narrow = await greedySelect(cost, { candidates: range, steps: 2, proxy, topM: 3 });
  // Round 1's pool is {3, 7, 6} (the top 3 by proxy): it picks 7, then {3, 6, 5}: 6.
  assert.deepEqual(narrow.map((s) => s.added), [7, 6]);
  assert.deepEqual(narrow.map((s) => s.trials), [3, 3]);
});

test('the budget takes the largest size whose measured point meets every bound', () => {
  const curve = [
    { agreement: 0.99, kl: 0.01 },
    { agreement: 0.97, kl: 0.03 },
    { agreement: 0.93, kl: 0.08 },
    { agreement: 0.95, kl: 0.07 },
    { agreement: 0.8, kl: 0.4 },
  ];
  assert.equal(withinBudget(curve, { minAgreement: 0.95 }), 4);
  assert.equal(withinBudget(curve, { minAgreement: 0.95, maxKl: 0.05 }), 2);
  assert.equal(withinBudget(curve, { maxKl: 0.005 }), 0);
  assert.equal(withinBudget(curve, {}), 5);
});
