// Which files of a model folder belong to the model and go into a pruned copy. A model folder
// often holds a user's other files too (calibration and evaluation sets, images, notes, earlier
// experiments); copying them made a pruned package carry them and pickers offer the copies.
// Kept: the onnx/ folder (graphs and their external data), any graph elsewhere with its data,
// the files an exporter writes beside them (configs, tokenizer, processor, chat template,
// generation config), the model card and licence. Everything else is left out and listed.

import * as path from 'path';
import type { ModelPackage } from './modelPackage';

/** Files at the package root that exporters and model repositories write. */
const MODEL_FILE_NAMES = new Set(
  [
    'config.json',
    'generation_config.json',
    'preprocessor_config.json',
    'processor_config.json',
    'image_processor_config.json',
    'video_preprocessor_config.json',
    'feature_extractor_config.json',
    'tokenizer.json',
    'tokenizer_config.json',
    'special_tokens_map.json',
    'added_tokens.json',
    'vocab.json',
    'vocab.txt',
    'merges.txt',
    'tokenizer.model',
    'spiece.model',
    'sentencepiece.bpe.model',
    'chat_template.json',
    'chat_template.jinja',
    'genai_config.json',
    'quantize_config.json',
    'ort_config.json',
    'readme.md',
  ].map((n) => n.toLowerCase()),
);

/** Licence and notice files, in any spelling a repository uses (LICENSE, LICENSE.txt, LICENCE.md, NOTICE, USE_POLICY.md). */
const LICENCE = /^(licen[cs]e|notice|copying|use_policy)([._-].*)?$/i;

/** An ONNX graph or one of its external-data files (X.onnx_data, X.onnx_data_1, X.onnx.data, X.data beside X.onnx). */
const GRAPH_OR_DATA = /\.onnx$|\.onnx(\.data|_data(_\d+)?)$/i;

/** Folders that belong to the model as a whole. */
const MODEL_FOLDERS = ['onnx/', 'additional_chat_templates/'];

export function belongsToModel(rel: string, files: ReadonlySet<string>, named: ReadonlySet<string>): boolean {
  const f = rel.split(path.sep).join('/');
  if (MODEL_FOLDERS.some((d) => f.startsWith(d))) return true;
  if (named.has(f)) return true;
  const base = path.posix.basename(f);
  if (GRAPH_OR_DATA.test(base)) return true;
  // genai's X.onnx + X.onnx.data, or an exporter's X.onnx + X.data
  if (base.endsWith('.data') && files.has(f.replace(/\.data$/, '.onnx'))) return true;
  if (f.includes('/')) return false;
  return MODEL_FILE_NAMES.has(base.toLowerCase()) || LICENCE.test(base) || /\.tiktoken$/i.test(base);
}

/** File names a genai_config.json refers to ("filename" entries and the like): part of the model whatever they are called. */
function namedByConfig(pkg: ModelPackage): Set<string> {
  const named = new Set<string>();
  if (pkg.layout !== 'genai' || !pkg.config) return named;
  const walk = (v: unknown) => {
    if (typeof v === 'string' && pkg.files.includes(v)) named.add(v);
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') Object.values(v).forEach(walk);
  };
  walk(pkg.config);
  return named;
}

/** The package's files split into those a pruned copy carries and those it leaves out. */
export function splitModelFiles(pkg: ModelPackage): { model: string[]; leftOut: string[] } {
  const files = new Set(pkg.files);
  const named = namedByConfig(pkg);
  const model: string[] = [];
  const leftOut: string[] = [];
  for (const f of pkg.files) (belongsToModel(f, files, named) ? model : leftOut).push(f);
  return { model, leftOut };
}
