// Output-aware selection (SLEB / FinerCut style): remove layers one at a time, each round the
// candidate whose removal, together with the layers already removed, changes the output least,
// re-measured after every removal. The cost function is abstract (a measured output distance
// on calibration samples in the engine, anything in the tests), so the search is testable
// against brute force on its own.

export interface GreedyStep {
  /** Layers removed after this round (sorted). */
  removed: number[];
  /** The layer this round added. */
  added: number;
  /** Cost of `removed` as measured by the search. */
  cost: number;
  /** Trials run in this round. */
  trials: number;
}

export interface GreedyOptions {
  /** Layers that may be removed. */
  candidates: number[];
  /** Rounds to run (layers to remove at most). */
  steps: number;
  /**
   * Narrow each round to the `topM` remaining candidates with the highest proxy score (e.g. the
   * TIS cosine): bounds the cost at topM trials a round. undefined = every remaining candidate.
   */
  topM?: number;
  proxy?: Array<number | null>;
  /** Stop early once a round's best cost exceeds this. */
  stopAbove?: number;
}

/**
 * Runs the greedy search; `cost(set)` measures the output change with exactly `set` removed.
 * Ties go to the later layer (as in the cosine ranking).
 */
export async function greedySelect(cost: (removed: number[]) => Promise<number>, o: GreedyOptions): Promise<GreedyStep[]> {
  const steps: GreedyStep[] = [];
  const removed: number[] = [];
  const remaining = [...new Set(o.candidates)].sort((a, b) => a - b);
  if (o.steps > remaining.length) throw new Error(`cannot remove ${o.steps} layers from ${remaining.length} candidates`);
  for (let round = 0; round < o.steps; round++) {
    let pool = remaining;
    if (o.topM !== undefined && o.topM < remaining.length) {
      const proxy = o.proxy ?? [];
      pool = [...remaining]
        .sort((a, b) => (proxy[b] ?? -Infinity) - (proxy[a] ?? -Infinity) || b - a)
        .slice(0, Math.max(1, o.topM));
    }
    let best = -1;
    let bestCost = Infinity;
    for (const c of pool) {
      const v = await cost([...removed, c].sort((a, b) => a - b));
      if (v < bestCost || (v === bestCost && c > best)) {
        best = c;
        bestCost = v;
      }
    }
    if (best < 0) break;
    const trials = pool.length;
    removed.push(best);
    remaining.splice(remaining.indexOf(best), 1);
    steps.push({ removed: [...removed].sort((a, b) => a - b), added: best, cost: bestCost, trials });
    if (o.stopAbove !== undefined && bestCost > o.stopAbove) break;
  }
  return steps;
}

/**
 * How many layers a budget allows: the largest n whose curve point (curve[n - 1], measured with
 * the first n greedy removals) meets every given bound; 0 when none does. The measured curve
 * need not be monotone, so a later point that meets the budget counts.
 */
export function withinBudget(curve: Array<{ agreement: number; kl: number }>, budget: { minAgreement?: number; maxKl?: number }): number {
  let n = 0;
  curve.forEach((p, i) => {
    const ok = (budget.minAgreement === undefined || p.agreement >= budget.minAgreement) && (budget.maxKl === undefined || p.kl <= budget.maxKl);
    if (ok) n = i + 1;
  });
  return n;
}
