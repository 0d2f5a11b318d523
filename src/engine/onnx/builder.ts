// Small constructors for ONNX messages: used by graph surgery (new outputs, rewired nodes)
// and by the synthetic fixture models.

import { AttributeProto, DataType, Dim, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto } from './proto';
import { float32ToBytes } from './onnxFile';
import { textEncoder } from './wire';

export const enum AttrType {
  FLOAT = 1,
  INT = 2,
  STRING = 3,
  TENSOR = 4,
  GRAPH = 5,
  FLOATS = 6,
  INTS = 7,
  STRINGS = 8,
}

export type AttrValue = number | bigint | string | number[] | TensorProto | { float: number } | { ints: number[] };

export function makeAttr(name: string, v: AttrValue): AttributeProto {
  if (typeof v === 'string') return { name, type: AttrType.STRING, s: textEncoder.encode(v), unknown: [] };
  if (typeof v === 'bigint') return { name, type: AttrType.INT, i: v, unknown: [] };
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) return { name, type: AttrType.FLOAT, f: v, unknown: [] };
    return { name, type: AttrType.INT, i: BigInt(v), unknown: [] };
  }
  if (Array.isArray(v)) {
    if (v.every(Number.isInteger)) return { name, type: AttrType.INTS, ints: v.map(BigInt), unknown: [] };
    return { name, type: AttrType.FLOATS, floats: v, unknown: [] };
  }
  if ('float' in v) return { name, type: AttrType.FLOAT, f: v.float, unknown: [] };
  if ('ints' in v) return { name, type: AttrType.INTS, ints: v.ints.map(BigInt), unknown: [] };
  return { name, type: AttrType.TENSOR, t: v, unknown: [] };
}

export function makeNode(
  opType: string,
  input: string[],
  output: string[],
  opts: { name?: string; domain?: string; attrs?: Record<string, AttrValue> } = {},
): NodeProto {
  return {
    opType,
    input,
    output,
    name: opts.name ?? '',
    domain: opts.domain ?? '',
    attribute: Object.entries(opts.attrs ?? {}).map(([k, v]) => makeAttr(k, v)),
    unknown: [],
  };
}

export function makeValueInfo(name: string, elemType: number, shape: Array<number | string | undefined>): ValueInfoProto {
  const dims: Dim[] = shape.map((d) => (typeof d === 'number' ? { value: d } : typeof d === 'string' ? { param: d } : {}));
  return { name, elemType, shape: dims, unknown: [] };
}

export function floatTensor(name: string, dims: number[], data: ArrayLike<number>, dataType: number = DataType.FLOAT): TensorProto {
  const arr = data instanceof Float32Array || data instanceof Float64Array ? data : Float32Array.from(data);
  return { name, dataType, dims, rawData: float32ToBytes(arr, dataType), unknown: [] };
}

export function int64Tensor(name: string, dims: number[], data: ArrayLike<number | bigint>): TensorProto {
  const b = BigInt64Array.from(Array.from(data, (x) => BigInt(x)));
  return { name, dataType: DataType.INT64, dims, rawData: new Uint8Array(b.buffer), unknown: [] };
}

export function int32Tensor(name: string, dims: number[], data: ArrayLike<number>): TensorProto {
  return { name, dataType: DataType.INT32, dims, rawData: new Uint8Array(Int32Array.from(data).buffer), unknown: [] };
}

export function makeGraph(name: string, parts: Partial<GraphProto> = {}): GraphProto {
  return { name, node: [], initializer: [], input: [], output: [], valueInfo: [], unknown: [], ...parts };
}

export function makeModel(graph: GraphProto, opsets: Record<string, number> = { '': 17 }, irVersion = 8): ModelProto {
  return {
    irVersion,
    opsetImport: Object.entries(opsets).map(([domain, version]) => ({ domain, version })),
    graph,
    unknown: [],
  };
}
