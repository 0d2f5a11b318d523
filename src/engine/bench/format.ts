// Plain-text tables for the terminal.

import * as path from 'path';
import type { BenchRow } from '../../protocol/report';

const pct = (x: number | undefined) => (x === undefined ? '-' : (100 * x).toFixed(1));

export function formatBenchTable(rows: BenchRow[]): string {
  const families = [...new Set(rows.flatMap((r) => Object.keys(r.families)))].sort();
  const head = ['model', 'layers', ...families, 'acc', 'rel', 'agree', 'KL', 'samples/s', 'speedup', 'MiB'];
  const base = rows[0];
  const body = rows.map((r) => [
    path.basename(r.model),
    String(r.numLayers),
    ...families.map((f) => pct(r.families[f]?.accuracy)),
    pct(r.accuracy),
    r === base ? '100.0' : pct(r.relativeAccuracy),
    r === base ? '-' : pct(r.agreement),
    r === base ? '-' : (r.klMean ?? 0).toFixed(4),
    r.samplesPerSecond.toFixed(2),
    (r.samplesPerSecond / base.samplesPerSecond).toFixed(2) + 'x',
    (r.sizeBytes / 2 ** 20).toFixed(2),
  ]);
  return table([head, ...body]);
}

export function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r, i) => {
    const line = r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ');
    return i === 0 ? `${line}\n${widths.map((w) => '-'.repeat(w)).join('  ')}` : line;
  }).join('\n');
}
