// Localising: which layers to remove, from one global ranking of per-layer redundancy over
// the candidate range, and which retained layer compensates each removed one.

export { defaultCandidates, layersToRemove, outputAwareCandidates } from '../../protocol/options';

function checkRange(n: number, [lo, hi]: [number, number], numLayers: number): number[] {
  if (!(Number.isInteger(lo) && Number.isInteger(hi) && lo >= 0 && hi < numLayers && lo <= hi)) {
    throw new Error(`candidate range ${lo}-${hi} is outside layers 0-${numLayers - 1}`);
  }
  const range = Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
  if (n > range.length) throw new Error(`cannot remove ${n} layers from the ${range.length} candidates ${lo}-${hi}; widen the candidate range or lower the ratio`);
  return range;
}

/** The n candidates with the highest score (most redundant); ties go to the later layer. */
export function selectByScore(scores: Array<number | null>, n: number, candidates: [number, number]): number[] {
  const range = checkRange(n, candidates, scores.length).filter((i) => scores[i] !== null && Number.isFinite(scores[i]));
  if (range.length < n) throw new Error(`only ${range.length} candidate layers have a score; cannot remove ${n}`);
  return range
    .sort((a, b) => (scores[b] as number) - (scores[a] as number) || b - a)
    .slice(0, n)
    .sort((a, b) => a - b);
}

/** Rank of each layer by score among the candidates (0 = most redundant), null outside. */
export function rankByScore(scores: Array<number | null>, candidates: [number, number]): Array<number | null> {
  const [lo, hi] = candidates;
  const order = scores
    .map((s, i) => ({ s, i }))
    .filter(({ s, i }) => i >= lo && i <= hi && s !== null)
    .sort((a, b) => (b.s as number) - (a.s as number) || b.i - a.i);
  const rank: Array<number | null> = scores.map(() => null);
  order.forEach(({ i }, r) => (rank[i] = r));
  return rank;
}

/** Seeded uniform choice of n candidates (the random-dropping baseline). */
export function selectRandom(n: number, candidates: [number, number], numLayers: number, seed: number): number[] {
  const range = checkRange(n, candidates, numLayers);
  let s = (seed + 0x9e3779b9) >>> 0 || 1; // offset so that seeds 0 and 1 differ
  const rand = () => ((s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 2 ** 32);
  for (let i = range.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [range[i], range[j]] = [range[j], range[i]];
  }
  return range.slice(0, n).sort((a, b) => a - b);
}

/**
 * Pairs each removed layer with the nearest retained layer, preferring the one below, then
 * above; each retained layer compensates at most one removed layer. Removed layers are paired
 * in ascending order. A removed layer with no free partner gets none.
 */
export function pairPartners(removed: number[], numLayers: number): Array<{ pruned: number; partner: number | null }> {
  const removedSet = new Set(removed);
  const used = new Set<number>();
  return [...removed].sort((a, b) => a - b).map((p) => {
    for (let d = 1; d < numLayers; d++) {
      for (const r of [p - d, p + d]) {
        if (r >= 0 && r < numLayers && !removedSet.has(r) && !used.has(r)) {
          used.add(r);
          return { pruned: p, partner: r };
        }
      }
    }
    return { pruned: p, partner: null };
  });
}
