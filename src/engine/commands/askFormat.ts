// The `ask` result as the CLI prints it: both answers side by side, then step by step the
// chosen token and the top-k of each model, and the KL divergence along the original's answer.

import type { AskResult, TokenProb } from '../../protocol/engineApi';

const pct = (p: number) => `${(100 * p).toFixed(p >= 0.0995 ? 1 : 2)}%`;
/** Token text made visible: quotes, newlines and end-of-sequence written out. */
export const showToken = (t: string) => JSON.stringify(t);
const list = (top: TokenProb[]) => top.map((t) => `${showToken(t.text)} ${pct(t.p)}`).join(', ');

export function formatAsk(r: AskResult): string {
  const W = 44;
  const row = (label: string, a: string, b: string) => `${label.padEnd(10)}${a.padEnd(W)}  ${b}`.trimEnd();
  const lines = [
    `question  ${r.question}`,
    `image     ${r.image}`,
    `prompt    ${JSON.stringify(r.prompt)}`,
    '',
    row('', `original (${r.original.numLayers} layers)`, `pruned (${r.pruned.numLayers} layers)`),
    row('answer', JSON.stringify(r.original.text), JSON.stringify(r.pruned.text)),
  ];
  const n = Math.max(r.original.steps.length, r.pruned.steps.length);
  for (let i = 0; i < n; i++) {
    const o = r.original.steps[i];
    const p = r.pruned.steps[i];
    const chosen = (s?: typeof o) => (s ? `${showToken(s.text)} ${pct(s.p)}${s.eos ? ' (end)' : ''}` : '');
    lines.push('', row(`step ${i + 1}`, chosen(o), chosen(p)));
    lines.push(`  top ${o?.top.length ?? p!.top.length}:`.padEnd(10) + `original ${o ? list(o.top) : '-'}`);
    lines.push(''.padEnd(10) + `pruned   ${p ? list(p.top) : '-'}`);
    if (i < r.kl.steps.length) {
      // Once the answers differ, the pruned model's own steps read another context than the original's.
      const diverged = r.original.steps.slice(0, i).some((s, j) => r.pruned.steps[j]?.id !== s.id);
      if (diverged) lines.push(''.padEnd(10) + `pruned after the original's tokens: ${list(r.prunedAlongOriginal[i])}`);
      lines.push(''.padEnd(10) + `KL(original || pruned) ${r.kl.steps[i].toFixed(4)} nats`);
    }
  }
  lines.push(
    '',
    `KL(original || pruned): first answer token ${r.kl.first.toFixed(4)} nats, mean ${r.kl.mean.toFixed(4)} over the ${r.kl.steps.length} step(s) of the original's answer`,
    `time: original ${Math.round(r.original.loadMs)} ms load + ${Math.round(r.original.prefillMs + r.original.decodeMs)} ms answer, pruned ${Math.round(r.pruned.loadMs)} ms + ${Math.round(r.pruned.prefillMs + r.pruned.decodeMs)} ms (models loaded one at a time)`,
  );
  return lines.join('\n');
}
