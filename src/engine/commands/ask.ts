// `ask`: the original and the pruned model answer one question about one image, greedily,
// through each package's own frontend (chat template, processor, family class), and the
// answers come back with each step's top-k next-token probabilities and the KL divergence
// of the two distributions along the original's answer.
//
// Memory: the models are loaded one after the other (original, answer, release; then the
// pruned one), so peak memory is one model, whatever their size. Within one question this
// costs nothing: each model is loaded once either way.

import * as fs from 'fs';
import * as path from 'path';
import { Answerer, klFromLogits, openAnswerer } from '../bench/evaluate';
import type { ChatMessage, Encoded, Generation } from '../runtime/vlmFrontend';
import type { JobHooks } from '../method/shortLvlm';
import type { AskAnswer, AskArgs, AskResult, AskStep, TokenProb } from '../../protocol/engineApi';
import { REPORT_FILE } from '../../protocol/files';
import { ASK_OPTION_SPECS, DEFAULT_ASK_OPTIONS, parseNumberValue } from '../../protocol/options';

export type { AskArgs, AskResult };

/** Softmax of logits in float64. */
export function softmax64(logits: Float32Array): Float64Array {
  let m = -Infinity;
  for (const x of logits) m = Math.max(m, x);
  const p = Float64Array.from(logits, (x) => Math.exp(x - m));
  let s = 0;
  for (const x of p) s += x;
  for (let i = 0; i < p.length; i++) p[i] /= s;
  return p;
}

/** The k most probable ids (ties by lower id), most probable first. */
export function topK(p: Float64Array, k: number): number[] {
  const best: number[] = [];
  for (let i = 0; i < p.length; i++) {
    if (best.length === k && p[i] <= p[best[k - 1]]) continue;
    let j = best.length === k ? k - 1 : best.length;
    while (j > 0 && p[best[j - 1]] < p[i]) j--;
    best.splice(j, 0, i);
    if (best.length > k) best.pop();
  }
  return best;
}

/** The question as one user turn with the image first (the same shape as evaluation items). */
export function askMessages(question: string): ChatMessage[] {
  return [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: question }] }];
}

/** The model a pruned package was made from, as its report records it. */
export function originalFromReport(pruned: string): string | undefined {
  const dir = fs.existsSync(pruned) && fs.statSync(pruned).isDirectory() ? pruned : path.dirname(pruned);
  try {
    const r = JSON.parse(fs.readFileSync(path.join(dir, REPORT_FILE), 'utf8'));
    return typeof r?.model?.root === 'string' ? r.model.root : undefined;
  } catch {
    return undefined;
  }
}

/** An ask option from the API (JSON): checked against its spec, its default when absent. */
function askOption(name: keyof typeof ASK_OPTION_SPECS, value: unknown): number {
  return value === undefined ? DEFAULT_ASK_OPTIONS[name] : parseNumberValue(name, ASK_OPTION_SPECS[name], String(value));
}

/** Checks every input before any model is loaded; errors are one line naming what is wrong. */
function checkInputs(a: AskArgs): { original: string; image: string; question: string; warnings: string[] } {
  const question = typeof a.question === 'string' ? a.question.trim() : '';
  if (!question) throw new Error('the question is empty');
  if (typeof a.pruned !== 'string' || !a.pruned) throw new Error('no pruned model given');
  if (!fs.existsSync(a.pruned)) throw new Error(`pruned model ${a.pruned}: no such file or folder`);
  const recorded = originalFromReport(a.pruned);
  const original = a.original ?? recorded;
  if (!original) throw new Error(`pruned model ${a.pruned} has no ${REPORT_FILE} naming its original: pass the original model too`);
  if (!fs.existsSync(original)) throw new Error(`original model ${original}: no such file or folder${a.original ? '' : ` (named by ${REPORT_FILE})`}`);
  if (typeof a.image !== 'string' || !a.image) throw new Error('no image given');
  if (!fs.existsSync(a.image)) throw new Error(`image ${a.image}: no such file`);
  if (!fs.statSync(a.image).isFile()) throw new Error(`image ${a.image} is a folder, not an image file`);
  const warnings: string[] = [];
  if (a.original && recorded && path.resolve(recorded) !== path.resolve(a.original)) {
    warnings.push(`${path.basename(a.pruned)} was pruned from ${recorded}, not from ${a.original}`);
  }
  return { original, image: a.image, question, warnings };
}

/** The prompt as text, each run of image tokens shown once with its length. */
function promptText(m: Answerer, enc: Encoded): string {
  const parts: string[] = [];
  for (let i = 0; i < enc.seqLen; ) {
    let j = i;
    const image = enc.isImage[i] === 1;
    while (j < enc.seqLen && (enc.isImage[j] === 1) === image) j++;
    parts.push(image ? `<image × ${j - i}>` : m.frontend.decode(enc.ids.slice(i, j)));
    i = j;
  }
  return parts.join('');
}

function tops(m: Answerer, logits: Float32Array, k: number): { p: Float64Array; top: TokenProb[] } {
  const p = softmax64(logits);
  return { p, top: topK(p, k).map((id) => ({ id, text: m.frontend.tokenText(id), p: p[id] })) };
}

function answerOf(m: Answerer, g: Generation, k: number, loadMs: number): AskAnswer {
  const steps: AskStep[] = g.stepLogits!.map((logits, i) => {
    const { p, top } = tops(m, logits, k);
    const eos = i >= g.tokens.length;
    const id = eos ? top[0].id : g.tokens[i];
    return { id, text: m.frontend.tokenText(id), p: p[id], top, ...(eos ? { eos: true } : {}) };
  });
  return { model: m.root, numLayers: m.numLayers, text: g.text, steps, stop: g.stop, loadMs, prefillMs: g.prefillMs, decodeMs: g.decodeMs };
}

export async function askJob(a: AskArgs, hooks: JobHooks = {}): Promise<AskResult> {
  const input = checkInputs(a);
  const maxNewTokens = askOption('maxNewTokens', a.maxNewTokens);
  const k = askOption('topK', a.topK);
  const run = { threads: a.threads, device: a.device };
  const total = 4;
  let done = 0;
  const progress = (stage: string) => hooks.onProgress?.({ stage, done: done++, total });
  const gen = { stopAtNewline: false, keepSteps: true, checkCancelled: hooks.checkCancelled };

  /** Loads one model, runs `fn` on it, releases it (also on error or cancel). */
  const withModel = async <T>(which: string, model: string, fn: (m: Answerer, loadMs: number) => Promise<T>): Promise<T> => {
    hooks.checkCancelled?.();
    progress(`loading the ${which} model`);
    const t0 = performance.now();
    let m: Answerer;
    try {
      m = await openAnswerer(model, run);
    } catch (e) {
      throw new Error(`${which} model ${model}: ${(e as Error).message.split('\n')[0]}`);
    }
    try {
      const loadMs = performance.now() - t0;
      hooks.checkCancelled?.();
      progress(`the ${which} model answers`);
      return await fn(m, loadMs);
    } finally {
      await m.decoder.dispose();
      await m.frontend.dispose();
    }
  };
  const encode = (m: Answerer) => m.frontend.encode(askMessages(input.question), input.image, true);

  const first = await withModel('original', input.original, async (m, loadMs) => {
    const enc = await encode(m);
    const g = await m.frontend.generate(enc, m.decoder, maxNewTokens, gen);
    return { g, answer: answerOf(m, g, k, loadMs), prompt: promptText(m, enc), ids: enc.ids };
  });
  const second = await withModel('pruned', a.pruned, async (m, loadMs) => {
    const enc = await encode(m);
    // Same tokenizer, template and processor: the prompts must be the same token for token.
    if (enc.ids.length !== first.ids.length || enc.ids.some((id, i) => id !== first.ids[i])) {
      throw new Error(`the pruned model ${m.root} builds another prompt than the original (other tokenizer, chat template or processor): they cannot be compared`);
    }
    const g = await m.frontend.generate(enc, m.decoder, maxNewTokens, gen);
    // Along the original's answer: the pruned model's own steps serve while its tokens are
    // the original's; otherwise it reads the original's answer in a second pass.
    const o = first.g;
    const same = o.tokens.every((t, i) => g.tokens[i] === t) && g.stepLogits!.length >= o.stepLogits!.length;
    const along = same ? g : await m.frontend.generate(enc, m.decoder, maxNewTokens, { ...gen, forced: o.tokens });
    const alongLogits = along.stepLogits!.slice(0, o.stepLogits!.length);
    return { answer: answerOf(m, g, k, loadMs), alongLogits, alongTop: alongLogits.map((l) => tops(m, l, k).top) };
  });
  const steps = first.g.stepLogits!.map((l, i) => klFromLogits(l, second.alongLogits[i]));
  progress('done');
  return {
    question: input.question,
    image: path.resolve(input.image),
    prompt: first.prompt,
    original: first.answer,
    pruned: second.answer,
    kl: { first: steps[0], mean: steps.reduce((s, x) => s + x, 0) / steps.length, steps },
    prunedAlongOriginal: second.alongTop,
    loading: 'sequential',
    ...(input.warnings.length ? { warnings: input.warnings } : {}),
  };
}
