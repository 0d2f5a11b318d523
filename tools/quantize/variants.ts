// Makes dtype variants of an fp32 decoder the way transformers.js packages ship them, with
// the project's own codec (no Python quantiser is available offline):
// - q4: every MatMul with a constant 2-D weight becomes com.microsoft MatMulNBits (4 bits,
//   block 32 along K, symmetric: no zero points, as onnxruntime's default block quantiser);
// - fp16: every float tensor inside the graph in float16, graph inputs and outputs kept
//   float32 through Casts (so the fp32 embeddings and vision encoder feed it unchanged);
//   onnxruntime's CPU provider casts around the few operators it has no float16 kernel for.
// Used by the tests and by `node out/tools/quantize/cli.js`.

import { makeAttr, makeNode } from '../../src/engine/onnx/builder';
import { bytesToFloat32, float32ToBytes, OnnxFile } from '../../src/engine/onnx/onnxFile';
import { DataType, GraphProto, ModelProto, NodeProto, TensorProto } from '../../src/engine/onnx/proto';
import { quantNBits } from '../../src/engine/onnx/quantCodecs';

export interface Q4Options {
  blockSize?: number;
  bits?: number;
  zeroPoints?: boolean;
}

function floatValues(file: OnnxFile, t: TensorProto): Float64Array {
  return file.tensorFloat64(t);
}

/** The decoder with its constant-weight MatMuls as MatMulNBits. */
export function toQ4(file: OnnxFile, o: Q4Options = {}): ModelProto {
  const bits = o.bits ?? 4;
  const blockSize = o.blockSize ?? 32;
  const g = file.graph;
  const inits = file.initializerMap();
  const initializer: TensorProto[] = [];
  const replaced = new Set<string>();
  const node: NodeProto[] = [];
  const users = new Map<string, number>();
  for (const n of g.node) for (const i of n.input) users.set(i, (users.get(i) ?? 0) + 1);
  for (const n of g.node) {
    const w = n.opType === 'MatMul' ? inits.get(n.input[1]) : undefined;
    if (!w || w.dims.length !== 2 || w.dataType !== DataType.FLOAT) {
      node.push(n);
      continue;
    }
    const [K, N] = w.dims;
    const q = quantNBits({ K, N, bits, blockSize }, floatValues(file, w), o.zeroPoints ?? false);
    const kBlocks = Math.ceil(K / blockSize);
    const base = w.name;
    initializer.push({ name: `${base}_Q${bits}`, dataType: DataType.UINT8, dims: [N, kBlocks, (blockSize * bits) / 8], rawData: q.packed, unknown: [] });
    initializer.push({ name: `${base}_scales`, dataType: DataType.FLOAT, dims: [N, kBlocks], rawData: float32ToBytes(q.scales, DataType.FLOAT), unknown: [] });
    const inputs = [n.input[0], `${base}_Q${bits}`, `${base}_scales`];
    if (q.zeroPoints) {
      initializer.push({ name: `${base}_zero_points`, dataType: DataType.UINT8, dims: [N, Math.ceil((kBlocks * bits) / 8)], rawData: q.zeroPoints, unknown: [] });
      inputs.push(`${base}_zero_points`);
    }
    if ((users.get(w.name) ?? 0) <= 1) replaced.add(w.name);
    node.push(makeNode('MatMulNBits', inputs, n.output, { name: n.name ? `${n.name}_Q${bits}` : '', domain: 'com.microsoft', attrs: { K, N, bits, block_size: blockSize } }));
  }
  const graph: GraphProto = { ...g, node, initializer: [...g.initializer.filter((t) => !replaced.has(t.name)), ...initializer] };
  return withOpset({ ...file.model, graph }, 'com.microsoft', 1);
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
