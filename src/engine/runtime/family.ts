// Vision-language families: which transformers.js model class runs a package, and the few
// facts the engine needs that the class does not expose. Everything that decides what the
// decoder sees (image-token expansion, merging image features into the embeddings, position
// ids such as Qwen2-VL's 3-D M-RoPE, attention masks) stays inside transformers.js; a family
// here adds only how to read the result back: the patch grid of an image's tokens (for the
// report) and, where a decoder is not causal, which keys each query really sees (for TIS).
// A family transformers.js runs needs no entry; one whose decoder attends bidirectionally
// within image blocks adds an `attention` hook (see `bidirectionalImageBlocks`).

import { ModelPackage } from '../package/modelPackage';

type Transformers = typeof import('@huggingface/transformers');

/** Processor outputs (transformers.js tensors), passed on to the model class untouched. */
export type ProcessorOutputs = Record<string, any>;

export interface PromptView {
  ids: number[];
  isImage: Uint8Array;
  inputs: ProcessorOutputs;
}

export interface FamilyHooks {
  /** Rows and columns of one image's tokens, when the tokens form a grid. */
  imageGrid(p: PromptView, config: Record<string, any>): [number, number] | undefined;
  /**
   * The last key position each query row attends to, for decoders whose mask is not causal
   * (always a prefix: causal, widened to the end of a bidirectional block). Undefined: causal.
   */
  attention?(p: PromptView, config: Record<string, any>): Int32Array | undefined;
}

function squareGrid(p: PromptView): [number, number] | undefined {
  let n = 0;
  for (const x of p.isImage) n += x;
  const images = p.inputs.pixel_values?.dims?.[0] ?? 1;
  const perImage = images > 0 && p.inputs.pixel_values?.dims?.length === 4 ? n / images : n;
  const side = Math.round(Math.sqrt(perImage));
  return side > 0 && side * side === perImage ? [side, side] : undefined;
}

/** Qwen2-VL style: the first image's grid (t, h, w) in patches, merged spatially. */
function mergedGrid(p: PromptView, config: Record<string, any>): [number, number] | undefined {
  const thw = p.inputs.image_grid_thw;
  if (!thw) return undefined;
  const [t, h, w] = Array.from(thw.data as BigInt64Array, Number);
  const m = config.vision_config?.spatial_merge_size ?? 2;
  return t === 1 ? [Math.floor(h / m), Math.floor(w / m)] : undefined;
}

/**
 * Causal attention with every maximal run of image tokens attending to itself in both
 * directions (Gemma 3 / PaliGemma style token_type_ids masks).
 */
export function bidirectionalImageBlocks(p: PromptView): Int32Array {
  const S = p.ids.length;
  const last = Int32Array.from({ length: S }, (_, i) => i);
  for (let i = 0; i < S; ) {
    if (!p.isImage[i]) {
      i++;
      continue;
    }
    let j = i;
    while (j < S && p.isImage[j]) j++;
    for (let k = i; k < j; k++) last[k] = j - 1;
    i = j;
  }
  return last;
}

const DEFAULT_HOOKS: FamilyHooks = { imageGrid: squareGrid };

/** Per model_type additions to the defaults; add a family's row here when it needs one. */
export const FAMILY_HOOKS: Record<string, Partial<FamilyHooks>> = {
  qwen2_vl: { imageGrid: mergedGrid },
  qwen2_5_vl: { imageGrid: mergedGrid },
  qwen3_vl: { imageGrid: mergedGrid },
  // gemma3 has no `attention` hook on purpose: transformers.js' Gemma3ForConditionalGeneration
  // passes no token_type_ids to the decoder, so a Gemma 3 package it runs attends causally
  // (models/tiny-gemma3 matches PyTorch without bidirectional image blocks, not with them).
};

export function familyHooks(modelType: string): FamilyHooks {
  return { ...DEFAULT_HOOKS, ...FAMILY_HOOKS[modelType] };
}

export interface Family {
  modelType: string;
  /** The transformers.js class that runs this family (e.g. Qwen2VLForConditionalGeneration). */
  className: string;
  modelClass: any;
  hooks: FamilyHooks;
}

export class FamilyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FamilyError';
  }
}

/**
 * The family of a transformers.js package: its config's model_type must be one that
 * transformers.js runs as image-text-to-text, and the package must have the sessions that
 * class loads. Errors name the family and what is missing, in one line.
 */
export function resolveFamily(t: Transformers, pkg: ModelPackage): Family {
  const cfg = (pkg.config ?? {}) as Record<string, any>;
  if (pkg.layout === 'genai') throw new FamilyError(`${pkg.root}: onnxruntime-genai packages have no transformers.js frontend here; calibration and benchmark need a transformers.js package (config.json, tokenizer, onnx/vision_encoder, onnx/embed_tokens)`);
  if (pkg.layout === 'single') throw new FamilyError(`${pkg.root}: a lone decoder has no tokenizer, embeddings or vision encoder to run it with; layers can be removed (--layers ... --no-scp), calibration needs a transformers.js package`);
  const modelType = typeof cfg.model_type === 'string' ? cfg.model_type : undefined;
  if (!modelType) throw new FamilyError(`${pkg.configFile}: no model_type, so the model family is unknown`);
  const mapping: Map<string, string> = (t.AutoModelForImageTextToText as any).MODEL_CLASS_MAPPINGS[0];
  const arch = Array.isArray(cfg.architectures) ? cfg.architectures[0] : undefined;
  const className = mapping.get(modelType);
  if (!className) {
    const textOnly = typeof arch === 'string' && /ForCausalLM$/.test(arch);
    throw new FamilyError(
      textOnly
        ? `model family "${modelType}" is a text-only decoder: calibration and benchmark run vision-language families (${[...mapping.keys()].join(', ')})`
        : `model family "${modelType}" is not one transformers.js runs as image-text-to-text (known: ${[...mapping.keys()].join(', ')})`,
    );
  }
  const modelClass = (t as any)[className];
  if (typeof modelClass !== 'function') throw new FamilyError(`model family "${modelType}": transformers.js has no class ${className}`);
  if (cfg.is_encoder_decoder) throw new FamilyError(`model family "${modelType}" is encoder-decoder: only decoder-only families have layers to prune here`);
  const missing = [!pkg.embedTokens && 'onnx/embed_tokens.onnx', !pkg.visionEncoder && 'onnx/vision_encoder.onnx'].filter(Boolean);
  if (missing.length) throw new FamilyError(`model family "${modelType}" (${className}) needs ${missing.join(' and ')}, which ${pkg.root} lacks`);
  return { modelType, className, modelClass, hooks: familyHooks(modelType) };
}

/**
 * Whether a processor takes (images, text) rather than (text, images): LLaVA's and
 * PaliGemma's do, Qwen2-VL's, Idefics3's and Gemma 3's do not. Read from the processor's
 * own signature, so a family added to transformers.js needs no table entry here.
 */
export function imagesFirst(processor: any): boolean {
  const src = String(processor._call ?? '');
  const m = /^(?:async\s+)?_call\s*\(\s*(?:\/\*.*?\*\/\s*)?(\w+)/s.exec(src);
  if (!m) throw new FamilyError(`cannot tell the argument order of ${processor.constructor?.name ?? 'the processor'}`);
  if (m[1] === 'images') return true;
  if (m[1] === 'text') return false;
  throw new FamilyError(`${processor.constructor?.name ?? 'the processor'} takes (${m[1]}, ...): not an image-text processor`);
}
