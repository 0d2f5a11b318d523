// `checkRun`: the run form's check, in the engine process. Everything a prune or a sweep would
// refuse before calibrating is found here with the same code (package and config checks,
// the family's class, options against the layer count, the output location, the calibration
// reader), and listed per form field instead of stopping at the first; the calibration data
// is previewed (sample count, the first prompts with their images).

import * as fs from 'fs';
import * as path from 'path';
import { loadEval, readCalibration } from '../data/datasets';
import { METHOD_SPECS } from '../bench/sweep';
import { DEFAULT_OPTIONS } from '../method/shortLvlm';
import { checkOutputLocation } from '../outputLocation';
import { openPackage } from '../package/modelPackage';
import { resolveFamily } from '../runtime/family';
import { transformers } from '../runtime/vlmFrontend';
import { inspectModel } from './inspect';
import { describeError } from '../../protocol/errorText';
import type { CalibPreviewSample, CheckRunArgs, RunCheck, RunProblem } from '../../protocol/engineApi';
import { checkAgainstModel, defaultCandidates, OptionError } from '../../protocol/options';
import type { PruneOptions } from '../../protocol/report';

/** Images larger than this are previewed by name only (a data: URI travels through two IPC hops). */
export const THUMBNAIL_MAX_BYTES = 512 * 1024;

/** Problems listed per field at most; the rest are counted in one line. */
export const MAX_PROBLEMS = 20;

const IMAGE_MIME: Record<string, string> = { '.png': 'image/png', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.gif': 'image/gif', '.webp': 'image/webp', '.bmp': 'image/bmp' };

function thumbnail(file: string): string | undefined {
  const mime = IMAGE_MIME[path.extname(file).toLowerCase()];
  try {
    if (!mime || fs.statSync(file).size > THUMBNAIL_MAX_BYTES) return undefined;
    return `data:${mime};base64,${fs.readFileSync(file).toString('base64')}`;
  } catch {
    return undefined;
  }
}

function promptText(content: unknown): string {
  const text = typeof content === 'string' ? content : Array.isArray(content) ? content.map((c) => (c?.type === 'text' ? c.text : '')).join(' ') : '';
  return text.replace(/<image>\s*/g, '').trim();
}

/** The family as calibration will run it, or why it cannot be calibrated. */
async function familyOf(root: string): Promise<{ family: string; problem?: string }> {
  const pkg = openPackage(root);
  if (pkg.layout === 'genai') {
    const r = inspectModel(root).genai;
    return { family: `onnxruntime-genai ${r?.type || '?'}`, problem: r?.unsupported };
  }
  try {
    const f = resolveFamily(await transformers(), pkg);
    return { family: `${f.modelType} (${f.className})` };
  } catch (e) {
    const type = typeof pkg.config?.model_type === 'string' ? pkg.config.model_type : pkg.layout === 'single' ? 'lone decoder' : 'unknown';
    return { family: type, problem: describeError(e) };
  }
}

/**
 * The last answer per input, kept while the files behind it are unchanged: a form asks again
 * on every edit of any field, and a large decoder or calibration file need not be read again.
 */
const memo = new Map<string, { stamp: string; value: unknown }>();

function stampOf(files: string[]): string {
  return files.map((f) => {
    try {
      const st = fs.statSync(f);
      return `${f}:${st.size}:${st.mtimeMs}`;
    } catch {
      return `${f}:-`;
    }
  }).join('|');
}

/** `compute()` once per key while the stamp of `files` stays the same (errors are not kept). */
async function remembered<T>(key: string, files: () => string[], compute: () => Promise<T> | T, fresh = false): Promise<T> {
  const stamp = stampOf(files());
  const hit = memo.get(key);
  if (hit && hit.stamp === stamp && !fresh) return hit.value as T;
  const value = await compute();
  memo.set(key, { stamp, value });
  return value;
}

/** The files an inspection of `model` read: the package's config and decoder (what a re-check must notice). */
function modelFiles(model: string): string[] {
  try {
    const pkg = openPackage(model);
    return [model, pkg.decoder, ...(pkg.configFile ? [pkg.configFile] : [])];
  } catch {
    return [model];
  }
}

export async function checkRun(a: CheckRunArgs): Promise<RunCheck> {
  const problems: RunProblem[] = [];
  const add = (field: string, messages: string[]) => {
    for (const message of messages.slice(0, MAX_PROBLEMS)) problems.push({ field, message });
    if (messages.length > MAX_PROBLEMS) problems.push({ field, message: `... and ${messages.length - MAX_PROBLEMS} more` });
  };
  const check: RunCheck = { problems, sweepMethods: Object.keys(METHOD_SPECS) };

  if (!a.model?.trim()) add('model', ['choose the model to prune (a package folder or one of its .onnx files)']);
  else {
    try {
      const { r, fam } = await remembered(`model:${path.resolve(a.model)}`, () => modelFiles(a.model), async () => {
        const r = inspectModel(a.model);
        return { r, fam: await familyOf(r.root) };
      }, a.fresh);
      check.model = { root: r.root, decoder: r.decoder, variant: r.variant, decoderVariants: r.decoderVariants, layout: r.layout, family: fam.family, numLayers: r.numLayers };
      // The form always calibrates (a hand-made layer list goes through the Layers view).
      if (fam.problem) add('model', [`cannot be calibrated: ${fam.problem}`]);
    } catch (e) {
      add('model', [describeError(e)]);
    }
  }

  const o: PruneOptions = { ...DEFAULT_OPTIONS, ...a.options };
  if (check.model) {
    const L = check.model.numLayers;
    const ratios = a.kind === 'sweep' ? a.ratios ?? [] : o.layers?.length ? [] : [o.ratio];
    // A sweep chooses among the last half for every method, as sweepJob checks it.
    const checked: PruneOptions = a.kind === 'sweep' ? { ...DEFAULT_OPTIONS, candidates: defaultCandidates(L) } : o;
    for (const ratio of ratios) {
      try {
        checkAgainstModel({ ...checked, ratio }, L);
      } catch (e) {
        if (!(e instanceof OptionError)) throw e;
        add(a.kind === 'sweep' && e.option === 'ratio' ? 'ratios' : e.option, [e.detail]);
      }
    }
  }

  if (!a.calib?.trim()) add('calib', ['choose the calibration data (LLaVA conversation JSON or JSONL)']);
  else {
    const file = path.resolve(a.calib);
    try {
      const r = await remembered(`calib:${file}:${o.samples ?? ''}`, () => [file], () => readCalibration(file, o.samples), a.fresh);
      const previews: CalibPreviewSample[] = r.samples.slice(0, a.previews ?? 4).map((s) => ({
        id: s.id,
        prompt: promptText(s.messages.find((m) => m.role === 'user')?.content),
        image: s.image,
        thumbnail: s.image ? thumbnail(s.image) : undefined,
      }));
      check.calib = { file, format: r.format, records: r.records, samples: r.samples.length, previews, problems: r.problems };
      add('calib', r.problems);
    } catch (e) {
      add('calib', [describeError(e)]);
    }
  }

  if (a.kind === 'sweep') {
    if (!a.ratios?.length) add('ratios', ['give at least one ratio']);
    const unknown = (a.methods ?? []).filter((m) => !METHOD_SPECS[m]);
    if (unknown.length) add('methods', [`unknown sweep method ${unknown.join(', ')} (known: ${Object.keys(METHOD_SPECS).join(', ')})`]);
    if (a.methods && !a.methods.length) add('methods', ['choose at least one method']);
    if (!a.eval?.trim()) add('eval', ['choose the evaluation data (JSONL of {id, image, question, answer})']);
    else {
      try {
        check.eval = { file: path.resolve(a.eval), items: loadEval(a.eval, a.evalSamples).length };
      } catch (e) {
        add('eval', [describeError(e)]);
      }
    }
  } else if (!a.out?.trim()) add('out', ['choose the output folder']);
  else {
    check.out = path.resolve(a.out);
    try {
      if (fs.existsSync(a.out)) throw new Error(`${a.out} already exists; choose another folder`);
      checkOutputLocation(a.out);
    } catch (e) {
      add('out', [describeError(e)]);
    }
  }
  return check;
}
