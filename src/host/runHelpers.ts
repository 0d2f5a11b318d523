// Pure helpers of the run manager (no `vscode` import, so unit tests run them under Node).

import * as fs from 'fs';
import * as path from 'path';
import type { Progress } from './engineClient';
export { toBenchmarkReport } from '../engine/bench/attach';
export type { BenchResult } from '../engine/bench/attach';

/** The shape of the engine's bench result (ModelBench without its answers). */
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

