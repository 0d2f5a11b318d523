// Synthetic LLaMA-style decoders with random weights, written as the model packages the
// engine reads (DESIGN.md section 2):
//
//   style 'decomposed'  torch.onnx / Optimum export: RMSNorm as Pow/ReduceMean/Add/Sqrt/...,
//                       rotary via Gather/Slice/Neg/Concat, GQA via Unsqueeze/Expand/Reshape
//                       (HF repeat_kv), MatMul/Softmax/MatMul attention with a causal+padding
//                       mask built once from attention_mask; inputs include position_ids.
//   style 'fused'       onnxruntime-genai model builder: SimplifiedLayerNormalization /
//                       SkipSimplifiedLayerNormalization, GroupQueryAttention with do_rotary=1,
//                       seqlens_k / total_sequence_length from attention_mask; no position_ids.
//                       With rotaryNodes: com.microsoft RotaryEmbedding nodes rotate q and k
//                       (position_ids input) and GroupQueryAttention gets no caches, as the
//                       builder writes when the op cannot rotate (any even head size).
//
//   layout 'optimum'    config.json (llava) + onnx/{decoder_model_merged,embed_tokens,vision_encoder}.onnx,
//                       optional external data decoder_model_merged.onnx_data, _data_1, ...
//   layout 'genai'      genai_config.json + model.onnx + model.onnx.data (+ embedding.onnx, vision.onnx)
//   layout 'single'     one decoder .onnx with inline weights
//
// Everything is deterministic for a given seed. Weights are Float32Arrays in [in, out] layout,
// shared (not copied) between the returned weights object and the written initializers, so a
// ~0.5B-parameter "real size" model costs its fp32 size once in memory.

import * as fs from 'fs';
import * as path from 'path';
import { makeGraph, makeModel, makeValueInfo } from '../../src/engine/onnx/builder';
import { writeOnnx } from '../../src/engine/onnx/onnxFile';
import { DataType, ModelProto } from '../../src/engine/onnx/proto';
import { f32Initializer, NamedGraph } from './namedGraph';
import { Rng } from './prng';

export type SynthStyle = 'decomposed' | 'fused';
export type SynthLayout = 'optimum' | 'genai' | 'single';

export interface SynthOptions {
  /** Folder to write the package into (created if missing). */
  dir: string;
  /** Default 'decomposed'. */
  style?: SynthStyle;
  /** Default 'optimum' for decomposed, 'genai' for fused. */
  layout?: SynthLayout;
  /** Default 6. */
  numLayers?: number;
  /** Default 32 (decomposed) or 64 (fused). */
  hidden?: number;
  /** Default 4. */
  heads?: number;
  /** Default 2. */
  kvHeads?: number;
  /** Default hidden / heads. The fused style needs a multiple of 16 (GQA's built-in rotary). */
  headDim?: number;
  /** Default 2 * hidden. */
  intermediate?: number;
  /** Default 50. */
  vocab?: number;
  /** Default 1234. */
  seed?: number | string;
  /** RMSNorm epsilon, default 1e-5. */
  eps?: number;
  /** Default 10000. */
  ropeTheta?: number;
  /** Rows of the rotary caches (= context_length), default 128. */
  maxPositions?: number;
  /** Decomposed style: node-name prefix, default '/model/' ('/' = no `/model` scope; weights then lose the `model.` prefix). */
  namePrefix?: '/model/' | '/';
  /** Decomposed style: MatMul weights named `onnx::MatMul_<n>` as torch names them. */
  anonymousWeights?: boolean;
  /** Decomposed style: RMSNorm as Sqrt+Reciprocal+Mul (default) or Sqrt+Div. */
  normForm?: 'reciprocal' | 'div';
  /** Optimum layout: write decoder weights to external data (implied by externalChunkBytes). The genai layout always does. */
  externalData?: boolean;
  /** Optimum layout: start a new external data chunk before exceeding this many bytes. */
  externalChunkBytes?: number;
  /** Single layout: file name, default 'decoder.onnx'. */
  fileName?: string;
  /** Optimum/genai layouts: also write the embedding and vision models (default true). */
  extras?: boolean;
  /** Channels of the vision encoder's patch Conv, default 16. */
  visionChannels?: number;
  /** Use these weights instead of generating them (dims come from weights.dims). */
  weights?: SynthWeights;
  /** Fused style: separate RotaryEmbedding nodes instead of GroupQueryAttention's rotary. */
  rotaryNodes?: boolean;
  /** Fused style: one packed q/k/v MatMul (`qkv_proj`) feeding GroupQueryAttention's first input. */
  packedQkv?: boolean;
}

export interface SynthDims {
  numLayers: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediate: number;
  vocab: number;
  eps: number;
  ropeTheta: number;
  maxPositions: number;
}

/** One decoder layer's weights; matrices are [in, out] row-major (ONNX MatMul layout). */
export interface LayerWeights {
  inputNorm: Float32Array; // [H]
  q: Float32Array; // [H, heads*headDim]
  k: Float32Array; // [H, kvHeads*headDim]
  v: Float32Array; // [H, kvHeads*headDim]
  o: Float32Array; // [heads*headDim, H]
  postNorm: Float32Array; // [H]
  gate: Float32Array; // [H, I]
  up: Float32Array; // [H, I]
  down: Float32Array; // [I, H]
}

export const LAYER_WEIGHT_KEYS: ReadonlyArray<keyof LayerWeights> = ['inputNorm', 'q', 'k', 'v', 'o', 'postNorm', 'gate', 'up', 'down'];

export interface SynthWeights {
  dims: SynthDims;
  layers: LayerWeights[];
  finalNorm: Float32Array; // [H]
  lmHead: Float32Array; // [H, V]
  embedTokens: Float32Array; // [V, H]
  rope: {
    theta: number;
    maxPositions: number;
    headDim: number;
    /** inv_freq[j] = theta^(-2j/headDim), j < headDim/2 (float64). */
    invFreq: Float64Array;
    /** cos(p * inv_freq[j]) as float32, [maxPositions, headDim/2] (genai cos_cache; the decomposed cache repeats it twice per row). */
    cos: Float32Array;
    sin: Float32Array;
  };
  vision: {
    imageSize: number; // 16
    patch: number; // 8
    channels: number; // Conv output channels C
    tokens: number; // (imageSize/patch)^2 = 4
    convWeight: Float32Array; // [C, 3, patch, patch]
    convBias: Float32Array; // [C]
    proj: Float32Array; // [C, H]
  };
}

export interface SynthIo {
  inputsEmbeds: string;
  attentionMask: string;
  /** undefined for the fused style. */
  positionIds?: string;
  pastKey(i: number): string;
  pastValue(i: number): string;
  presentKey(i: number): string;
  presentValue(i: number): string;
  logits: string;
}

export interface SynthModel {
  style: SynthStyle;
  layout: SynthLayout;
  /** The package folder. */
  dir: string;
  /** The decoder .onnx. */
  decoderPath: string;
  /** External data files of the decoder, in chunk order (empty when inline). */
  dataFiles: string[];
  /** config.json / genai_config.json (undefined for 'single'). */
  configPath?: string;
  embedPath?: string;
  visionPath?: string;
  weights: SynthWeights;
  dims: SynthDims;
  io: SynthIo;
}

export const SYNTH_IO: SynthIo = {
  inputsEmbeds: 'inputs_embeds',
  attentionMask: 'attention_mask',
  positionIds: 'position_ids',
  pastKey: (i) => `past_key_values.${i}.key`,
  pastValue: (i) => `past_key_values.${i}.value`,
  presentKey: (i) => `present.${i}.key`,
  presentValue: (i) => `present.${i}.value`,
  logits: 'logits',
};

/** The "real size" configuration for benchmarks (~0.4B parameters in the decoder, ~1.7 GB fp32). */
export const REAL_SIZE: Partial<SynthOptions> = {
  numLayers: 24,
  hidden: 896,
  heads: 14,
  kvHeads: 2,
  headDim: 64,
  intermediate: 4864,
  vocab: 32000,
  maxPositions: 2048,
  ropeTheta: 1000000,
  externalData: true,
};

export function resolveDims(o: Partial<SynthOptions>): SynthDims {
  const style = o.style ?? 'decomposed';
  const hidden = o.hidden ?? (style === 'fused' ? 64 : 32);
  const heads = o.heads ?? 4;
  const kvHeads = o.kvHeads ?? 2;
  const headDim = o.headDim ?? hidden / heads;
  const d: SynthDims = {
    numLayers: o.numLayers ?? 6,
    hidden,
    heads,
    kvHeads,
    headDim,
    intermediate: o.intermediate ?? 2 * hidden,
    vocab: o.vocab ?? 50,
    eps: o.eps ?? 1e-5,
    ropeTheta: o.ropeTheta ?? 10000,
    maxPositions: o.maxPositions ?? 128,
  };
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) throw new Error(`head dim ${headDim} must be an even integer`);
  if (heads % kvHeads !== 0) throw new Error(`heads (${heads}) must be a multiple of kvHeads (${kvHeads})`);
  if (style === 'fused' && !o.rotaryNodes && headDim % 16 !== 0) {
    throw new Error(`fused style: head dim ${headDim} must be a multiple of 16 (GroupQueryAttention runs its rotary only then)`);
  }
  if (style === 'fused' && !o.rotaryNodes && (headDim / 2) % 8 !== 0) throw new Error(`fused style: cos/sin cache width ${headDim / 2} must be a multiple of 8`);
  return d;
}

// ---------------------------------------------------------------- weights

/** Random weights, deterministic in the seed. Activations stay O(1) through the layers. */
export function makeSynthWeights(dims: SynthDims, seed: number | string = 1234, visionChannels = 16): SynthWeights {
  const { numLayers: L, hidden: H, heads, kvHeads, headDim: hd, intermediate: I, vocab: V } = dims;
  const rng = new Rng(seed);
  const norm = (): Float32Array => rng.float32(H, 0.1, 1);
  const layers: LayerWeights[] = [];
  for (let l = 0; l < L; l++) {
    layers.push({
      inputNorm: norm(),
      q: rng.float32(H * heads * hd, 1 / Math.sqrt(H)),
      k: rng.float32(H * kvHeads * hd, 1 / Math.sqrt(H)),
      v: rng.float32(H * kvHeads * hd, 1 / Math.sqrt(H)),
      o: rng.float32(heads * hd * H, 0.5 / Math.sqrt(heads * hd)),
      postNorm: norm(),
      gate: rng.float32(H * I, 1 / Math.sqrt(H)),
      up: rng.float32(H * I, 1 / Math.sqrt(H)),
      down: rng.float32(I * H, 0.5 / Math.sqrt(I)),
    });
  }
  const finalNorm = norm();
  const lmHead = rng.float32(H * V, 1 / Math.sqrt(H));
  const embedTokens = rng.float32(V * H, 1);
  const half = hd / 2;
  const invFreq = new Float64Array(half);
  for (let j = 0; j < half; j++) invFreq[j] = 1 / Math.pow(dims.ropeTheta, (2 * j) / hd);
  const cos = new Float32Array(dims.maxPositions * half);
  const sin = new Float32Array(dims.maxPositions * half);
  for (let p = 0; p < dims.maxPositions; p++) {
    for (let j = 0; j < half; j++) {
      cos[p * half + j] = Math.cos(p * invFreq[j]);
      sin[p * half + j] = Math.sin(p * invFreq[j]);
    }
  }
  const C = visionChannels;
  const patch = 8;
  const vision = {
    imageSize: 16,
    patch,
    channels: C,
    tokens: 4,
    convWeight: rng.float32(C * 3 * patch * patch, 1 / Math.sqrt(3 * patch * patch)),
    convBias: rng.float32(C, 0.1),
    proj: rng.float32(C * H, 1 / Math.sqrt(C)),
  };
  return { dims, layers, finalNorm, lmHead, embedTokens, rope: { theta: dims.ropeTheta, maxPositions: dims.maxPositions, headDim: hd, invFreq, cos, sin }, vision };
}

// ---------------------------------------------------------------- graphs

function decoderIo(d: SynthDims, withPositionIds: boolean) {
  const B = 'batch_size';
  const input = [
    makeValueInfo('inputs_embeds', DataType.FLOAT, [B, 'sequence_length', d.hidden]),
    makeValueInfo('attention_mask', DataType.INT64, [B, 'total_sequence_length']),
  ];
  if (withPositionIds) input.push(makeValueInfo('position_ids', DataType.INT64, [B, 'sequence_length']));
  const output = [makeValueInfo('logits', DataType.FLOAT, [B, 'sequence_length', d.vocab])];
  for (let i = 0; i < d.numLayers; i++) {
    for (const kv of ['key', 'value']) {
      input.push(makeValueInfo(`past_key_values.${i}.${kv}`, DataType.FLOAT, [B, d.kvHeads, 'past_sequence_length', d.headDim]));
      output.push(makeValueInfo(`present.${i}.${kv}`, DataType.FLOAT, [B, d.kvHeads, 'total_sequence_length', d.headDim]));
    }
  }
  return { input, output };
}

export interface DecoderGraphOptions {
  namePrefix?: '/model/' | '/';
  anonymousWeights?: boolean;
  normForm?: 'reciprocal' | 'div';
}

/** The decoder in torch.onnx / Optimum style (opset 17). */
export function buildDecomposedDecoder(w: SynthWeights, o: DecoderGraphOptions = {}): ModelProto {
  const d = w.dims;
  const { numLayers: L, hidden: H, heads: nH, kvHeads: kvH, headDim: hd, intermediate: I, vocab: V } = d;
  const nRep = nH / kvH;
  const root = o.namePrefix === '/' ? '' : '/model';
  const wp = o.namePrefix === '/' ? '' : 'model.';
  const g = new NamedGraph('torch', root);
  let anon = 1000;
  const weightName = (named: string): string => (o.anonymousWeights ? `onnx::MatMul_${anon++}` : named);
  const proj = (scope: string, x: string, named: string, dims: number[], data: Float32Array): string =>
    g.op(scope, 'MatMul', [x, g.init(f32Initializer(weightName(named), dims, data))]);
  const rms = (scope: string, x: string, wName: string, weight: Float32Array): string => {
    const wn = g.init(f32Initializer(wName, [H], weight));
    const p = g.op(scope, 'Pow', [x, g.f32([2])]);
    const m = g.op(scope, 'ReduceMean', [p], { attrs: { axes: [-1], keepdims: 1 } });
    const a = g.op(scope, 'Add', [m, g.f32([d.eps])]);
    const s = g.op(scope, 'Sqrt', [a]);
    const n = o.normForm === 'div' ? g.op(scope, 'Div', [x, s]) : g.op(scope, 'Mul', [x, g.op(scope, 'Reciprocal', [s])]);
    return g.op(scope, 'Mul', [wn, n]);
  };

  // Additive attention mask [B, 1, S, T], built once: key t is visible to query s (absolute
  // position P + s, P = T - S) when t <= P + s and attention_mask[b, t] = 1.
  const S = g.op(root, 'Gather', [g.op(root, 'Shape', ['inputs_embeds']), g.i64([1], [])], { attrs: { axis: 0 } });
  const T = g.op(root, 'Gather', [g.op(root, 'Shape', ['attention_mask']), g.i64([1], [])], { attrs: { axis: 0 } });
  const P = g.op(root, 'Sub', [T, S]);
  const qPos = g.op(root, 'Range', [P, T, g.i64([1], [])]);
  const kPos = g.op(root, 'Range', [g.i64([0], []), T, g.i64([1], [])]);
  const causal = g.op(root, 'LessOrEqual', [kPos, g.op(root, 'Unsqueeze', [qPos, g.i64([1])])]);
  const pad = g.op(root, 'Unsqueeze', [g.op(root, 'Cast', ['attention_mask'], { attrs: { to: DataType.BOOL } }), g.i64([1, 2])]);
  const allowed = g.op(root, 'And', [causal, pad]);
  const mask = g.op(root, 'Where', [allowed, g.f32([0]), g.f32([-3.4028234663852886e38])]);

  // Rotary caches [maxPos, headDim] (HF: cat(freqs, freqs)), gathered once by position_ids.
  const half = hd / 2;
  const full = (c: Float32Array): Float32Array => {
    const out = new Float32Array(d.maxPositions * hd);
    for (let p = 0; p < d.maxPositions; p++) {
      out.set(c.subarray(p * half, (p + 1) * half), p * hd);
      out.set(c.subarray(p * half, (p + 1) * half), p * hd + half);
    }
    return out;
  };
  const cosC = g.init(f32Initializer(`${wp}rotary_emb.cos_cached`, [d.maxPositions, hd], full(w.rope.cos)));
  const sinC = g.init(f32Initializer(`${wp}rotary_emb.sin_cached`, [d.maxPositions, hd], full(w.rope.sin)));
  const cos = g.op(`${root}/rotary_emb`, 'Gather', [cosC, 'position_ids'], { attrs: { axis: 0 } });
  const sin = g.op(`${root}/rotary_emb`, 'Gather', [sinC, 'position_ids'], { attrs: { axis: 0 } });

  let x = 'inputs_embeds';
  for (let l = 0; l < L; l++) {
    const lw = w.layers[l];
    const Ls = `${root}/layers.${l}`;
    const A = `${Ls}/self_attn`;
    const pn = `${wp}layers.${l}`;
    const xn = rms(`${Ls}/input_layernorm`, x, `${pn}.input_layernorm.weight`, lw.inputNorm);
    const q = proj(`${A}/q_proj`, xn, `${pn}.self_attn.q_proj.weight`, [H, nH * hd], lw.q);
    const k = proj(`${A}/k_proj`, xn, `${pn}.self_attn.k_proj.weight`, [H, kvH * hd], lw.k);
    const v = proj(`${A}/v_proj`, xn, `${pn}.self_attn.v_proj.weight`, [H, kvH * hd], lw.v);
    const toHeads = (t: string, n: number): string =>
      g.op(A, 'Transpose', [g.op(A, 'Reshape', [t, g.constNode(A, [0, 0, n, hd])])], { attrs: { perm: [0, 2, 1, 3] } });
    const qh = toHeads(q, nH);
    const kh = toHeads(k, kvH);
    const vh = toHeads(v, kvH);
    const cos4 = g.op(A, 'Unsqueeze', [cos, g.i64([1])]);
    const sin4 = g.op(A, 'Unsqueeze', [sin, g.i64([1])]);
    const rope = (t: string): string => {
      const x1 = g.op(A, 'Slice', [t, g.i64([0]), g.i64([half]), g.i64([-1])]);
      const x2 = g.op(A, 'Slice', [t, g.i64([half]), g.i64([hd]), g.i64([-1])]);
      const rot = g.op(A, 'Concat', [g.op(A, 'Neg', [x2]), x1], { attrs: { axis: -1 } });
      return g.op(A, 'Add', [g.op(A, 'Mul', [t, cos4]), g.op(A, 'Mul', [rot, sin4])]);
    };
    const qr = rope(qh);
    const kr = rope(kh);
    const presentK = g.add(A, 'Concat', [`past_key_values.${l}.key`, kr], { attrs: { axis: -2 }, outputs: [`present.${l}.key`] })[0];
    const presentV = g.add(A, 'Concat', [`past_key_values.${l}.value`, vh], { attrs: { axis: -2 }, outputs: [`present.${l}.value`] })[0];
    const repeatKv = (t: string): string =>
      nRep === 1
        ? t
        : g.op(A, 'Reshape', [g.op(A, 'Expand', [g.op(A, 'Unsqueeze', [t, g.i64([2])]), g.i64([1, 1, nRep, 1, 1])]), g.i64([0, nH, -1, hd])]);
    const kT = g.op(A, 'Transpose', [repeatKv(presentK)], { attrs: { perm: [0, 1, 3, 2] } });
    const scores = g.op(A, 'Mul', [g.op(A, 'MatMul', [qr, kT]), g.f32([1 / Math.sqrt(hd)])]);
    const probs = g.op(A, 'Softmax', [g.op(A, 'Add', [scores, mask])], { attrs: { axis: -1 } });
    const ctx = g.op(A, 'MatMul', [probs, repeatKv(presentV)]);
    const merged = g.op(A, 'Reshape', [g.op(A, 'Transpose', [ctx], { attrs: { perm: [0, 2, 1, 3] } }), g.constNode(A, [0, 0, nH * hd])]);
    const attnOut = proj(`${A}/o_proj`, merged, `${pn}.self_attn.o_proj.weight`, [nH * hd, H], lw.o);
    const r1 = g.op(Ls, 'Add', [x, attnOut]);
    const xn2 = rms(`${Ls}/post_attention_layernorm`, r1, `${pn}.post_attention_layernorm.weight`, lw.postNorm);
    const M = `${Ls}/mlp`;
    const gate = proj(`${M}/gate_proj`, xn2, `${pn}.mlp.gate_proj.weight`, [H, I], lw.gate);
    const silu = g.op(`${M}/act_fn`, 'Mul', [gate, g.op(`${M}/act_fn`, 'Sigmoid', [gate])]);
    const up = proj(`${M}/up_proj`, xn2, `${pn}.mlp.up_proj.weight`, [H, I], lw.up);
    const down = proj(`${M}/down_proj`, g.op(M, 'Mul', [silu, up]), `${pn}.mlp.down_proj.weight`, [I, H], lw.down);
    x = g.op(Ls, 'Add', [r1, down]);
  }
  const xf = rms(`${root}/norm`, x, `${wp}norm.weight`, w.finalNorm);
  g.add('/lm_head', 'MatMul', [xf, g.init(f32Initializer(weightName('lm_head.weight'), [H, V], w.lmHead))], { outputs: ['logits'] });

  const io = decoderIo(d, true);
  const graph = makeGraph('main_graph', { node: g.nodes, initializer: g.initializers, ...io });
  return makeModel(graph, { '': 17 }, 8);
}

/** The decoder in onnxruntime-genai model-builder style (opset 21 + com.microsoft 1). */
export function buildFusedDecoder(w: SynthWeights, o: { rotaryNodes?: boolean; packedQkv?: boolean } = {}): ModelProto {
  const rotaryNodes = !!o.rotaryNodes;
  if (rotaryNodes && o.packedQkv) throw new Error('synthetic fused decoder: packedQkv with rotaryNodes is not written');
  const d = w.dims;
  const { numLayers: L, hidden: H, heads: nH, kvHeads: kvH, headDim: hd, intermediate: I, vocab: V } = d;
  const g = new NamedGraph('genai', '/model');
  const ms = 'com.microsoft';
  const eps = { float: d.eps };
  const mat = (scope: string, x: string, wName: string, dims: number[], data: Float32Array): string =>
    g.op(scope, 'MatMul', [x, g.init(f32Initializer(wName, dims, data))]);

  const M = '/model/attn_mask_reformat/attn_mask_subgraph';
  const reduced = g.op(M, 'ReduceSum', ['attention_mask', g.i64([1])], { attrs: { keepdims: 0 } });
  const seqlensK = g.op(M, 'Cast', [g.op(M, 'Sub', [reduced, g.i64([1])])], { attrs: { to: DataType.INT32 }, name: `${M}/Sub/Cast` });
  const totalLen = g.op(M, 'Cast', [g.op(M, 'Gather', [g.op(M, 'Shape', ['attention_mask']), g.i64([1], [])], { attrs: { axis: 0 } })], {
    attrs: { to: DataType.INT32 },
    name: `${M}/Gather/Cast`,
  });
  const half = hd / 2;
  g.init(f32Initializer('cos_cache', [d.maxPositions, half], w.rope.cos));
  g.init(f32Initializer('sin_cache', [d.maxPositions, half], w.rope.sin));

  const skipNorm = (scope: string, input: string, skip: string, wName: string, weight: Float32Array): [string, string] => {
    const name = `${scope}/SkipLayerNorm`;
    const outs = g.add(scope, 'SkipSimplifiedLayerNormalization', [input, skip, g.init(f32Initializer(wName, [H], weight))], {
      domain: ms,
      attrs: { epsilon: eps },
      name,
      outputs: [g.outputName(name, 0), '', '', g.outputName(name, 3)],
    });
    return [outs[0], outs[3]];
  };

  let normed = g.op('/model/layers.0/input_layernorm', 'SimplifiedLayerNormalization', ['inputs_embeds', g.init(f32Initializer('model.layers.0.input_layernorm.weight', [H], w.layers[0].inputNorm))], {
    attrs: { axis: -1, epsilon: eps, stash_type: 1 },
    name: '/model/layers.0/input_layernorm/LayerNorm',
  });
  let residual = 'inputs_embeds';
  let mlpOut = '';
  for (let l = 0; l < L; l++) {
    const lw = w.layers[l];
    const Ls = `/model/layers.${l}`;
    const pn = `model.layers.${l}`;
    if (l > 0) [normed, residual] = skipNorm(`${Ls}/input_layernorm`, mlpOut, residual, `${pn}.input_layernorm.weight`, lw.inputNorm);
    const A = `${Ls}/attn`;
    let q: string;
    let k = '';
    let v = '';
    if (o.packedQkv) {
      // Rows of [H, (heads + 2 kv) * hd]: each input feature's q, k and v weights side by side.
      const qw = nH * hd;
      const kw = kvH * hd;
      const packed = new Float32Array(H * (qw + 2 * kw));
      for (let r = 0; r < H; r++) {
        const row = r * (qw + 2 * kw);
        packed.set(lw.q.subarray(r * qw, (r + 1) * qw), row);
        packed.set(lw.k.subarray(r * kw, (r + 1) * kw), row + qw);
        packed.set(lw.v.subarray(r * kw, (r + 1) * kw), row + qw + kw);
      }
      q = mat(`${A}/qkv_proj`, normed, `${pn}.attn.qkv_proj.MatMul.weight`, [H, qw + 2 * kw], packed);
    } else {
      q = mat(`${A}/q_proj`, normed, `${pn}.attn.q_proj.MatMul.weight`, [H, nH * hd], lw.q);
      k = mat(`${A}/k_proj`, normed, `${pn}.attn.k_proj.MatMul.weight`, [H, kvH * hd], lw.k);
      v = mat(`${A}/v_proj`, normed, `${pn}.attn.v_proj.MatMul.weight`, [H, kvH * hd], lw.v);
    }
    const gqaName = `${A}/GroupQueryAttention`;
    const rotary = (x: string, which: string): string =>
      g.op(`${A}/${which}_rotary`, 'RotaryEmbedding', [x, 'position_ids', 'cos_cache', 'sin_cache'], {
        domain: ms,
        name: `${A}/${which}_rotary/RotaryEmbedding`,
        attrs: { interleaved: 0, num_heads: 0, rotary_embedding_dim: 0 },
      });
    const qIn = rotaryNodes ? rotary(q, 'q') : q;
    const kIn = rotaryNodes ? rotary(k, 'k') : k;
    const caches = rotaryNodes ? [] : ['cos_cache', 'sin_cache'];
    const [attn] = g.add(A, 'GroupQueryAttention', [qIn, kIn, v, `past_key_values.${l}.key`, `past_key_values.${l}.value`, seqlensK, totalLen, ...caches], {
      domain: ms,
      name: gqaName,
      attrs: { num_heads: nH, kv_num_heads: kvH, do_rotary: rotaryNodes ? 0 : 1, rotary_interleaved: 0, local_window_size: -1, scale: { float: 1 / Math.sqrt(hd) } },
      outputs: [g.outputName(gqaName, 0), `present.${l}.key`, `present.${l}.value`],
    });
    const attnOut = mat(`${A}/o_proj`, attn, `${pn}.attn.o_proj.MatMul.weight`, [nH * hd, H], lw.o);
    const [normed2, r1] = skipNorm(`${Ls}/post_attention_layernorm`, attnOut, residual, `${pn}.post_attention_layernorm.weight`, lw.postNorm);
    residual = r1;
    const Mm = `${Ls}/mlp`;
    const gate = mat(`${Mm}/gate_proj`, normed2, `${pn}.mlp.gate_proj.MatMul.weight`, [H, I], lw.gate);
    const silu = g.op(`${Mm}/act_fn`, 'Mul', [gate, g.op(`${Mm}/act_fn`, 'Sigmoid', [gate])]);
    const up = mat(`${Mm}/up_proj`, normed2, `${pn}.mlp.up_proj.MatMul.weight`, [H, I], lw.up);
    mlpOut = mat(`${Mm}/down_proj`, g.op(Mm, 'Mul', [silu, up]), `${pn}.mlp.down_proj.MatMul.weight`, [I, H], lw.down);
  }
  const [finalNormed] = skipNorm(`/model/layers.${L}/final_norm_layernorm`, mlpOut, residual, `model.layers.${L}.final_norm_layernorm.weight`, w.finalNorm);
  g.add('/lm_head', 'MatMul', [finalNormed, g.init(f32Initializer('lm_head.MatMul.weight', [H, V], w.lmHead))], { outputs: ['logits'], name: '/lm_head/MatMul' });

  const io = decoderIo(d, rotaryNodes);
  const graph = makeGraph('main_graph', { node: g.nodes, initializer: g.initializers, ...io });
  return makeModel(graph, { '': 21, [ms]: 1 }, 10);
}

/** input_ids int64 [B, S] -> inputs_embeds [B, S, H] (Gather from the [V, H] table). */
export function buildEmbedTokens(w: SynthWeights): ModelProto {
  const g = new NamedGraph('torch', '');
  g.add('/embed_tokens', 'Gather', [g.init(f32Initializer('model.embed_tokens.weight', [w.dims.vocab, w.dims.hidden], w.embedTokens)), 'input_ids'], {
    outputs: ['inputs_embeds'],
  });
  return makeModel(
    makeGraph('main_graph', {
      node: g.nodes,
      initializer: g.initializers,
      input: [makeValueInfo('input_ids', DataType.INT64, ['batch_size', 'sequence_length'])],
      output: [makeValueInfo('inputs_embeds', DataType.FLOAT, ['batch_size', 'sequence_length', w.dims.hidden])],
    }),
    { '': 17 },
    8,
  );
}

/** pixel_values [B, 3, 16, 16] -> image_features [B, 4, H]: Conv patchify (8x8, stride 8), then MatMul. */
export function buildVisionEncoder(w: SynthWeights): ModelProto {
  const vz = w.vision;
  const C = vz.channels;
  const g = new NamedGraph('torch', '');
  const conv = g.op('/vision_tower/patch_embedding', 'Conv', ['pixel_values', g.init(f32Initializer('vision_tower.patch_embedding.weight', [C, 3, vz.patch, vz.patch], vz.convWeight)), g.init(f32Initializer('vision_tower.patch_embedding.bias', [C], vz.convBias))], {
    attrs: { kernel_shape: [vz.patch, vz.patch], strides: [vz.patch, vz.patch] },
  });
  const flat = g.op('/vision_tower', 'Reshape', [conv, g.i64([0, C, vz.tokens])]);
  const tokens = g.op('/vision_tower', 'Transpose', [flat], { attrs: { perm: [0, 2, 1] } });
  g.add('/multi_modal_projector/linear', 'MatMul', [tokens, g.init(f32Initializer('multi_modal_projector.linear.weight', [C, w.dims.hidden], vz.proj))], { outputs: ['image_features'] });
  return makeModel(
    makeGraph('main_graph', {
      node: g.nodes,
      initializer: g.initializers,
      input: [makeValueInfo('pixel_values', DataType.FLOAT, ['batch_size', 3, vz.imageSize, vz.imageSize])],
      output: [makeValueInfo('image_features', DataType.FLOAT, ['batch_size', vz.tokens, w.dims.hidden])],
    }),
    { '': 17 },
    8,
  );
}

export function buildDecoder(w: SynthWeights, style: SynthStyle, o: DecoderGraphOptions & { rotaryNodes?: boolean; packedQkv?: boolean } = {}): ModelProto {
  return style === 'fused' ? buildFusedDecoder(w, o) : buildDecomposedDecoder(w, o);
}

// ---------------------------------------------------------------- packages

function writeJson(file: string, value: unknown): void {
  fs.writeFileSync(file, JSON.stringify(value, null, 2) + '\n');
}

/** Generates weights (or takes `options.weights`) and writes the package; see SynthOptions. */
export function writeSynthModel(options: SynthOptions): SynthModel {
  const style = options.style ?? 'decomposed';
  const layout = options.layout ?? (style === 'fused' ? 'genai' : 'optimum');
  const weights = options.weights ?? makeSynthWeights(resolveDims(options), options.seed ?? 1234, options.visionChannels ?? 16);
  const d = weights.dims;
  if (options.weights) resolveDims({ ...d, style, rotaryNodes: options.rotaryNodes });
  const dir = options.dir;
  fs.mkdirSync(dir, { recursive: true });
  const decoder = buildDecoder(weights, style, options);
  const extras = options.extras ?? true;
  const withPositions = style === 'decomposed' || !!options.rotaryNodes;
  const io: SynthIo = { ...SYNTH_IO, positionIds: withPositions ? 'position_ids' : undefined };
  const base: Omit<SynthModel, 'decoderPath' | 'dataFiles'> = { style, layout, dir, weights, dims: d, io };

  if (layout === 'single') {
    const decoderPath = path.join(dir, options.fileName ?? 'decoder.onnx');
    writeOnnx(decoder, undefined, decoderPath);
    return { ...base, decoderPath, dataFiles: [] };
  }

  if (layout === 'optimum') {
    const onnxDir = path.join(dir, 'onnx');
    fs.mkdirSync(onnxDir, { recursive: true });
    const decoderPath = path.join(onnxDir, 'decoder_model_merged.onnx');
    const external = options.externalData || options.externalChunkBytes !== undefined;
    const dataBase = 'decoder_model_merged.onnx_data';
    const res = writeOnnx(
      decoder,
      undefined,
      decoderPath,
      external ? { baseName: dataBase, chunkName: (i) => `${dataBase}_${i}`, maxChunkBytes: options.externalChunkBytes } : undefined,
    );
    let embedPath: string | undefined;
    let visionPath: string | undefined;
    if (extras) {
      embedPath = path.join(onnxDir, 'embed_tokens.onnx');
      visionPath = path.join(onnxDir, 'vision_encoder.onnx');
      writeOnnx(buildEmbedTokens(weights), undefined, embedPath);
      writeOnnx(buildVisionEncoder(weights), undefined, visionPath);
    }
    const config: Record<string, unknown> = {
      architectures: ['LlavaForConditionalGeneration'],
      model_type: 'llava',
      image_token_index: d.vocab - 1,
      projector_hidden_act: 'gelu',
      vision_feature_layer: -1,
      vision_feature_select_strategy: 'full',
      torch_dtype: 'float32',
      text_config: {
        architectures: ['LlamaForCausalLM'],
        model_type: 'llama',
        num_hidden_layers: d.numLayers,
        num_attention_heads: d.heads,
        num_key_value_heads: d.kvHeads,
        hidden_size: d.hidden,
        head_dim: d.headDim,
        intermediate_size: d.intermediate,
        vocab_size: d.vocab,
        rms_norm_eps: d.eps,
        rope_theta: d.ropeTheta,
        max_position_embeddings: d.maxPositions,
        hidden_act: 'silu',
        tie_word_embeddings: false,
      },
      vision_config: {
        model_type: 'clip_vision_model',
        image_size: weights.vision.imageSize,
        patch_size: weights.vision.patch,
        num_channels: 3,
        hidden_size: weights.vision.channels,
      },
    };
    if (external) config['transformers.js_config'] = { use_external_data_format: { 'decoder_model_merged.onnx': res.dataFiles.length } };
    const configPath = path.join(dir, 'config.json');
    writeJson(configPath, config);
    return { ...base, decoderPath, dataFiles: res.dataFiles, configPath, embedPath, visionPath };
  }

  // genai
  const decoderPath = path.join(dir, 'model.onnx');
  const res = writeOnnx(decoder, undefined, decoderPath, { baseName: 'model.onnx.data' });
  const inputs: Record<string, string> = {
    inputs_embeds: 'inputs_embeds',
    attention_mask: 'attention_mask',
    past_key_names: 'past_key_values.%d.key',
    past_value_names: 'past_key_values.%d.value',
  };
  if (withPositions) inputs.position_ids = 'position_ids';
  const model: Record<string, unknown> = {
    bos_token_id: 1,
    context_length: d.maxPositions,
    decoder: {
      session_options: { log_id: 'onnxruntime-genai', provider_options: [] },
      filename: 'model.onnx',
      head_size: d.headDim,
      hidden_size: d.hidden,
      inputs,
      outputs: { logits: 'logits', present_key_names: 'present.%d.key', present_value_names: 'present.%d.value' },
      num_attention_heads: d.heads,
      num_hidden_layers: d.numLayers,
      num_key_value_heads: d.kvHeads,
    },
    eos_token_id: 2,
    pad_token_id: 0,
    type: 'llama',
    vocab_size: d.vocab,
  };
  let embedPath: string | undefined;
  let visionPath: string | undefined;
  if (extras) {
    embedPath = path.join(dir, 'embedding.onnx');
    visionPath = path.join(dir, 'vision.onnx');
    writeOnnx(buildEmbedTokens(weights), undefined, embedPath);
    writeOnnx(buildVisionEncoder(weights), undefined, visionPath);
    model.embedding = { filename: 'embedding.onnx', inputs: { input_ids: 'input_ids' }, outputs: { inputs_embeds: 'inputs_embeds' } };
    model.vision = { filename: 'vision.onnx', inputs: { pixel_values: 'pixel_values' }, outputs: { image_features: 'image_features' } };
  }
  const configPath = path.join(dir, 'genai_config.json');
  writeJson(configPath, {
    model,
    search: { do_sample: false, max_length: d.maxPositions, min_length: 0, num_beams: 1, num_return_sequences: 1, past_present_share_buffer: false, repetition_penalty: 1, temperature: 1, top_k: 1, top_p: 1 },
  });
  return { ...base, decoderPath, dataFiles: res.dataFiles, configPath, embedPath, visionPath };
}

/** Deterministic random inputs_embeds [S, H] (batch 1), roughly unit scale. */
export function randomEmbeds(seqLen: number, hidden: number, seed: number | string = 99): Float32Array {
  return new Rng(seed).float32(seqLen * hidden, 1);
}
