// The linear layers of each decoder layer, whatever way their weights are stored: a float
// initializer (fp32/fp16/bf16, possibly behind a Cast or Transpose), com.microsoft
// MatMulNBits (q4, q4f16), DequantizeLinear + MatMul (QDQ int8/uint8), MatMulInteger after
// DynamicQuantizeLinear (dynamic int8/uint8, transformers.js' `quantized`), MatMulBnb4.
// Variants of one model name their weights differently (`onnx::MatMul_4153`, `..._Q4`,
// `..._quantized`), so a weight is identified by its place: layer, block (attention or MLP)
// and position among the block's linear nodes in graph order. Reading gives a float64
// [K, N] matrix; writing re-encodes a matrix in the weight's own scheme.

import { bytesToFloat32, float32ToBytes, OnnxFile } from '../onnx/onnxFile';
import { attrInt, DataType, GraphProto, NodeProto, TensorProto } from '../onnx/proto';
import { Bnb4Layout, dequantBnb4, dequantLinear, dequantNBits, inferLinearScheme, NBitsLayout, quantBnb4, quantLinear, quantNBits } from '../onnx/quantCodecs';
import { GraphIndex } from './graphIndex';
import { DecoderStructure, LayerInfo } from './layers';

export type WeightScheme = 'float' | 'nbits' | 'qdq' | 'integer' | 'bnb4';

export interface LinearWeight {
  node: NodeProto;
  scheme: WeightScheme;
  /** Inputs and outputs of the matrix product. */
  K: number;
  N: number;
  /** The initializer a WeightRef names for this node (the float, packed or int8 weight). */
  key: string;
  /** Float weights: stored [N, K] (Gemm transB, or an initializer behind a Transpose). */
  transposed?: boolean;
  scales?: string;
  zeroPoints?: string;
  /** DequantizeLinear / per-channel axis of the scale (normalised to 0 or 1). */
  axis?: number;
}

export interface LayerLinears {
  attn: LinearWeight[];
  mlp: LinearWeight[];
}

const FLOATS = new Set<number>([DataType.FLOAT, DataType.FLOAT16, DataType.BFLOAT16, DataType.DOUBLE]);

function isFloat(t: TensorProto): boolean {
  return FLOATS.has(t.dataType === DataType.UNDEFINED ? DataType.FLOAT : t.dataType);
}

/** How the weight of a linear node is stored, or undefined when the node has no constant weight. */
export function describeLinear(idx: GraphIndex, inits: Map<string, TensorProto>, n: NodeProto): LinearWeight | undefined {
  const init = (name: string | undefined) => (name ? inits.get(name) : undefined);
  if (n.opType === 'MatMulNBits') {
    const b = init(n.input[1]);
    if (!b) return undefined;
    return {
      node: n, scheme: 'nbits', K: attrInt(n, 'K')!, N: attrInt(n, 'N')!, key: b.name,
      scales: n.input[2], zeroPoints: n.input[3] || undefined,
    };
  }
  if (n.opType === 'MatMulBnb4') {
    const b = init(n.input[1]);
    return b ? { node: n, scheme: 'bnb4', K: attrInt(n, 'K')!, N: attrInt(n, 'N')!, key: b.name, scales: n.input[2] } : undefined;
  }
  if (n.opType === 'MatMulInteger') {
    const w = init(n.input[1]);
    if (!w || w.dims.length !== 2) return undefined;
    // The float result is Cast(MatMulInteger) * (input scale * weight scale).
    const cast = idx.consumersOf(n.output[0]).find((c) => c.opType === 'Cast');
    const mul = cast && idx.consumersOf(cast.output[0]).find((c) => c.opType === 'Mul');
    const scaleMul = mul && mul.input.map((i) => idx.producer.get(i)).find((p) => p?.opType === 'Mul');
    const scales = scaleMul?.input.find((i) => inits.has(i));
    const s = init(scales);
    return {
      node: n, scheme: 'integer', K: w.dims[0], N: w.dims[1], key: w.name, scales,
      zeroPoints: n.input[3] || undefined, axis: s && s.dims.length === 1 && s.dims[0] > 1 ? 1 : undefined,
    };
  }
  if (n.opType !== 'MatMul' && n.opType !== 'Gemm' && n.opType !== 'FusedMatMul') return undefined;
  const wName = n.input[1];
  const direct = init(wName);
  const transB = (n.opType === 'Gemm' && attrInt(n, 'transB') === 1) || (n.opType === 'FusedMatMul' && attrInt(n, 'transB') === 1);
  if (direct) {
    if (!isFloat(direct) || direct.dims.length !== 2) return undefined;
    const [r, c] = direct.dims;
    return { node: n, scheme: 'float', K: transB ? c : r, N: transB ? r : c, key: direct.name, transposed: transB };
  }
  const p = idx.producer.get(wName);
  if (!p) return undefined;
  const src = init(p.input[0]);
  if (!src || src.dims.length !== 2) return undefined;
  const [r, c] = src.dims;
  if (p.opType === 'Cast' && isFloat(src)) return { node: n, scheme: 'float', K: transB ? c : r, N: transB ? r : c, key: src.name, transposed: transB };
  if (p.opType === 'Transpose' && isFloat(src) && !transB) return { node: n, scheme: 'float', K: c, N: r, key: src.name, transposed: true };
  if (p.opType === 'DequantizeLinear' && !transB) {
    const s = init(p.input[1]);
    if (!s) return undefined;
    const perAxis = s.dims.length === 1 && s.dims[0] > 1;
    let axis: number | undefined;
    if (perAxis) {
      axis = attrInt(p, 'axis', 1)!;
      if (axis < 0) axis += 2;
    }
    if (s.dims.length > 1 || attrInt(p, 'block_size', 0)) return undefined; // blocked QDQ: not handled
    return { node: n, scheme: 'qdq', K: r, N: c, key: src.name, scales: p.input[1], zeroPoints: p.input[2] || undefined, axis };
  }
  return undefined;
}

/** The residual branch a step (Add or Skip*Norm) adds into the stream `streamIn`. */
function branchOf(step: NodeProto, streamIn: string): string {
  return step.input[0] === streamIn ? step.input[1] : step.input[0];
}

/** Every layer's linear nodes with constant weights, per block, in graph order. */
export function layerLinears(graph: GraphProto, s: DecoderStructure, inits: Map<string, TensorProto>): LayerLinears[] {
  const idx = new GraphIndex(graph);
  const order = new Map(graph.node.map((n, i) => [n, i]));
  const block = (l: LayerInfo, step: NodeProto, streamIn: string): LinearWeight[] => {
    const before = idx.ancestors([streamIn]);
    const nodes = [...idx.ancestors([branchOf(step, streamIn)])].filter((n) => !before.has(n));
    nodes.sort((a, b) => order.get(a)! - order.get(b)!);
    return nodes.map((n) => describeLinear(idx, inits, n)).filter((w): w is LinearWeight => w !== undefined);
  };
  return s.layers.map((l) => ({ attn: block(l, l.attnStep, l.residualIn), mlp: block(l, l.mlpStep, l.residualMid) }));
}

export interface WeightPlace {
  layer: number;
  block: 'attn' | 'mlp';
  position: number;
}

/** Where each weight (by the initializer name a WeightRef gives) sits. */
export function weightPlaces(linears: LayerLinears[]): Map<string, WeightPlace & { weight: LinearWeight }> {
  const m = new Map<string, WeightPlace & { weight: LinearWeight }>();
  linears.forEach((l, layer) => {
    for (const block of ['attn', 'mlp'] as const) l[block].forEach((w, position) => m.set(w.key, { layer, block, position, weight: w }));
  });
  return m;
}

function ints(file: OnnxFile, t: TensorProto): Int32Array {
  const b = file.tensorBytes(t);
  if (t.dataType === DataType.INT8) return Int32Array.from(new Int8Array(b.buffer, b.byteOffset, b.length));
  if (t.dataType === DataType.UINT8) return Int32Array.from(b);
  throw new Error(`tensor ${t.name}: expected int8 or uint8, got data type ${t.dataType}`);
}

function tensorOf(file: OnnxFile, name: string): TensorProto {
  const t = file.initializerMap().get(name);
  if (!t) throw new Error(`initializer ${name} not found in ${file.filePath}`);
  return t;
}

function nbitsLayout(w: LinearWeight): NBitsLayout {
  return { K: w.K, N: w.N, bits: attrInt(w.node, 'bits', 4)!, blockSize: attrInt(w.node, 'block_size')! };
}

/** The weight as a float64 [K, N] matrix (dequantised when quantised). */
export function readLinear(file: OnnxFile, w: LinearWeight): Float64Array {
  const t = tensorOf(file, w.key);
  switch (w.scheme) {
    case 'float': {
      const v = file.tensorFloat64(t);
      return w.transposed ? transpose(v, w.N, w.K) : v;
    }
    case 'nbits': {
      const zpT = w.zeroPoints ? tensorOf(file, w.zeroPoints) : undefined;
      return dequantNBits(nbitsLayout(w), {
        packed: file.tensorBytes(t),
        scales: file.tensorFloat64(tensorOf(file, w.scales!)),
        zeroPoints: zpT && zpT.dataType === DataType.UINT8 ? file.tensorBytes(zpT) : undefined,
        floatZeroPoints: zpT && zpT.dataType !== DataType.UINT8 ? file.tensorFloat64(zpT) : undefined,
      });
    }
    case 'qdq':
    case 'integer': {
      const zp = w.zeroPoints ? ints(file, tensorOf(file, w.zeroPoints)) : undefined;
      if (!w.scales) throw new Error(`${w.node.name || w.node.opType}: the weight's scale was not found`);
      return dequantLinear(ints(file, t), w.K, w.N, file.tensorFloat64(tensorOf(file, w.scales)), zp, w.axis);
    }
    case 'bnb4':
      return dequantBnb4(bnb4Layout(w), file.tensorBytes(t), file.tensorFloat64(tensorOf(file, w.scales!)));
  }
}

function bnb4Layout(w: LinearWeight): Bnb4Layout {
  return { K: w.K, N: w.N, blockSize: attrInt(w.node, 'block_size')!, quantType: attrInt(w.node, 'quant_type', 0)! };
}

export function transpose(v: Float64Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(v.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = v[r * cols + c];
  return out;
}

/** Rounds a value to what a tensor of `dataType` stores (a scale is used as the runtime reads it). */
function roundTo(dataType: number): (x: number) => number {
  if (dataType === DataType.DOUBLE) return (x) => x;
  return (x) => bytesToFloat32(float32ToBytes(Float64Array.of(x), dataType), dataType)[0];
}

function withBytes(t: TensorProto, rawData: Uint8Array): TensorProto {
  return { name: t.name, dataType: t.dataType, dims: [...t.dims], rawData, unknown: t.unknown };
}

function intBytes(v: Int32Array, dataType: number): Uint8Array {
  return dataType === DataType.INT8 ? new Uint8Array(Int8Array.from(v).buffer) : Uint8Array.from(v);
}

export class NotRequantisable extends Error {}

/**
 * New contents of the tensors holding the weight, encoding the [K, N] matrix `W` with the
 * weight's own scheme (same data types, block size, granularity, symmetric or not).
 * Throws NotRequantisable for a scheme that cannot be written faithfully.
 */
export function encodeLinear(file: OnnxFile, w: LinearWeight, W: Float64Array): TensorProto[] {
  if (W.length !== w.K * w.N) throw new Error(`replacement has ${W.length} values, expected ${w.K} x ${w.N}`);
  const t = tensorOf(file, w.key);
  switch (w.scheme) {
    case 'float': {
      const v = w.transposed ? transpose(W, w.K, w.N) : W;
      return [withBytes(t, float32ToBytes(v, t.dataType === DataType.UNDEFINED ? DataType.FLOAT : t.dataType))];
    }
    case 'nbits': {
      const sT = tensorOf(file, w.scales!);
      const zpT = w.zeroPoints ? tensorOf(file, w.zeroPoints) : undefined;
      if (zpT && zpT.dataType !== DataType.UINT8) throw new NotRequantisable('MatMulNBits with float zero points');
      const q = quantNBits(nbitsLayout(w), W, zpT !== undefined, roundTo(sT.dataType));
      const out = [withBytes(t, q.packed), withBytes(sT, float32ToBytes(q.scales, sT.dataType))];
      if (zpT) out.push(withBytes(zpT, q.zeroPoints!));
      return out;
    }
    case 'qdq':
    case 'integer': {
      if (!w.scales) throw new NotRequantisable('the weight scale was not found');
      const sT = tensorOf(file, w.scales);
      const zpT = w.zeroPoints ? tensorOf(file, w.zeroPoints) : undefined;
      const oldQ = ints(file, t);
      const scheme = inferLinearScheme(oldQ, zpT ? ints(file, zpT) : undefined, t.dataType === DataType.INT8, w.axis);
      if (!zpT && !scheme.symmetric) throw new NotRequantisable('asymmetric weights without zero points');
      const q = quantLinear(W, w.K, w.N, scheme, roundTo(sT.dataType));
      const out = [withBytes(t, intBytes(q.q, t.dataType)), withBytes(sT, float32ToBytes(q.scale, sT.dataType))];
      if (zpT) out.push(withBytes(zpT, intBytes(q.zp, zpT.dataType)));
      return out;
    }
    case 'bnb4': {
      const aT = tensorOf(file, w.scales!);
      const q = quantBnb4(bnb4Layout(w), W, roundTo(aT.dataType));
      return [withBytes(t, q.packed), withBytes(aT, float32ToBytes(q.absmax, aT.dataType))];
    }
  }
}

/** Whether the weight's tensors feed only this weight (re-encoding them changes nothing else). */
export function exclusiveTensors(idx: GraphIndex, w: LinearWeight): boolean {
  return [w.key, w.scales, w.zeroPoints].every((t) => !t || idx.consumersOf(t).length === 1);
}

/**
 * Orientation of the values a replacement map holds for this weight, as WeightRef.inOut
 * says: [K, N], except a float weight stored transposed and a MatMulNBits weight ([N, K]).
 */
export function storedAsNK(w: LinearWeight): boolean {
  return w.scheme === 'nbits' || (w.scheme === 'float' && w.transposed === true);
}

/** The linear weight whose WeightRef name is `key`, looked up in the whole graph. */
export function linearByKey(file: OnnxFile, key: string): LinearWeight | undefined {
  const idx = new GraphIndex(file.graph);
  const inits = file.initializerMap();
  const via = idx.consumersOf(key).flatMap((c) => (['Cast', 'Transpose', 'DequantizeLinear'].includes(c.opType) ? idx.consumersOf(c.output[0]) : [c]));
  for (const n of via) {
    const w = describeLinear(idx, inits, n);
    if (w?.key === key) return w;
  }
  return undefined;
}

/**
 * A weight as the matrix SCP and the replacement map work with ([K, N], or [N, K] where
 * storedAsNK), dequantised to float64 when stored quantised.
 */
export function readWeightMatrix(file: OnnxFile, key: string): { data: Float64Array; rows: number; cols: number } {
  const w = linearByKey(file, key);
  if (!w) {
    const t = tensorOf(file, key);
    if (!isFloat(t) || t.dims.length !== 2) throw new Error(`weight ${key} (data type ${t.dataType}, shape [${t.dims}]) is neither a float matrix nor a weight of a known quantised linear node`);
    return { data: file.tensorFloat64(t), rows: t.dims[0], cols: t.dims[1] };
  }
  const kn = readLinear(file, w);
  return storedAsNK(w) ? { data: transpose(kn, w.K, w.N), rows: w.N, cols: w.K } : { data: kn, rows: w.K, cols: w.N };
}
