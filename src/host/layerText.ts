// What the Layers view says about one decoder layer (no `vscode` import, so it is unit-tested):
// the cosine proxy, the rank, the outcome, and the measured skip cost with a flag on layers
// whose removal alone changes the answers.

import { isCostly } from '../protocol/report';
import type { LayerReport } from '../protocol/report';

export function layerDescription(l: LayerReport): string {
  const parts: string[] = [];
  if (isCostly(l)) parts.push('⚠ costly');
  parts.push(`TIS cos ${l.cosTis.toFixed(3)}`, `all ${l.cosAll.toFixed(3)}`);
  if (l.skipCost) parts.push(`skip KL ${l.skipCost.kl.toFixed(3)}`, `agree ${(l.skipCost.agreement * 100).toFixed(0)} %`);
  if (l.rank !== null) parts.push(`rank ${l.rank + 1}`);
  parts.push(l.status);
  return parts.join(' · ');
}

export function layerTooltip(l: LayerReport): string {
  const lines = [
    `**Layer ${l.index}** — ${l.status}${isCostly(l) ? ' — **costly: skipping it alone changes the answers; keep it**' : ''}`,
    '',
    `| | cosine (input → output) |`,
    `|---|---|`,
    `| TIS-kept tokens | ${l.cosTis.toFixed(4)} |`,
    `| all tokens | ${l.cosAll.toFixed(4)} |`,
    `| text tokens | ${l.cosText?.toFixed(4) ?? '—'} |`,
    `| visual tokens | ${l.cosVisual?.toFixed(4) ?? '—'} |`,
    '',
  ];
  if (l.skipCost) {
    lines.push(`Measured skip cost (this layer alone, held-out samples, first answer token): KL ${l.skipCost.kl.toFixed(4)} nats, top-1 agreement ${(l.skipCost.agreement * 100).toFixed(1)} %.`, '');
  }
  lines.push(
    l.candidate ? `Candidate, rank ${l.rank !== null ? l.rank + 1 : '—'} (1 = most redundant).` : 'Outside the candidate range.',
    `Visual share of kept tokens: ${(l.keptVisualShare * 100).toFixed(0)} %.`,
  );
  return lines.join('\n');
}
