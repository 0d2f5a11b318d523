// Makes dtype variants of an fp32 decoder the way transformers.js packages ship them, with
// the project's own codec (no Python quantiser is available offline):
// - q4: every MatMul with a constant 2-D weight becomes com.microsoft MatMulNBits (4 bits,
//   block 32 along K, symmetric: no zero points, as onnxruntime's default block quantiser);
// - fp16: every float tensor inside the graph in float16, graph inputs and outputs kept
//   float32 through Casts (so the fp32 embeddings and vision encoder feed it unchanged);
//   onnxruntime's CPU provider casts around the few operators it has no float16 kernel for.
// - q4f16: q4 applied to the fp16 decoder (fp16 scales);
// - quantized / int8 / uint8: dynamic 8-bit quantisation (MatMulInteger), or for int8 on
//   request weight-only QDQ (DequantizeLinear per channel + MatMul);
// - bnb4: MatMulBnb4 (NF4, block 64).
// Used by the tests and by `node out/tools/quantize/cli.js`.

import { makeAttr, makeNode } from '../../src/engine/onnx/builder';
import { bytesToFloat32, float32ToBytes, OnnxFile } from '../../src/engine/onnx/onnxFile';
import { DataType, GraphProto, ModelProto, NodeProto, TensorProto } from '../../src/engine/onnx/proto';
import { quantBnb4, quantLinear, quantNBits } from '../../src/engine/onnx/quantCodecs';

export interface Q4Options {
  blockSize?: number;
  bits?: number;
  zeroPoints?: boolean;
}

interface Rewrite {
  nodes: NodeProto[];
  initializers: TensorProto[];
}

/**
 * Replaces every MatMul whose weight is a constant 2-D float matrix with what `rewrite`
 * returns for it (the [K, N] values in float64); weights used elsewhere are kept too.
 */
function rewriteMatMuls(file: OnnxFile, model: ModelProto, rewrite: (n: NodeProto, w: TensorProto, W: Float64Array) => Rewrite): ModelProto {
  const g = model.graph;
  const inits = new Map(g.initializer.map((t) => [t.name, t]));
  const read = (t: TensorProto) => (t.rawData ? Float64Array.from(bytesToFloat32(t.rawData, t.dataType)) : file.tensorFloat64(t));
  const added: TensorProto[] = [];
  const node: NodeProto[] = [];
  const users = new Map<string, number>();
  for (const n of g.node) for (const i of n.input) users.set(i, (users.get(i) ?? 0) + 1);
  const replaced = new Set<string>();
  for (const n of g.node) {
    const w = n.opType === 'MatMul' ? inits.get(n.input[1]) : undefined;
    if (!w || w.dims.length !== 2 || (w.dataType !== DataType.FLOAT && w.dataType !== DataType.FLOAT16)) {
      node.push(n);
      continue;
    }
    const r = rewrite(n, w, read(w));
    node.push(...r.nodes);
    added.push(...r.initializers);
    if ((users.get(w.name) ?? 0) <= 1) replaced.add(w.name);
  }
  const graph: GraphProto = { ...g, node, initializer: [...g.initializer.filter((t) => !replaced.has(t.name)), ...added] };
  return withOpset({ ...model, graph }, 'com.microsoft', 1);
}

/**
 * Constant-weight MatMuls as MatMulNBits; scales in the weight's float type (so an fp16
 * model gives q4f16).
 */
export function toQ4(file: OnnxFile, o: Q4Options = {}, model: ModelProto = file.model): ModelProto {
  const bits = o.bits ?? 4;
  const blockSize = o.blockSize ?? 32;
  return rewriteMatMuls(file, model, (n, w, W) => {
    const [K, N] = w.dims;
    const round = (x: number) => bytesToFloat32(float32ToBytes(Float64Array.of(x), w.dataType), w.dataType)[0];
    const q = quantNBits({ K, N, bits, blockSize }, W, o.zeroPoints ?? false, round);
    const kBlocks = Math.ceil(K / blockSize);
    const base = w.name;
    const initializers: TensorProto[] = [
      { name: `${base}_Q${bits}`, dataType: DataType.UINT8, dims: [N, kBlocks, (blockSize * bits) / 8], rawData: q.packed, unknown: [] },
      { name: `${base}_scales`, dataType: w.dataType, dims: [N, kBlocks], rawData: float32ToBytes(q.scales, w.dataType), unknown: [] },
    ];
    const inputs = [n.input[0], `${base}_Q${bits}`, `${base}_scales`];
    if (q.zeroPoints) {
      initializers.push({ name: `${base}_zero_points`, dataType: DataType.UINT8, dims: [N, Math.ceil((kBlocks * bits) / 8)], rawData: q.zeroPoints, unknown: [] });
      inputs.push(`${base}_zero_points`);
    }
    return { nodes: [makeNode('MatMulNBits', inputs, n.output, { name: n.name ? `${n.name}_Q${bits}` : '', domain: 'com.microsoft', attrs: { K, N, bits, block_size: blockSize } })], initializers };
  });
}

/** Constant-weight MatMuls as MatMulBnb4 (NF4 by default, block 64 as bitsandbytes uses). */
export function toBnb4(file: OnnxFile, o: { blockSize?: number; nf4?: boolean } = {}): ModelProto {
  const blockSize = o.blockSize ?? 64;
  const quantType = o.nf4 === false ? 0 : 1;
  return rewriteMatMuls(file, file.model, (n, w, W) => {
    const [K, N] = w.dims;
    const q = quantBnb4({ K, N, blockSize, quantType }, W);
    return {
      nodes: [makeNode('MatMulBnb4', [n.input[0], `${w.name}_Bnb4`, `${w.name}_absmax`], n.output, { name: n.name ? `${n.name}_Bnb4` : '', domain: 'com.microsoft', attrs: { K, N, block_size: blockSize, quant_type: quantType } })],
      initializers: [
        { name: `${w.name}_Bnb4`, dataType: DataType.UINT8, dims: [q.packed.length], rawData: q.packed, unknown: [] },
        { name: `${w.name}_absmax`, dataType: DataType.FLOAT, dims: [q.absmax.length], rawData: float32ToBytes(q.absmax, DataType.FLOAT), unknown: [] },
      ],
    };
  });
}

/**
 * Dynamic quantisation as onnxruntime's quantize_dynamic writes it (transformers.js'
 * `quantized` / `int8` / `uint8`): the activation through DynamicQuantizeLinear, the weight
 * int8 symmetric or uint8 asymmetric per tensor, MatMulInteger, Cast, and a Mul by the
 * product of both scales.
 */
export function toDynamicInt8(file: OnnxFile, o: { signed?: boolean } = {}): ModelProto {
  const signed = o.signed ?? true;
  const dt = signed ? DataType.INT8 : DataType.UINT8;
  const scheme = signed ? { signed, symmetric: true, qmin: -127, qmax: 127 } : { signed, symmetric: false, qmin: 0, qmax: 255 };
  const quantizedInputs = new Map<string, string>();
  return rewriteMatMuls(file, file.model, (n, w, W) => {
    const [K, N] = w.dims;
    const q = quantLinear(W, K, N, scheme);
    const bytes = (v: Int32Array) => (signed ? new Uint8Array(Int8Array.from(v).buffer) : Uint8Array.from(v));
    const x = n.input[0];
    const nodes: NodeProto[] = [];
    if (!quantizedInputs.has(x)) {
      quantizedInputs.set(x, x);
      nodes.push(makeNode('DynamicQuantizeLinear', [x], [`${x}_quantized`, `${x}_scale`, `${x}_zero_point`], { name: `${x}_QuantizeLinear` }));
    }
    const y = n.output[0];
    nodes.push(
      makeNode('MatMulInteger', [`${x}_quantized`, `${w.name}_quantized`, `${x}_zero_point`, `${w.name}_zero_point`], [`${y}_output_quantized`], { name: `${n.name || y}_quant` }),
      makeNode('Mul', [`${x}_scale`, `${w.name}_scale`], [`${y}_scales_mul`], { name: `${n.name || y}_scales_mul` }),
      makeNode('Cast', [`${y}_output_quantized`], [`${y}_output_quantized_cast`], { name: `${n.name || y}_cast`, attrs: { to: DataType.FLOAT } }),
      makeNode('Mul', [`${y}_output_quantized_cast`, `${y}_scales_mul`], [y], { name: `${n.name || y}_output_scale_mul` }),
    );
    return {
      nodes,
      initializers: [
        { name: `${w.name}_quantized`, dataType: dt, dims: [K, N], rawData: bytes(q.q), unknown: [] },
        { name: `${w.name}_scale`, dataType: DataType.FLOAT, dims: [], rawData: float32ToBytes(q.scale, DataType.FLOAT), unknown: [] },
        { name: `${w.name}_zero_point`, dataType: dt, dims: [], rawData: bytes(q.zp), unknown: [] },
      ],
    };
  });
}

/**
 * Weight-only QDQ as onnxruntime's static quantiser writes weights: int8, symmetric, one
 * scale per output channel, DequantizeLinear(axis 1) feeding the MatMul.
 */
export function toQdqInt8(file: OnnxFile): ModelProto {
  return rewriteMatMuls(file, file.model, (n, w, W) => {
    const [K, N] = w.dims;
    const q = quantLinear(W, K, N, { signed: true, axis: 1, symmetric: true, qmin: -127, qmax: 127 });
    const deq = `${w.name}_DequantizeLinear_Output`;
    return {
      nodes: [makeNode('DequantizeLinear', [`${w.name}_quantized`, `${w.name}_scale`, `${w.name}_zero_point`], [deq], { name: `${w.name}_DequantizeLinear`, attrs: { axis: 1 } }), { ...n, input: [n.input[0], deq] }],
      initializers: [
        { name: `${w.name}_quantized`, dataType: DataType.INT8, dims: [K, N], rawData: new Uint8Array(Int8Array.from(q.q).buffer), unknown: [] },
        { name: `${w.name}_scale`, dataType: DataType.FLOAT, dims: [N], rawData: float32ToBytes(q.scale, DataType.FLOAT), unknown: [] },
        { name: `${w.name}_zero_point`, dataType: DataType.INT8, dims: [N], rawData: new Uint8Array(Int8Array.from(q.zp).buffer), unknown: [] },
      ],
    };
  });
}

function withOpset(m: ModelProto, domain: string, version: number): ModelProto {
  if (m.opsetImport.some((o) => o.domain === domain)) return m;
  return { ...m, opsetImport: [...m.opsetImport, { domain, version }] };
}

/** Values outside float16's range become its largest finite value, as float16 converters do. */
const FP16_MAX = 65504;

function toHalfTensor(t: TensorProto, values: Float32Array): TensorProto {
  const v = values.map((x) => (x > FP16_MAX ? FP16_MAX : x < -FP16_MAX ? -FP16_MAX : x));
  return { name: t.name, dataType: DataType.FLOAT16, dims: [...t.dims], rawData: float32ToBytes(v, DataType.FLOAT16), unknown: t.unknown };
}

/** The decoder in float16 inside, float32 at its inputs and outputs. */
export function toFp16(file: OnnxFile): ModelProto {
  const g = file.graph;
  const isFloatInit = (t: TensorProto) => t.dataType === DataType.FLOAT;
  const floatTensors = new Set<string>();
  for (const t of g.initializer) if (isFloatInit(t)) floatTensors.add(t.name);
  const initializer = g.initializer.map((t) => (isFloatInit(t) ? toHalfTensor(t, file.tensorFloat32(t)) : t));
  const node: NodeProto[] = [];
  const rename = new Map<string, string>();
  // Float graph inputs: cast to float16 once, consumers read the cast.
  for (const v of g.input) {
    if (v.elemType !== DataType.FLOAT || floatTensors.has(v.name)) continue;
    rename.set(v.name, `${v.name}_fp16`);
    node.push(makeNode('Cast', [v.name], [`${v.name}_fp16`], { name: `${v.name}_cast_fp16`, attrs: { to: DataType.FLOAT16 } }));
  }
  const outputs = new Set(g.output.filter((v) => v.elemType === DataType.FLOAT).map((v) => v.name));
  for (const n0 of g.node) {
    const n: NodeProto = { ...n0, input: n0.input.map((i) => rename.get(i) ?? i), output: [...n0.output], attribute: n0.attribute.map((a) => ({ ...a })) };
    for (const a of n.attribute) {
      if (a.t && a.t.dataType === DataType.FLOAT) a.t = toHalfTensor(a.t, bytesToFloat32(a.t.rawData ?? new Uint8Array(Float32Array.from(a.t.floatData ?? []).buffer), DataType.FLOAT));
    }
    if (n.opType === 'Cast') {
      const to = n.attribute.find((a) => a.name === 'to');
      if (to && to.i === BigInt(DataType.FLOAT)) n.attribute = n.attribute.map((a) => (a.name === 'to' ? makeAttr('to', DataType.FLOAT16) : a));
    }
    node.push(n);
  }
  // Float outputs: the last producer writes `<name>_fp16`, a Cast restores float32 under the output's name.
  for (const o of outputs) {
    const p = node.find((n) => n.output.includes(o));
    if (!p) continue;
    p.output = p.output.map((x) => (x === o ? `${o}_fp16` : x));
    for (const n of node) if (n !== p) n.input = n.input.map((x) => (x === o ? `${o}_fp16` : x));
    node.push(makeNode('Cast', [`${o}_fp16`], [o], { name: `${o}_cast_fp32`, attrs: { to: DataType.FLOAT } }));
  }
  const graph: GraphProto = { ...g, node, initializer, valueInfo: [] };
  return { ...file.model, graph };
}
