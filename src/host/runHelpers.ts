// Pure helpers of the run manager (no `vscode` import, so unit tests run them under Node).

import * as fs from 'fs';
import * as path from 'path';
import type { BenchmarkReport, BenchRow } from '../protocol/report';
import type { Progress } from './engineClient';

/** The shape of the engine's bench result (ModelBench without its answers). */
export interface BenchResult {
  model: string;
  numLayers: number;
  accuracy: number;
  families: BenchRow['families'];
  samplesPerSecond: number;
  sizeBytes: number;
  relativeAccuracy?: number;
  agreement?: number;
  klMean?: number;
}

export function formatEta(seconds: number): string {
  const s = Math.max(1, Math.round(seconds));
  if (s < 60) return `${s}s`;
  return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
}

export function progressText(p: Progress): string {
  const eta = p.etaSeconds !== undefined && p.done < p.total ? `, ETA ${formatEta(p.etaSeconds)}` : '';
  return `${p.stage} ${p.done}/${p.total}${eta}`;
}

/** Removes the engine's temporary siblings of `out` (left only when its process was killed). */
export function removePartials(out: string): string[] {
  const dir = path.dirname(out);
  const prefix = `.${path.basename(out)}.partial-`;
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir).filter((n) => n.startsWith(prefix));
  } catch {
    return [];
  }
  for (const n of names) fs.rmSync(path.join(dir, n), { recursive: true, force: true });
  return names;
}

export function toBenchmarkReport(results: BenchResult[], evalFile: string): BenchmarkReport {
  const base = results[0];
  const rows: BenchRow[] = results.map((r, i) => ({
    model: r.model,
    label: i === 0 ? `${path.basename(r.model)} (original)` : path.basename(r.model),
    numLayers: r.numLayers,
    accuracy: r.accuracy,
    families: r.families,
    relativeAccuracy: i === 0 ? 1 : r.relativeAccuracy,
    agreement: i === 0 ? 1 : r.agreement,
    klMean: i === 0 ? 0 : r.klMean,
    samplesPerSecond: r.samplesPerSecond,
    speedup: base && base.samplesPerSecond > 0 ? r.samplesPerSecond / base.samplesPerSecond : undefined,
    sizeBytes: r.sizeBytes,
  }));
  const items = base ? Object.values(base.families).reduce((a, f) => a + f.n, 0) : 0;
  return { evalFile, items, rows };
}
