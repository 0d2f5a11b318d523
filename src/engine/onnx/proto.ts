// ONNX messages the engine needs to understand (model, graph, node, attribute, tensor,
// value info), decoded from and encoded to the protobuf wire format. Every field this
// module does not model is kept as raw bytes in `unknown` and written back unchanged,
// so a read-write round trip loses nothing (doc strings, metadata, training info, ...).

import { OnnxFormatError, WireReader, WireType, WireWriter } from './wire';

export type Unknown = Uint8Array[];

export const enum DataType {
  UNDEFINED = 0,
  FLOAT = 1,
  UINT8 = 2,
  INT8 = 3,
  UINT16 = 4,
  INT16 = 5,
  INT32 = 6,
  INT64 = 7,
  STRING = 8,
  BOOL = 9,
  FLOAT16 = 10,
  DOUBLE = 11,
  UINT32 = 12,
  UINT64 = 13,
  BFLOAT16 = 16,
}

export const DATA_TYPE_NAMES: Record<number, string> = {
  1: 'float32', 2: 'uint8', 3: 'int8', 4: 'uint16', 5: 'int16', 6: 'int32', 7: 'int64', 8: 'string',
  9: 'bool', 10: 'float16', 11: 'float64', 12: 'uint32', 13: 'uint64', 16: 'bfloat16',
  21: 'uint4', 22: 'int4',
};

/** Bytes per element; 0.5 for 4-bit types, undefined for strings and unknown types. */
export function elementSize(dt: number): number | undefined {
  switch (dt) {
    case 1: case 6: case 12: return 4;
    case 2: case 3: case 9: return 1;
    case 4: case 5: case 10: case 16: return 2;
    case 7: case 11: case 13: case 14: return 8;
    case 15: return 16;
    case 17: case 18: case 19: case 20: return 1;
    case 21: case 22: case 23: return 0.5;
    default: return undefined;
  }
}

export interface ExternalRef {
  location: string;
  offset: number;
  length: number;
}

export interface TensorProto {
  name: string;
  dataType: number;
  dims: number[];
  rawData?: Uint8Array;
  floatData?: Float32Array;
  int32Data?: Int32Array;
  int64Data?: BigInt64Array;
  doubleData?: Float64Array;
  /** key/value pairs of external_data, in file order. */
  externalData?: Array<[string, string]>;
  dataLocation?: number;
  unknown: Unknown;
}

export interface Dim {
  value?: number;
  param?: string;
  unknown?: Unknown;
}

export interface ValueInfoProto {
  name: string;
  /** Present when the type is a tensor type. */
  elemType?: number;
  /** undefined = rank unknown. */
  shape?: Dim[];
  /** Raw TypeProto bytes for non-tensor types (sequences, maps, optional). */
  otherType?: Uint8Array;
  unknown: Unknown;
}

export interface AttributeProto {
  name: string;
  type: number;
  f?: number;
  i?: bigint;
  s?: Uint8Array;
  t?: TensorProto;
  g?: GraphProto;
  floats?: number[];
  ints?: bigint[];
  strings?: Uint8Array[];
  tensors?: TensorProto[];
  graphs?: GraphProto[];
  unknown: Unknown;
}

export interface NodeProto {
  input: string[];
  output: string[];
  name: string;
  opType: string;
  domain: string;
  attribute: AttributeProto[];
  unknown: Unknown;
}

export interface GraphProto {
  node: NodeProto[];
  name: string;
  initializer: TensorProto[];
  input: ValueInfoProto[];
  output: ValueInfoProto[];
  valueInfo: ValueInfoProto[];
  unknown: Unknown;
}

export interface OpsetId {
  domain: string;
  version: number;
}

export interface ModelProto {
  irVersion: number;
  opsetImport: OpsetId[];
  graph: GraphProto;
  unknown: Unknown;
}

// ---------------------------------------------------------------- decoding

type FieldFn = (r: WireReader, field: number, wire: WireType) => boolean;

/** Walks one message: `known` returns false for fields it does not handle; those are kept raw. */
function walk(r: WireReader, known: FieldFn): Unknown {
  const unknown: Unknown = [];
  while (!r.done) {
    const start = r.pos;
    const { field, wire } = r.tag();
    if (!known(r, field, wire)) unknown.push(r.skip(start, wire));
  }
  return unknown;
}

function sub(r: WireReader, wire: WireType, what: string): WireReader {
  if (wire !== WireType.LengthDelimited) {
    throw new OnnxFormatError(`corrupt ONNX data: ${what} has wire type ${wire}`);
  }
  const [s, e] = r.lengthDelimited();
  return new WireReader(r.buf, s, e, what);
}

function expectWire(wire: WireType, expected: WireType, what: string): void {
  if (wire !== expected) throw new OnnxFormatError(`corrupt ONNX data: ${what} has wire type ${wire}`);
}

export function decodeTensor(r: WireReader): TensorProto {
  const t: TensorProto = { name: '', dataType: 0, dims: [], unknown: [] };
  const floats: number[] = [];
  const int32s: number[] = [];
  const int64s: bigint[] = [];
  const doubles: number[] = [];
  t.unknown = walk(r, (r, f, w) => {
    switch (f) {
      case 1: r.repeated(w, WireType.Varint, (x) => t.dims.push(x.varint())); return true;
      case 2: expectWire(w, WireType.Varint, 'tensor.data_type'); t.dataType = r.varint(); return true;
      case 4: r.repeated(w, WireType.Fixed32, (x) => floats.push(x.float())); return true;
      case 5: r.repeated(w, WireType.Varint, (x) => int32s.push(Number(BigInt.asIntN(32, x.varintBig())))); return true;
      case 7: r.repeated(w, WireType.Varint, (x) => int64s.push(x.varintBig())); return true;
      case 8: expectWire(w, WireType.LengthDelimited, 'tensor.name'); t.name = r.string(); return true;
      case 9: expectWire(w, WireType.LengthDelimited, 'tensor.raw_data'); t.rawData = r.bytes(); return true;
      case 10:
        r.repeated(w, WireType.Fixed64, (x) => {
          const b = x.fixed64();
          doubles.push(new DataView(b.buffer, b.byteOffset, 8).getFloat64(0, true));
        });
        return true;
      case 13: {
        const e = sub(r, w, 'tensor.external_data');
        let key = '';
        let value = '';
        walk(e, (e, f2, w2) => {
          if (f2 === 1 && w2 === WireType.LengthDelimited) { key = e.string(); return true; }
          if (f2 === 2 && w2 === WireType.LengthDelimited) { value = e.string(); return true; }
          return false;
        });
        (t.externalData ??= []).push([key, value]);
        return true;
      }
      case 14: expectWire(w, WireType.Varint, 'tensor.data_location'); t.dataLocation = r.varint(); return true;
      default: return false;
    }
  });
  if (floats.length) t.floatData = Float32Array.from(floats);
  if (int32s.length) t.int32Data = Int32Array.from(int32s);
  if (int64s.length) t.int64Data = BigInt64Array.from(int64s);
  if (doubles.length) t.doubleData = Float64Array.from(doubles);
  return t;
}

function decodeDim(r: WireReader): Dim {
  const d: Dim = {};
  const unknown = walk(r, (r, f, w) => {
    if (f === 1 && w === WireType.Varint) { d.value = Number(r.varintBig()); return true; }
    if (f === 2 && w === WireType.LengthDelimited) { d.param = r.string(); return true; }
    return false;
  });
  if (unknown.length) d.unknown = unknown;
  return d;
}

function decodeValueInfo(r: WireReader): ValueInfoProto {
  const v: ValueInfoProto = { name: '', unknown: [] };
  v.unknown = walk(r, (r, f, w) => {
    if (f === 1 && w === WireType.LengthDelimited) { v.name = r.string(); return true; }
    if (f === 2 && w === WireType.LengthDelimited) {
      const [s, e] = r.lengthDelimited();
      const typeReader = new WireReader(r.buf, s, e, 'type');
      // Only a TypeProto holding exactly a tensor_type (field 1) is modelled; anything else stays raw.
      let tensorSeen = false;
      let other = false;
      walk(typeReader, (tr, tf, tw) => {
        if (tf === 1 && tw === WireType.LengthDelimited && !tensorSeen) {
          tensorSeen = true;
          const tt = sub(tr, tw, 'tensor_type');
          walk(tt, (x, f3, w3) => {
            if (f3 === 1 && w3 === WireType.Varint) { v.elemType = x.varint(); return true; }
            if (f3 === 2 && w3 === WireType.LengthDelimited) {
              const sh = sub(x, w3, 'shape');
              v.shape = [];
              walk(sh, (y, f4, w4) => {
                if (f4 === 1 && w4 === WireType.LengthDelimited) { v.shape!.push(decodeDim(sub(y, w4, 'dim'))); return true; }
                return false;
              });
              return true;
            }
            other = true;
            return false;
          });
          return true;
        }
        other = true;
        return false;
      });
      if (other || !tensorSeen) {
        v.otherType = r.buf.subarray(s, e);
        delete v.elemType;
        delete v.shape;
      }
      return true;
    }
    return false;
  });
  return v;
}

/**
 * Subgraphs (If/Loop/Scan bodies) nest graphs inside node attributes. Real exports nest a few
 * levels; a crafted file can nest thousands and overflow the stack of every recursive walk,
 * so decoding refuses anything deeper than this.
 */
export const MAX_GRAPH_DEPTH = 64;

function decodeAttribute(r: WireReader, depth: number): AttributeProto {
  const a: AttributeProto = { name: '', type: 0, unknown: [] };
  a.unknown = walk(r, (r, f, w) => {
    switch (f) {
      case 1: expectWire(w, WireType.LengthDelimited, 'attribute.name'); a.name = r.string(); return true;
      case 20: expectWire(w, WireType.Varint, 'attribute.type'); a.type = r.varint(); return true;
      case 2: expectWire(w, WireType.Fixed32, 'attribute.f'); a.f = r.float(); return true;
      case 3: expectWire(w, WireType.Varint, 'attribute.i'); a.i = r.varintBig(); return true;
      case 4: expectWire(w, WireType.LengthDelimited, 'attribute.s'); a.s = r.bytes(); return true;
      case 5: a.t = decodeTensor(sub(r, w, 'attribute.t')); return true;
      case 6: a.g = decodeGraph(sub(r, w, 'attribute.g'), depth + 1); return true;
      case 7: r.repeated(w, WireType.Fixed32, (x) => (a.floats ??= []).push(x.float())); return true;
      case 8: r.repeated(w, WireType.Varint, (x) => (a.ints ??= []).push(x.varintBig())); return true;
      case 9: expectWire(w, WireType.LengthDelimited, 'attribute.strings'); (a.strings ??= []).push(r.bytes()); return true;
      case 10: (a.tensors ??= []).push(decodeTensor(sub(r, w, 'attribute.tensors'))); return true;
      case 11: (a.graphs ??= []).push(decodeGraph(sub(r, w, 'attribute.graphs'), depth + 1)); return true;
      default: return false;
    }
  });
  return a;
}

function decodeNode(r: WireReader, depth: number): NodeProto {
  const n: NodeProto = { input: [], output: [], name: '', opType: '', domain: '', attribute: [], unknown: [] };
  n.unknown = walk(r, (r, f, w) => {
    switch (f) {
      case 1: expectWire(w, WireType.LengthDelimited, 'node.input'); n.input.push(r.string()); return true;
      case 2: expectWire(w, WireType.LengthDelimited, 'node.output'); n.output.push(r.string()); return true;
      case 3: expectWire(w, WireType.LengthDelimited, 'node.name'); n.name = r.string(); return true;
      case 4: expectWire(w, WireType.LengthDelimited, 'node.op_type'); n.opType = r.string(); return true;
      case 5: n.attribute.push(decodeAttribute(sub(r, w, 'node.attribute'), depth)); return true;
      case 7: expectWire(w, WireType.LengthDelimited, 'node.domain'); n.domain = r.string(); return true;
      default: return false;
    }
  });
  return n;
}

export function decodeGraph(r: WireReader, depth = 0): GraphProto {
  if (depth > MAX_GRAPH_DEPTH) throw new OnnxFormatError(`subgraphs nested more than ${MAX_GRAPH_DEPTH} deep: not a model this engine accepts`);
  const g: GraphProto = { node: [], name: '', initializer: [], input: [], output: [], valueInfo: [], unknown: [] };
  g.unknown = walk(r, (r, f, w) => {
    switch (f) {
      case 1: g.node.push(decodeNode(sub(r, w, 'node'), depth)); return true;
      case 2: expectWire(w, WireType.LengthDelimited, 'graph.name'); g.name = r.string(); return true;
      case 5: g.initializer.push(decodeTensor(sub(r, w, 'initializer'))); return true;
      case 11: g.input.push(decodeValueInfo(sub(r, w, 'graph.input'))); return true;
      case 12: g.output.push(decodeValueInfo(sub(r, w, 'graph.output'))); return true;
      case 13: g.valueInfo.push(decodeValueInfo(sub(r, w, 'value_info'))); return true;
      default: return false;
    }
  });
  return g;
}

export function decodeModel(buf: Uint8Array, what = 'model'): ModelProto {
  const r = new WireReader(buf, 0, buf.length, what);
  let graph: GraphProto | undefined;
  let irVersion = 0;
  const opsetImport: OpsetId[] = [];
  const unknown = walk(r, (r, f, w) => {
    switch (f) {
      case 1: expectWire(w, WireType.Varint, 'ir_version'); irVersion = r.varint(); return true;
      case 7: graph = decodeGraph(sub(r, w, 'graph')); return true;
      case 8: {
        const o = sub(r, w, 'opset_import');
        const op: OpsetId = { domain: '', version: 0 };
        walk(o, (x, f2, w2) => {
          if (f2 === 1 && w2 === WireType.LengthDelimited) { op.domain = x.string(); return true; }
          if (f2 === 2 && w2 === WireType.Varint) { op.version = x.varint(); return true; }
          return false;
        });
        opsetImport.push(op);
        return true;
      }
      default: return false;
    }
  });
  if (!graph) throw new OnnxFormatError(`${what}: not an ONNX model (no graph found)`);
  if (irVersion <= 0 || irVersion > 100) throw new OnnxFormatError(`${what}: not an ONNX model (ir_version ${irVersion})`);
  return { irVersion, opsetImport, graph, unknown };
}

// ---------------------------------------------------------------- encoding

function writeUnknown(w: WireWriter, unknown: Unknown | undefined): void {
  if (unknown) for (const u of unknown) w.raw(u);
}

export function encodeTensor(w: WireWriter, t: TensorProto): void {
  w.packedVarints(1, t.dims);
  w.uint(2, t.dataType);
  if (t.floatData?.length) {
    const b = new Uint8Array(t.floatData.length * 4);
    new Float32Array(b.buffer).set(t.floatData);
    w.bytesField(4, b);
  }
  if (t.int32Data?.length) w.packedVarints(5, Array.from(t.int32Data, (x) => BigInt(x)));
  if (t.int64Data?.length) w.packedVarints(7, t.int64Data);
  if (t.name) w.stringField(8, t.name);
  if (t.rawData) w.bytesField(9, t.rawData);
  if (t.doubleData?.length) {
    const b = new Uint8Array(t.doubleData.length * 8);
    new Float64Array(b.buffer).set(t.doubleData);
    w.bytesField(10, b);
  }
  for (const [k, v] of t.externalData ?? []) {
    w.message(13, (e) => {
      e.stringField(1, k);
      e.stringField(2, v);
    });
  }
  if (t.dataLocation !== undefined) w.uint(14, t.dataLocation);
  writeUnknown(w, t.unknown);
}

function encodeValueInfo(w: WireWriter, v: ValueInfoProto): void {
  w.stringField(1, v.name);
  if (v.otherType) {
    w.bytesField(2, v.otherType);
  } else if (v.elemType !== undefined || v.shape) {
    w.message(2, (tw) =>
      tw.message(1, (tt) => {
        if (v.elemType !== undefined) tt.uint(1, v.elemType);
        if (v.shape) {
          tt.message(2, (sh) => {
            for (const d of v.shape!) {
              sh.message(1, (dw) => {
                if (d.value !== undefined) dw.uint(1, d.value);
                if (d.param !== undefined) dw.stringField(2, d.param);
                writeUnknown(dw, d.unknown);
              });
            }
          });
        }
      }),
    );
  }
  writeUnknown(w, v.unknown);
}

function encodeAttribute(w: WireWriter, a: AttributeProto): void {
  w.stringField(1, a.name);
  if (a.f !== undefined) w.floatField(2, a.f);
  if (a.i !== undefined) w.uint(3, a.i);
  if (a.s !== undefined) w.bytesField(4, a.s);
  if (a.t) w.message(5, (x) => encodeTensor(x, a.t!));
  if (a.g) w.message(6, (x) => encodeGraph(x, a.g!));
  if (a.floats?.length) {
    const b = new Uint8Array(a.floats.length * 4);
    new Float32Array(b.buffer).set(a.floats);
    w.bytesField(7, b);
  }
  if (a.ints?.length) w.packedVarints(8, a.ints);
  for (const s of a.strings ?? []) w.bytesField(9, s);
  for (const t of a.tensors ?? []) w.message(10, (x) => encodeTensor(x, t));
  for (const g of a.graphs ?? []) w.message(11, (x) => encodeGraph(x, g));
  if (a.type) w.uint(20, a.type);
  writeUnknown(w, a.unknown);
}

function encodeNode(w: WireWriter, n: NodeProto): void {
  for (const i of n.input) w.stringField(1, i);
  for (const o of n.output) w.stringField(2, o);
  if (n.name) w.stringField(3, n.name);
  w.stringField(4, n.opType);
  for (const a of n.attribute) w.message(5, (x) => encodeAttribute(x, a));
  if (n.domain) w.stringField(7, n.domain);
  writeUnknown(w, n.unknown);
}

export function encodeGraph(w: WireWriter, g: GraphProto): void {
  for (const n of g.node) w.message(1, (x) => encodeNode(x, n));
  if (g.name) w.stringField(2, g.name);
  for (const t of g.initializer) w.message(5, (x) => encodeTensor(x, t));
  for (const v of g.input) w.message(11, (x) => encodeValueInfo(x, v));
  for (const v of g.output) w.message(12, (x) => encodeValueInfo(x, v));
  for (const v of g.valueInfo) w.message(13, (x) => encodeValueInfo(x, v));
  writeUnknown(w, g.unknown);
}

export function encodeModel(m: ModelProto): Uint8Array {
  const w = new WireWriter();
  w.uint(1, m.irVersion);
  w.message(7, (x) => encodeGraph(x, m.graph));
  for (const o of m.opsetImport) {
    w.message(8, (x) => {
      if (o.domain) x.stringField(1, o.domain);
      x.uint(2, o.version);
    });
  }
  writeUnknown(w, m.unknown);
  return w.finish();
}

// ---------------------------------------------------------------- small helpers

export function attr(node: NodeProto, name: string): AttributeProto | undefined {
  return node.attribute.find((a) => a.name === name);
}

export function attrInt(node: NodeProto, name: string, dflt?: number): number | undefined {
  const a = attr(node, name);
  return a?.i !== undefined ? Number(a.i) : dflt;
}

export function attrFloat(node: NodeProto, name: string, dflt?: number): number | undefined {
  const a = attr(node, name);
  return a?.f !== undefined ? a.f : dflt;
}

export function attrInts(node: NodeProto, name: string): number[] | undefined {
  const a = attr(node, name);
  return a?.ints?.map(Number);
}

/** Calls fn on every graph: the main graph and all subgraphs (If/Loop/Scan bodies). */
export function forEachGraph(g: GraphProto, fn: (g: GraphProto) => void): void {
  fn(g);
  for (const n of g.node) {
    for (const a of n.attribute) {
      if (a.g) forEachGraph(a.g, fn);
      for (const sg of a.graphs ?? []) forEachGraph(sg, fn);
    }
  }
}
