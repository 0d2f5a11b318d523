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

/** Records of a JSON array or JSONL file, and the lines of a JSONL file that do not parse (1-based). */
function readRecordsLenient(file: string): { records: { value: unknown; line?: number }[]; format: 'json' | 'jsonl'; problems: string[] } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new DataError(`cannot read ${file}`);
  }
  if (text.trimStart().startsWith('[')) {
    try {
      const value = JSON.parse(text) as unknown[];
      return { records: value.map((v) => ({ value: v })), format: 'json', problems: [] };
    } catch (e) {
      return { records: [], format: 'json', problems: [`${file}: invalid JSON (${(e as Error).message})`] };
    }
  }
  const records: { value: unknown; line: number }[] = [];
  const problems: string[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    try {
      records.push({ value: JSON.parse(line), line: i + 1 });
    } catch (e) {
      problems.push(`${file}:${i + 1}: invalid JSON line (${(e as Error).message})`);
    }
  });
  return { records, format: 'jsonl', problems };
}

function readRecords(file: string): unknown[] {
  const r = readRecordsLenient(file);
  if (r.problems.length) throw new DataError(r.problems[0]);
  return r.records.map((x) => x.value);
}

function resolveImage(file: string, where: string, image: unknown): string | undefined {
  if (image === undefined || image === null) return undefined;
  if (typeof image !== 'string') throw new DataError(`${where}: "image" must be a path string`);
  const p = path.resolve(path.dirname(file), image);
  if (!fs.existsSync(p)) throw new DataError(`${where}: image ${image} not found (looked in ${p})`);
  return p;
}

// Leading bytes of the image formats the image reader (sharp, through transformers.js) decodes.
const IMAGE_SIGNATURES: [number, number[]][] = [
  [0, [0x89, 0x50, 0x4e, 0x47]], // PNG
  [0, [0xff, 0xd8, 0xff]], // JPEG
  [0, [0x47, 0x49, 0x46, 0x38]], // GIF
  [0, [0x42, 0x4d]], // BMP
  [0, [0x49, 0x49, 0x2a, 0x00]], // TIFF, little-endian
  [0, [0x4d, 0x4d, 0x00, 0x2a]], // TIFF, big-endian
  [8, [0x57, 0x45, 0x42, 0x50]], // WebP (RIFF....WEBP)
  [4, [0x66, 0x74, 0x79, 0x70]], // AVIF / HEIF (....ftyp)
];

/** Whether a file starts like an image the reader decodes (checked before any calibration). */
function looksLikeImage(file: string): boolean {
  const head = Buffer.alloc(16);
  let n = 0;
  try {
    const fd = fs.openSync(file, 'r');
    try {
      n = fs.readSync(fd, head, 0, head.length, 0);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return false;
  }
  return IMAGE_SIGNATURES.some(([at, sig]) => n >= at + sig.length && sig.every((b, i) => head[at + i] === b));
}

const ROLE: Record<string, ChatMessage['role']> = { human: 'user', user: 'user', gpt: 'assistant', assistant: 'assistant', system: 'system' };

/** A calibration file read as far as it can be: its valid samples and every problem found. */
export interface CalibrationRead {
  format: 'json' | 'jsonl';
  /** Records in the file (valid or not; unparsable JSONL lines not counted). */
  records: number;
  samples: CalibSample[];
  /** One line each: lines that do not parse, then records not in LLaVA format and missing or unreadable images, in file order. */
  problems: string[];
}

/**
 * Reads calibration data collecting every problem instead of stopping at the first, up to
 * `limit` samples (as a run with --samples reads them). The run's loadCalibration is this
 * plus "the first problem is an error", so a form's preview and the run agree.
 */
export function readCalibration(file: string, limit?: number): CalibrationRead {
  const { records, format, problems } = readRecordsLenient(file);
  const samples: CalibSample[] = [];
  if (!records.length && !problems.length) problems.push(`${file}: no calibration samples`);
  for (let i = 0; i < records.length && (limit === undefined || samples.length < limit); i++) {
    const where = `${path.basename(file)} ${records[i].line !== undefined ? `line ${records[i].line}` : `sample ${i}`}`;
    try {
      samples.push(calibrationSample(file, where, records[i].value, i));
    } catch (e) {
      if (!(e instanceof DataError)) throw e;
      problems.push(e.message);
    }
  }
  return { format, records: records.length, samples, problems };
}

function calibrationSample(file: string, where: string, rec: unknown, i: number): CalibSample {
  const r = rec as Record<string, unknown>;
  const conv = r?.conversations;
  if (!Array.isArray(conv) || !conv.length) throw new DataError(`${where}: expected LLaVA conversation format {id, image, conversations: [{from, value}]}`);
  const messages = conv.map((c: Record<string, unknown>, j: number) => {
    const role = ROLE[String(c?.from)];
    if (!role || typeof c.value !== 'string') throw new DataError(`${where}, turn ${j}: expected {from: "human"|"gpt", value: string}`);
    return { role, content: c.value } as ChatMessage;
  });
  const image = resolveImage(file, where, r.image);
  if (image && !looksLikeImage(image)) throw new DataError(`${where}: cannot read image ${image}: not a PNG, JPEG, GIF, WebP, BMP, TIFF or AVIF file`);
  if (image && !messages.some((m) => typeof m.content === 'string' && m.content.includes('<image>'))) {
    // LLaVA data always marks the image; place it first when a sample forgot to.
    messages[0] = { ...messages[0], content: `<image>\n${messages[0].content}` };
  }
  return { id: String(r.id ?? i), image, messages };
}

export function loadCalibration(file: string, limit?: number): CalibSample[] {
  const r = readCalibration(file, limit);
  if (r.problems.length) throw new DataError(r.problems[0]);
  return r.samples;
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
