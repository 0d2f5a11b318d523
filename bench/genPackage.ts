// Generates a complete LLaVA-style package of real size for benchmarks (not a test fixture):
// a decoder in onnxruntime-genai style (GroupQueryAttention with rotary inside,
// SkipSimplifiedLayerNormalization) with random weights streamed into external data, an
// embedding table, a patch-Conv vision encoder giving 576 image tokens from 192x192 images
// (so a calibration sample is about 600 tokens), and the bundled tiny model's tokenizer and
// processor with the image size changed. Weights come from three pools of random values
// scaled per fan-in, so generating 13 GB is disk-bound, not PRNG-bound.
//   node out/bench/genPackage.js qwen2-0.5b|llama2-7b <out dir>

import * as fs from 'fs';
import * as path from 'path';
import { int64Tensor, makeGraph, makeModel, makeNode, makeValueInfo } from '../src/engine/onnx/builder';
import { floatToHalf } from '../src/engine/onnx/onnxFile';
import { DataType, encodeModel, TensorProto } from '../src/engine/onnx/proto';

export interface Shape {
  layers: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediate: number;
  vocab: number;
  dtype: 'fp32' | 'fp16';
}

export const SHAPES: Record<string, Shape> = {
  'qwen2-0.5b': { layers: 24, hidden: 896, heads: 14, kvHeads: 2, headDim: 64, intermediate: 4864, vocab: 151936, dtype: 'fp32' },
  'llama2-7b': { layers: 32, hidden: 4096, heads: 32, kvHeads: 32, headDim: 128, intermediate: 11008, vocab: 32000, dtype: 'fp16' },
};

const IMAGE = 192;
const PATCH = 8;
const MAX_POS = 4096;
const CHUNK = 2 ** 30;
const TINY = path.resolve(__dirname, '../../models/tiny-llava');

/** Deterministic uniform values with unit variance. */
function pool(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s / 2 ** 32) * 2 - 1) * Math.sqrt(3);
  }
  return out;
}

/** Writes tensors into numbered external-data files of at most CHUNK bytes. */
class DataWriter {
  private fd = -1;
  private size = 0;
  readonly files: string[] = [];
  private readonly pools = new Map<string, Uint8Array>();
  private readonly base: Float32Array;

  constructor(private readonly dir: string, private readonly baseName: string, private readonly dtype: Shape['dtype']) {
    this.base = pool(1 << 22, 12345);
  }

  /** Bytes of `base * scale` in the output type (cached per scale), 4 Mi values. */
  private scaled(scale: number): Uint8Array {
    const key = scale.toPrecision(8);
    let b = this.pools.get(key);
    if (!b) {
      if (this.dtype === 'fp32') b = new Uint8Array(Float32Array.from(this.base, (x) => x * scale).buffer);
      else b = new Uint8Array(Uint16Array.from(this.base, (x) => floatToHalf(x * scale)).buffer);
      this.pools.set(key, b);
    }
    return b;
  }

  tensor(name: string, dims: number[], scale: number, offsetSeed: number): TensorProto {
    const elem = this.dtype === 'fp32' ? 4 : 2;
    const bytes = dims.reduce((a, b) => a * b, 1) * elem;
    if (this.fd < 0 || this.size + bytes > CHUNK) this.next();
    const src = this.scaled(scale);
    const offset = this.size;
    // Start each tensor at another place in the pool so tensors differ.
    let pos = ((offsetSeed * 7919) % (src.length / elem)) * elem;
    for (let done = 0; done < bytes; ) {
      const n = Math.min(bytes - done, src.length - pos);
      fs.writeSync(this.fd, src, pos, n, offset + done);
      done += n;
      pos = 0;
    }
    this.size += bytes;
    const pad = (64 - (this.size % 64)) % 64; // aligned tensors
    this.size += pad;
    return {
      name,
      dataType: this.dtype === 'fp32' ? DataType.FLOAT : DataType.FLOAT16,
      dims,
      externalData: [['location', this.files[this.files.length - 1]], ['offset', String(offset)], ['length', String(bytes)]],
      dataLocation: 1,
      unknown: [],
    };
  }

  private next(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    const name = this.files.length === 0 ? this.baseName : `${this.baseName}_${this.files.length}`;
    this.files.push(name);
    this.fd = fs.openSync(path.join(this.dir, name), 'w');
    this.size = 0;
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}

function inline(name: string, dims: number[], values: Float32Array, dtype: Shape['dtype']): TensorProto {
  const raw = dtype === 'fp32' ? new Uint8Array(values.buffer.slice(0)) : new Uint8Array(Uint16Array.from(values, floatToHalf).buffer);
  return { name, dataType: dtype === 'fp32' ? DataType.FLOAT : DataType.FLOAT16, dims, rawData: raw, unknown: [] };
}

function decoder(sh: Shape, onnxDir: string): { files: string[] } {
  const { layers: L, hidden: H, heads: nH, kvHeads: kvH, headDim: hd, intermediate: I, vocab: V, dtype } = sh;
  const T = dtype === 'fp32' ? DataType.FLOAT : DataType.FLOAT16;
  const data = new DataWriter(onnxDir, 'decoder_model_merged.onnx_data', dtype);
  const nodes = [];
  const inits: TensorProto[] = [];
  let seed = 1;
  const w = (name: string, dims: number[], scale: number) => {
    const t = data.tensor(name, dims, scale, seed++);
    inits.push(t);
    return name;
  };
  const norm = (name: string) => {
    inits.push(inline(name, [H], Float32Array.from(pool(H, seed++), (x) => 0.55 + 0.25 * x / Math.sqrt(3)), dtype));
    return name;
  };
  const ms = 'com.microsoft';
  const eps = { float: 1e-6 };
  // Rotary caches [MAX_POS, hd / 2] for GroupQueryAttention's built-in rotary.
  const half = hd / 2;
  const cos = new Float32Array(MAX_POS * half);
  const sin = new Float32Array(MAX_POS * half);
  for (let p = 0; p < MAX_POS; p++) {
    for (let j = 0; j < half; j++) {
      const a = p / Math.pow(10000, (2 * j) / hd);
      cos[p * half + j] = Math.cos(a);
      sin[p * half + j] = Math.sin(a);
    }
  }
  inits.push(inline('cos_cache', [MAX_POS, half], cos, dtype), inline('sin_cache', [MAX_POS, half], sin, dtype));
  inits.push(int64Tensor('one', [1], [1]), int64Tensor('axis1', [1], [1]));
  const M = '/model/attn_mask_reformat';
  nodes.push(makeNode('ReduceSum', ['attention_mask', 'axis1'], [`${M}/sum`], { attrs: { keepdims: 0 } }));
  nodes.push(makeNode('Sub', [`${M}/sum`, 'one'], [`${M}/sub`]));
  nodes.push(makeNode('Cast', [`${M}/sub`], ['seqlens_k'], { attrs: { to: DataType.INT32 } }));
  nodes.push(makeNode('Shape', ['attention_mask'], [`${M}/shape`]));
  nodes.push(makeNode('Gather', [`${M}/shape`, 'one'], [`${M}/len`], { attrs: { axis: 0 } }));
  nodes.push(makeNode('Cast', [`${M}/len`], [`${M}/total1`], { attrs: { to: DataType.INT32 } }));
  inits.push(int64Tensor('empty_shape', [0], []));
  nodes.push(makeNode('Reshape', [`${M}/total1`, 'empty_shape'], ['total_seq_len']));

  nodes.push(makeNode('SimplifiedLayerNormalization', ['inputs_embeds', norm('model.layers.0.input_layernorm.weight')], ['/model/layers.0/input_layernorm/output_0'], { name: '/model/layers.0/input_layernorm/LayerNorm', attrs: { axis: -1, epsilon: eps, stash_type: 1 } }));
  let normed = '/model/layers.0/input_layernorm/output_0';
  let residual = 'inputs_embeds';
  let mlpOut = '';
  const skip = (scope: string, input: string, sk: string, weight: string): [string, string] => {
    const o0 = `${scope}/output_0`;
    const o3 = `${scope}/output_3`;
    nodes.push(makeNode('SkipSimplifiedLayerNormalization', [input, sk, norm(weight)], [o0, '', '', o3], { name: `${scope}/SkipLayerNorm`, domain: ms, attrs: { epsilon: eps } }));
    return [o0, o3];
  };
  const mm = (scope: string, x: string, name: string, dims: number[], scale: number) => {
    const out = `${scope}/MatMul/output_0`;
    nodes.push(makeNode('MatMul', [x, w(name, dims, scale)], [out], { name: `${scope}/MatMul` }));
    return out;
  };
  for (let l = 0; l < L; l++) {
    const Ls = `/model/layers.${l}`;
    const pn = `model.layers.${l}`;
    if (l > 0) [normed, residual] = skip(`${Ls}/input_layernorm`, mlpOut, residual, `${pn}.input_layernorm.weight`);
    const A = `${Ls}/attn`;
    const q = mm(`${A}/q_proj`, normed, `${pn}.attn.q_proj.MatMul.weight`, [H, nH * hd], 1 / Math.sqrt(H));
    const k = mm(`${A}/k_proj`, normed, `${pn}.attn.k_proj.MatMul.weight`, [H, kvH * hd], 1 / Math.sqrt(H));
    const v = mm(`${A}/v_proj`, normed, `${pn}.attn.v_proj.MatMul.weight`, [H, kvH * hd], 1 / Math.sqrt(H));
    nodes.push(
      makeNode('GroupQueryAttention', [q, k, v, `past_key_values.${l}.key`, `past_key_values.${l}.value`, 'seqlens_k', 'total_seq_len', 'cos_cache', 'sin_cache'], [`${A}/GQA/output_0`, `present.${l}.key`, `present.${l}.value`], {
        name: `${A}/GroupQueryAttention`,
        domain: ms,
        attrs: { num_heads: nH, kv_num_heads: kvH, do_rotary: 1, rotary_interleaved: 0, local_window_size: -1, scale: { float: 1 / Math.sqrt(hd) } },
      }),
    );
    const o = mm(`${A}/o_proj`, `${A}/GQA/output_0`, `${pn}.attn.o_proj.MatMul.weight`, [nH * hd, H], 0.5 / Math.sqrt(nH * hd));
    const [normed2, r1] = skip(`${Ls}/post_attention_layernorm`, o, residual, `${pn}.post_attention_layernorm.weight`);
    residual = r1;
    const Mm = `${Ls}/mlp`;
    const gate = mm(`${Mm}/gate_proj`, normed2, `${pn}.mlp.gate_proj.MatMul.weight`, [H, I], 1 / Math.sqrt(H));
    nodes.push(makeNode('Sigmoid', [gate], [`${Mm}/act/sig`]), makeNode('Mul', [gate, `${Mm}/act/sig`], [`${Mm}/act/out`]));
    const up = mm(`${Mm}/up_proj`, normed2, `${pn}.mlp.up_proj.MatMul.weight`, [H, I], 1 / Math.sqrt(H));
    nodes.push(makeNode('Mul', [`${Mm}/act/out`, up], [`${Mm}/mul`]));
    mlpOut = mm(`${Mm}/down_proj`, `${Mm}/mul`, `${pn}.mlp.down_proj.MatMul.weight`, [I, H], 0.5 / Math.sqrt(I));
  }
  const [finalNormed] = skip(`/model/layers.${L}/final_norm_layernorm`, mlpOut, residual, `model.layers.${L}.final_norm_layernorm.weight`);
  nodes.push(makeNode('MatMul', [finalNormed, w('lm_head.MatMul.weight', [H, V], 1 / Math.sqrt(H))], ['logits'], { name: '/lm_head/MatMul' }));
  data.close();

  const B = 'batch_size';
  const input = [makeValueInfo('inputs_embeds', T, [B, 'sequence_length', H]), makeValueInfo('attention_mask', DataType.INT64, [B, 'total_sequence_length'])];
  const output = [makeValueInfo('logits', T, [B, 'sequence_length', V])];
  for (let i = 0; i < L; i++) {
    for (const kv of ['key', 'value']) {
      input.push(makeValueInfo(`past_key_values.${i}.${kv}`, T, [B, kvH, 'past_sequence_length', hd]));
      output.push(makeValueInfo(`present.${i}.${kv}`, T, [B, kvH, 'total_sequence_length', hd]));
    }
  }
  const model = makeModel(makeGraph('main_graph', { node: nodes, initializer: inits, input, output }), { '': 21, [ms]: 1 }, 10);
  fs.writeFileSync(path.join(onnxDir, 'decoder_model_merged.onnx'), encodeModel(model));
  return { files: data.files };
}

function embeddings(sh: Shape, onnxDir: string): void {
  const data = new DataWriter(onnxDir, 'embed_tokens.onnx_data', sh.dtype);
  const table = data.tensor('model.embed_tokens.weight', [sh.vocab, sh.hidden], 1, 99);
  data.close();
  const T = sh.dtype === 'fp32' ? DataType.FLOAT : DataType.FLOAT16;
  const g = makeGraph('main_graph', {
    node: [makeNode('Gather', ['model.embed_tokens.weight', 'input_ids'], ['inputs_embeds'], { name: '/embed_tokens/Gather' })],
    initializer: [table],
    input: [makeValueInfo('input_ids', DataType.INT64, ['batch_size', 'sequence_length'])],
    output: [makeValueInfo('inputs_embeds', T, ['batch_size', 'sequence_length', sh.hidden])],
  });
  fs.writeFileSync(path.join(onnxDir, 'embed_tokens.onnx'), encodeModel(makeModel(g, { '': 17 }, 8)));
}

function vision(sh: Shape, onnxDir: string): void {
  const H = sh.hidden;
  const n = (IMAGE / PATCH) ** 2;
  const conv = { name: 'vision.patch.weight', dataType: DataType.FLOAT, dims: [H, 3, PATCH, PATCH], rawData: new Uint8Array(Float32Array.from(pool(H * 3 * PATCH * PATCH, 7), (x) => x / Math.sqrt(3 * PATCH * PATCH)).buffer), unknown: [] };
  const g = makeGraph('main_graph', {
    node: [
      makeNode('Conv', ['pixel_values', conv.name], ['patches'], { attrs: { kernel_shape: [PATCH, PATCH], strides: [PATCH, PATCH] } }),
      makeNode('Reshape', ['patches', 'flat_shape'], ['flat']),
      makeNode('Transpose', ['flat'], ['image_features'], { attrs: { perm: [0, 2, 1] } }),
    ],
    initializer: [conv, int64Tensor('flat_shape', [3], [0, H, n])],
    input: [makeValueInfo('pixel_values', DataType.FLOAT, ['batch_size', 3, IMAGE, IMAGE])],
    output: [makeValueInfo('image_features', DataType.FLOAT, ['batch_size', n, H])],
  });
  fs.writeFileSync(path.join(onnxDir, 'vision_encoder.onnx'), encodeModel(makeModel(g, { '': 17 }, 8)));
}

export function generatePackage(shapeName: string, dir: string): void {
  const sh = SHAPES[shapeName];
  if (!sh) throw new Error(`unknown shape ${shapeName}: ${Object.keys(SHAPES).join(', ')}`);
  const tmp = `${dir}.partial`;
  fs.rmSync(tmp, { recursive: true, force: true });
  const onnxDir = path.join(tmp, 'onnx');
  fs.mkdirSync(onnxDir, { recursive: true });
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json', 'processor_config.json']) fs.copyFileSync(path.join(TINY, f), path.join(tmp, f));
  const pre = JSON.parse(fs.readFileSync(path.join(TINY, 'preprocessor_config.json'), 'utf8'));
  pre.size = { shortest_edge: IMAGE };
  pre.crop_size = { height: IMAGE, width: IMAGE };
  fs.writeFileSync(path.join(tmp, 'preprocessor_config.json'), JSON.stringify(pre, null, 2) + '\n');
  const { files } = decoder(sh, onnxDir);
  embeddings(sh, onnxDir);
  vision(sh, onnxDir);
  const cfg = JSON.parse(fs.readFileSync(path.join(TINY, 'config.json'), 'utf8'));
  cfg.image_seq_length = (IMAGE / PATCH) ** 2;
  cfg.vision_config = { ...cfg.vision_config, image_size: IMAGE, patch_size: PATCH };
  cfg.text_config = {
    ...cfg.text_config,
    vocab_size: sh.vocab,
    hidden_size: sh.hidden,
    intermediate_size: sh.intermediate,
    num_hidden_layers: sh.layers,
    num_attention_heads: sh.heads,
    num_key_value_heads: sh.kvHeads,
    head_dim: sh.headDim,
    max_position_embeddings: MAX_POS,
    torch_dtype: sh.dtype === 'fp32' ? 'float32' : 'float16',
  };
  cfg['transformers.js_config'] = { dtype: sh.dtype, use_external_data_format: { 'decoder_model_merged.onnx': files.length, 'embed_tokens.onnx': 1 } };
  fs.writeFileSync(path.join(tmp, 'config.json'), JSON.stringify(cfg, null, 2) + '\n');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(tmp, dir);
}

if (require.main === module) {
  const [shape, dir] = process.argv.slice(2);
  if (!shape || !dir) {
    console.error('usage: node out/bench/genPackage.js qwen2-0.5b|llama2-7b <out dir>');
    process.exit(2);
  }
  const t0 = performance.now();
  generatePackage(shape, path.resolve(dir));
  console.log(`wrote ${dir} in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
}
