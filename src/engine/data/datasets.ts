// Calibration data (LLaVA conversation JSON or JSONL, as in LLaVA-665k) and evaluation sets
// (JSONL of {id, image, question, answer, choices?}); image paths are relative to the file.

import * as fs from 'fs';
import * as path from 'path';
import { ChatMessage } from '../runtime/vlmFrontend';

export class DataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataError';
  }
}

export interface CalibSample {
  id: string;
  image?: string;
  messages: ChatMessage[];
}

export interface EvalItem {
  id: string;
  image?: string;
  question: string;
  answer: string;
  choices?: string[];
  family: string;
}

function readRecords(file: string): unknown[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new DataError(`cannot read ${file}`);
  }
  const trimmed = text.trimStart();
  if (trimmed.startsWith('[')) {
    try {
      return JSON.parse(text) as unknown[];
    } catch (e) {
      throw new DataError(`${file}: invalid JSON (${(e as Error).message})`);
    }
  }
  const out: unknown[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    try {
      out.push(JSON.parse(line));
    } catch (e) {
      throw new DataError(`${file}:${i + 1}: invalid JSON line (${(e as Error).message})`);
    }
  });
  return out;
}

function resolveImage(file: string, where: string, image: unknown): string | undefined {
  if (image === undefined || image === null) return undefined;
  if (typeof image !== 'string') throw new DataError(`${where}: "image" must be a path string`);
  const p = path.resolve(path.dirname(file), image);
  if (!fs.existsSync(p)) throw new DataError(`${where}: image ${image} not found (looked in ${p})`);
  return p;
}

const ROLE: Record<string, ChatMessage['role']> = { human: 'user', user: 'user', gpt: 'assistant', assistant: 'assistant', system: 'system' };

export function loadCalibration(file: string, limit?: number): CalibSample[] {
  const recs = readRecords(file);
  if (!recs.length) throw new DataError(`${file}: no calibration samples`);
  const out: CalibSample[] = [];
  for (let i = 0; i < recs.length && (limit === undefined || out.length < limit); i++) {
    const r = recs[i] as Record<string, unknown>;
    const where = `${path.basename(file)} sample ${i}`;
    const conv = r?.conversations;
    if (!Array.isArray(conv) || !conv.length) throw new DataError(`${where}: expected LLaVA conversation format {id, image, conversations: [{from, value}]}`);
    const messages = conv.map((c: Record<string, unknown>, j: number) => {
      const role = ROLE[String(c?.from)];
      if (!role || typeof c.value !== 'string') throw new DataError(`${where}, turn ${j}: expected {from: "human"|"gpt", value: string}`);
      return { role, content: c.value } as ChatMessage;
    });
    const image = resolveImage(file, where, r.image);
    if (image && !messages.some((m) => typeof m.content === 'string' && m.content.includes('<image>'))) {
      // LLaVA data always marks the image; place it first when a sample forgot to.
      messages[0] = { ...messages[0], content: `<image>\n${messages[0].content}` };
    }
    out.push({ id: String(r.id ?? i), image, messages });
  }
  return out;
}

/** A limited eval set takes items round-robin across families so every family is represented. */
function stratify(items: EvalItem[], limit: number | undefined): EvalItem[] {
  if (limit === undefined || limit >= items.length) return items;
  const byFamily = new Map<string, EvalItem[]>();
  for (const it of items) (byFamily.get(it.family) ?? byFamily.set(it.family, []).get(it.family)!).push(it);
  const queues = [...byFamily.values()];
  const out: EvalItem[] = [];
  for (let i = 0; out.length < limit; i++) for (const q of queues) if (i < q.length && out.length < limit) out.push(q[i]);
  return out;
}

export function loadEval(file: string, limit?: number): EvalItem[] {
  const recs = readRecords(file);
  if (!recs.length) throw new DataError(`${file}: no evaluation items`);
  const out: EvalItem[] = [];
  for (let i = 0; i < recs.length; i++) {
    const r = recs[i] as Record<string, unknown>;
    const where = `${path.basename(file)} item ${i}`;
    if (typeof r?.question !== 'string' || (typeof r.answer !== 'string' && typeof r.answer !== 'number')) {
      throw new DataError(`${where}: expected {id, image, question, answer, choices?}`);
    }
    out.push({
      id: String(r.id ?? i),
      image: resolveImage(file, where, r.image),
      question: r.question,
      answer: String(r.answer),
      choices: Array.isArray(r.choices) ? r.choices.map(String) : undefined,
      family: typeof r.family === 'string' ? r.family : typeof r.category === 'string' ? r.category : 'all',
    });
  }
  return stratify(out, limit);
}

export function evalMessages(item: EvalItem): ChatMessage[] {
  return [{ role: 'user', content: item.image ? [{ type: 'image' }, { type: 'text', text: item.question }] : item.question }];
}

/** First word of a short answer, lower case, punctuation trimmed (LLaVA short-answer scoring). */
export function normalizeAnswer(s: string): string {
  const first = s.trim().split(/\s+/)[0] ?? '';
  return first.toLowerCase().replace(/^[^\p{L}\p{N}]+|[^\p{L}\p{N}]+$/gu, '');
}
