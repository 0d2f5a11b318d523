// A model package on disk: which layout it follows (transformers.js/Optimum, onnxruntime-genai,
// or a lone decoder .onnx), where its decoder, embeddings and vision encoder are, and the
// config values the engine needs. Opened from any of its files or from its folder.

import * as fs from 'fs';
import * as path from 'path';

export type Layout = 'optimum' | 'genai' | 'single';

export interface TextConfig {
  numLayers?: number;
  hiddenSize?: number;
  numHeads?: number;
  numKvHeads?: number;
  headDim?: number;
  vocabSize?: number;
  imageTokenIndex?: number;
}

export interface ModelPackage {
  root: string;
  layout: Layout;
  /** Absolute path of the decoder .onnx chosen for pruning. */
  decoder: string;
  embedTokens?: string;
  visionEncoder?: string;
  /** dtype suffix of the chosen decoder variant ('' for fp32, '_fp16', '_q4', ...). */
  variant: string;
  /** Other decoder variants present in the package (they are not pruned). */
  otherDecoderVariants: string[];
  /** Parsed config.json / genai_config.json (layout dependent). */
  config?: Record<string, unknown>;
  configFile?: string;
  text: TextConfig;
  /** Every file of the package, relative to root. */
  files: string[];
}

export class PackageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PackageError';
  }
}

const DECODER_BASE = 'decoder_model_merged';

function readJson(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new PackageError(`cannot read ${file}`);
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new PackageError(`${file} is not valid JSON: ${(e as Error).message}`);
  }
}

function listFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string, rel: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      if (e.name.startsWith('.')) continue;
      const r = rel ? `${rel}/${e.name}` : e.name;
      let isDir = e.isDirectory();
      if (e.isSymbolicLink()) {
        // A link is followed when it is copied: one that never reaches a file is named here.
        try {
          isDir = fs.statSync(path.join(dir, e.name)).isDirectory();
        } catch (err) {
          const loop = (err as NodeJS.ErrnoException).code === 'ELOOP';
          throw new PackageError(`${path.join(dir, e.name)} is a symbolic link that ${loop ? 'loops back on itself' : 'points to nothing'}; remove it or point it at a real file`);
        }
      }
      if (isDir) {
        if (rel.split('/').length < 3) walk(path.join(dir, e.name), r);
      } else out.push(r);
    }
  };
  walk(root, '');
  return out.sort();
}

/** Splits `decoder_model_merged_fp16.onnx` into base and dtype suffix. */
export function splitVariant(file: string): { base: string; variant: string } {
  const name = path.basename(file).replace(/\.onnx$/, '');
  const m = /^(.*?)((?:_(?:fp16|fp32|quantized|q4|q4f16|q8|int8|uint8|bnb4|f16))?)$/.exec(name)!;
  return { base: m[1], variant: m[2] };
}

function num(o: unknown, ...keys: string[]): number | undefined {
  if (!o || typeof o !== 'object') return undefined;
  for (const k of keys) {
    const v = (o as Record<string, unknown>)[k];
    if (typeof v === 'number') return v;
  }
  return undefined;
}

export function textConfigOf(config: Record<string, unknown> | undefined, layout: Layout): TextConfig {
  if (!config) return {};
  if (layout === 'genai') {
    const m = (config.model ?? {}) as Record<string, unknown>;
    const d = (m.decoder ?? {}) as Record<string, unknown>;
    return {
      numLayers: num(d, 'num_hidden_layers'),
      hiddenSize: num(d, 'hidden_size'),
      numHeads: num(d, 'num_attention_heads'),
      numKvHeads: num(d, 'num_key_value_heads'),
      headDim: num(d, 'head_size'),
      vocabSize: num(m, 'vocab_size'),
      imageTokenIndex: num(m, 'image_token_id'),
    };
  }
  const t = (config.text_config ?? config) as Record<string, unknown>;
  const hidden = num(t, 'hidden_size', 'n_embd', 'd_model');
  const heads = num(t, 'num_attention_heads', 'n_head');
  return {
    numLayers: num(t, 'num_hidden_layers', 'n_layer', 'num_layers'),
    hiddenSize: hidden,
    numHeads: heads,
    numKvHeads: num(t, 'num_key_value_heads') ?? heads,
    headDim: num(t, 'head_dim') ?? (hidden && heads ? hidden / heads : undefined),
    vocabSize: num(t, 'vocab_size') ?? num(config, 'vocab_size'),
    imageTokenIndex: num(config, 'image_token_index', 'image_token_id'),
  };
}

export function openPackage(input: string): ModelPackage {
  const abs = path.resolve(input);
  if (!fs.existsSync(abs)) {
    const isLink = (() => { try { return fs.lstatSync(abs).isSymbolicLink(); } catch { return false; } })();
    throw new PackageError(isLink ? `${input} is a symbolic link that loops back on itself or points to nothing` : `${input}: no such file or folder`);
  }
  const stat = fs.statSync(abs);
  let root: string;
  let chosenFile: string | undefined;
  if (stat.isDirectory()) root = abs;
  else {
    chosenFile = abs.endsWith('.onnx') ? abs : undefined;
    const dir = path.dirname(abs);
    root = path.basename(dir) === 'onnx' && fs.existsSync(path.join(dir, '..', 'config.json')) ? path.dirname(dir) : dir;
    if (!chosenFile && !abs.endsWith('.json')) {
      throw new PackageError(`${input}: not a model file; choose an .onnx file, config.json, genai_config.json or the model's folder`);
    }
  }
  const files = listFiles(root);

  if (files.includes('genai_config.json')) {
    const configFile = path.join(root, 'genai_config.json');
    const config = readJson(configFile);
    const model = (config.model ?? {}) as Record<string, Record<string, unknown>>;
    const decFile = model.decoder?.filename;
    if (typeof decFile !== 'string') throw new PackageError(`${configFile}: model.decoder.filename is missing`);
    const fileOf = (part: string) => (typeof model[part]?.filename === 'string' ? path.join(root, model[part].filename as string) : undefined);
    const decoder = path.join(root, decFile);
    if (!fs.existsSync(decoder)) throw new PackageError(`${configFile} names decoder ${decFile}, which is missing`);
    return {
      root, layout: 'genai', decoder, embedTokens: fileOf('embedding'), visionEncoder: fileOf('vision'), variant: '',
      otherDecoderVariants: [], config, configFile, text: textConfigOf(config, 'genai'), files,
    };
  }

  const onnxDir = files.filter((f) => f.startsWith('onnx/') && f.endsWith('.onnx'));
  if (files.includes('config.json') && onnxDir.length) {
    const configFile = path.join(root, 'config.json');
    const config = readJson(configFile);
    const decoders = onnxDir.filter((f) => splitVariant(f).base === DECODER_BASE || splitVariant(f).base === 'decoder_model' || splitVariant(f).base === 'model');
    if (!decoders.length) throw new PackageError(`${root}: no onnx/decoder_model_merged*.onnx found`);
    let variant = '';
    if (chosenFile) variant = splitVariant(chosenFile).variant;
    else if (!decoders.some((d) => splitVariant(d).variant === '')) variant = splitVariant(decoders[0]).variant;
    const decoderRel =
      decoders.find((d) => splitVariant(d).variant === variant && splitVariant(d).base === DECODER_BASE) ??
      decoders.find((d) => splitVariant(d).variant === variant);
    if (!decoderRel) throw new PackageError(`${root}: no decoder in variant "${variant || 'fp32'}"`);
    const pick = (base: string) => {
      const f = onnxDir.find((x) => splitVariant(x).base === base && splitVariant(x).variant === variant) ?? onnxDir.find((x) => splitVariant(x).base === base);
      return f ? path.join(root, f) : undefined;
    };
    return {
      root, layout: 'optimum', decoder: path.join(root, decoderRel), embedTokens: pick('embed_tokens'), visionEncoder: pick('vision_encoder'),
      variant, otherDecoderVariants: decoders.filter((d) => d !== decoderRel), config, configFile, text: textConfigOf(config, 'optimum'), files,
    };
  }

  // A lone decoder: the chosen file, or the only .onnx in the folder.
  const onnxHere = files.filter((f) => !f.includes('/') && f.endsWith('.onnx'));
  const decoder = chosenFile ?? (onnxHere.length === 1 ? path.join(root, onnxHere[0]) : undefined);
  if (!decoder) {
    throw new PackageError(onnxHere.length ? `${root} holds ${onnxHere.length} .onnx files and no config: choose the decoder file itself` : `${root}: no ONNX model found`);
  }
  const cfg = files.includes('config.json') ? readJson(path.join(root, 'config.json')) : undefined;
  // The folder of a lone .onnx may hold anything: carry only the model's own files along.
  const own = new Set(['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']);
  return {
    root, layout: 'single', decoder, variant: '', otherDecoderVariants: [], config: cfg,
    configFile: cfg ? path.join(root, 'config.json') : undefined, text: textConfigOf(cfg, 'optimum'),
    files: files.filter((f) => own.has(f)),
  };
}

/** External-data chunk count recorded for a decoder in transformers.js_config, if any. */
export function recordedChunks(config: Record<string, unknown> | undefined, decoderFile: string): number | undefined {
  const tj = config?.['transformers.js_config'] as Record<string, unknown> | undefined;
  const ext = tj?.use_external_data_format;
  if (typeof ext === 'number') return ext;
  if (ext && typeof ext === 'object') {
    const v = (ext as Record<string, unknown>)[path.basename(decoderFile)];
    if (typeof v === 'number') return v;
    if (v === true) return 1;
  }
  if (ext === true) return 1;
  return undefined;
}
