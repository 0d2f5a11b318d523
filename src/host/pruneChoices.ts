// The first step of "Prune with Short-LVLM" (no `vscode` import, unit-tested): fixed ratios and
// quality budgets side by side, each saying in plain words which method will choose the layers.

import { DEFAULT_METHOD, resolveCompensation } from '../protocol/report';
import type { PruneOptions } from '../protocol/report';

export interface PruneChoice {
  label: string;
  description: string;
  detail?: string;
  ratio?: number;
  minAgreement?: number;
}

export const BUDGETS = [0.95, 0.9];

/** Plain description of the method the options select, for the quick pick and notifications. */
export function methodLabel(o: Partial<PruneOptions>): string {
  const comp = resolveCompensation(o);
  const c = comp === 'scp' ? 'SCP compensation' : comp === 'ls' ? 'least-squares compensation (dropped if it does not help)' : 'no compensation';
  switch (o.method ?? DEFAULT_METHOD) {
    case 'svl': return `Short-LVLM as published (TIS cosine), ${c}`;
    case 'greedy': return `measured output change (greedy), ${c} — not the paper's TIS-cosine choice`;
    default: return `${o.method} baseline, ${c} — not the paper's method`;
  }
}

export function pruneChoices(numLayers: number, o: Partial<PruneOptions>, last?: { ratio?: number; minAgreement?: number }): PruneChoice[] {
  const dflt = o.ratio ?? 0.3;
  const detail = `Method: ${methodLabel(o)}`;
  const ratios = [...new Set([last?.ratio ?? dflt, dflt, 0.1, 0.2, 0.25, 0.3, 0.4, 0.5])];
  const items: PruneChoice[] = ratios.map((r) => ({
    label: String(r),
    description: `remove ${Math.round(r * numLayers)} of ${numLayers} layers${r === last?.ratio ? ' (last used)' : r === dflt ? ' (default)' : ''}`,
    detail,
    ratio: r,
  }));
  for (const a of BUDGETS) {
    items.push({
      label: `≥ ${Math.round(a * 100)} % agreement`,
      description: `quality budget: remove as many layers as keep ${Math.round(a * 100)} % of first answers unchanged (held-out)${last?.minAgreement === a ? ' (last used)' : ''}`,
      detail: `Method: ${methodLabel(o)}; each removal measured on held-out calibration samples`,
      minAgreement: a,
    });
  }
  return items;
}
