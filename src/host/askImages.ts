// The images a user can ask about from a calibration file: each distinct image of a LLaVA-style
// file (JSON list or JSONL), with the human turn's question but never the answer. Pure (no
// `vscode` import) so that tests read it directly.

import * as fs from 'fs';
import * as path from 'path';
import type { AskImage } from '../protocol/messages';

const MAX_IMAGES = 200;

/** The images of a LLaVA-style calibration file (JSON list or JSONL), with their first question (no answers). */
export function calibrationImages(file: string, limit = MAX_IMAGES): AskImage[] {
  const text = fs.readFileSync(file, 'utf8');
  let recs: unknown[];
  try {
    const parsed = JSON.parse(text);
    recs = Array.isArray(parsed) ? parsed : [parsed];
  } catch {
    recs = text.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
  }
  const out: AskImage[] = [];
  const seen = new Set<string>();
  for (const r of recs as { image?: unknown; conversations?: { from?: string; value?: string }[] }[]) {
    if (typeof r?.image !== 'string') continue;
    const p = path.resolve(path.dirname(file), r.image);
    if (seen.has(p) || !fs.existsSync(p)) continue;
    seen.add(p);
    const human = r.conversations?.find((c) => c.from === 'human')?.value;
    const question = human?.replace(/<image>\s*/g, '').trim();
    out.push({ path: p, label: `${r.image}${question ? ` — ${question}` : ''}`, source: 'calibration', ...(question ? { question } : {}) });
    if (out.length >= limit) break;
  }
  return out;
}
