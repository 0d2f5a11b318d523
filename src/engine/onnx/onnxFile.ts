// One .onnx file on disk: its decoded model plus access to tensor bytes, inline or in
// external-data files, read at file offsets so that neither a >2 GiB data file nor a model
// bigger than memory has to be loaded whole.

import * as fs from 'fs';
import * as path from 'path';
import { DataType, decodeModel, elementSize, encodeModel, forEachGraph, GraphProto, ModelProto, TensorProto } from './proto';
import { validateModelGraph } from './validate';
import { OnnxFormatError } from './wire';

/** Protobuf cannot encode a message of 2 GiB or more. */
const PROTOBUF_LIMIT = 2 ** 31 - 1;

export class OnnxFile {
  private fds = new Map<string, { fd: number; size: number }>();

  private constructor(readonly filePath: string, readonly model: ModelProto, readonly byteSize: number) {}

  static open(filePath: string): OnnxFile {
    let st: fs.Stats;
    try {
      st = fs.statSync(filePath);
    } catch {
      throw new OnnxFormatError(`cannot open ${filePath}: no such file`);
    }
    if (!st.isFile()) throw new OnnxFormatError(`${filePath} is not a file`);
    if (st.size >= PROTOBUF_LIMIT) {
      throw new OnnxFormatError(`${filePath} is ${st.size} bytes: an ONNX protobuf must be under 2 GiB (large weights belong in external data)`);
    }
    if (st.size === 0) throw new OnnxFormatError(`${filePath} is empty: not an ONNX model`);
    const buf = fs.readFileSync(filePath);
    let file: OnnxFile | undefined;
    try {
      file = new OnnxFile(filePath, decodeModel(buf, path.basename(filePath)), st.size);
      // Shapes against data, external ranges, topology: before anything reads or writes weights.
      validateModelGraph(file.graph, file);
      return file;
    } catch (e) {
      file?.close();
      if (e instanceof OnnxFormatError && !e.message.includes(filePath)) throw new OnnxFormatError(`${filePath}: ${e.message}`);
      throw e;
    }
  }

  get dir(): string {
    return path.dirname(this.filePath);
  }

  get graph(): GraphProto {
    return this.model.graph;
  }

  close(): void {
    for (const { fd } of this.fds.values()) fs.closeSync(fd);
    this.fds.clear();
  }

  /** All initializers by name, main graph and subgraphs. */
  initializerMap(): Map<string, TensorProto> {
    const m = new Map<string, TensorProto>();
    forEachGraph(this.graph, (g) => {
      for (const t of g.initializer) m.set(t.name, t);
    });
    return m;
  }

  /** Resolves an external-data location, refusing paths that leave the model's folder. */
  resolveExternal(location: string): string {
    if (!location || path.isAbsolute(location) || location.includes('\0')) {
      throw new OnnxFormatError(`external data location "${location}" in ${path.basename(this.filePath)} must be a relative path inside the model folder`);
    }
    const dir = path.resolve(this.dir);
    const full = path.resolve(dir, location);
    if (full !== dir && !full.startsWith(dir + path.sep)) {
      throw new OnnxFormatError(`external data location "${location}" in ${path.basename(this.filePath)} escapes the model folder; refusing to read it`);
    }
    return full;
  }

  private externalFd(location: string): { fd: number; size: number } {
    let e = this.fds.get(location);
    if (!e) {
      const full = this.resolveExternal(location);
      let fd: number;
      try {
        fd = fs.openSync(full, 'r');
      } catch {
        throw new OnnxFormatError(`external data file "${location}" referenced by ${path.basename(this.filePath)} is missing`);
      }
      e = { fd, size: fs.fstatSync(fd).size };
      this.fds.set(location, e);
    }
    return e;
  }

  /** Where an external tensor's bytes live; validated against the file's size and the tensor's shape. */
  externalRef(t: TensorProto): { location: string; offset: number; length: number } | undefined {
    if (!t.externalData || t.dataLocation !== 1) return undefined;
    const kv = new Map(t.externalData);
    const location = kv.get('location');
    if (location === undefined) throw new OnnxFormatError(`tensor ${t.name}: external data has no location`);
    const offset = kv.has('offset') ? Number(kv.get('offset')) : 0;
    const { size } = this.externalFd(location);
    const expected = expectedByteLength(t);
    const length = kv.has('length') ? Number(kv.get('length')) : expected ?? size - offset;
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new OnnxFormatError(`tensor ${t.name}: invalid external data offset/length (${kv.get('offset')}, ${kv.get('length')})`);
    }
    if (offset + length > size) {
      throw new OnnxFormatError(`tensor ${t.name}: external data [${offset}, ${offset + length}) lies beyond the end of "${location}" (${size} bytes); the data file is truncated or does not belong to this model`);
    }
    if (expected !== undefined && expected !== length) {
      throw new OnnxFormatError(`tensor ${t.name}: external data length ${length} does not match its shape [${t.dims}] (${expected} bytes)`);
    }
    return { location, offset, length };
  }

  /** Reads `length` bytes of an external tensor into `out` starting at `from` (bytes into the tensor). */
  readExternalInto(t: TensorProto, from: number, out: Uint8Array): void {
    const ref = this.externalRef(t)!;
    const { fd } = this.externalFd(ref.location);
    let done = 0;
    while (done < out.length) {
      const n = fs.readSync(fd, out, done, out.length - done, ref.offset + from + done);
      if (n <= 0) throw new OnnxFormatError(`tensor ${t.name}: unexpected end of "${ref.location}"`);
      done += n;
    }
  }

  /** The tensor's little-endian bytes, whatever way they are stored. */
  tensorBytes(t: TensorProto): Uint8Array {
    const ref = this.externalRef(t);
    if (ref) {
      const out = new Uint8Array(ref.length);
      this.readExternalInto(t, 0, out);
      return out;
    }
    if (t.dataLocation === 1) throw new OnnxFormatError(`tensor ${t.name}: marked external but has no external_data entries`);
    const bytes = inlineBytes(t);
    const expected = expectedByteLength(t);
    if (expected !== undefined && bytes.length !== expected) {
      throw new OnnxFormatError(`tensor ${t.name}: ${bytes.length} bytes of data for shape [${t.dims}] (${expected} expected)`);
    }
    return bytes;
  }

  tensorByteLength(t: TensorProto): number {
    const ref = this.externalRef(t);
    if (ref) return ref.length;
    return inlineBytes(t).length;
  }

  /** The tensor as float32 (converting float16, bfloat16 and float64). */
  tensorFloat32(t: TensorProto): Float32Array {
    return bytesToFloat32(this.tensorBytes(t), t.dataType, t.name);
  }

  /** The tensor as float64 (for the linear algebra, done in double precision). */
  tensorFloat64(t: TensorProto): Float64Array {
    if (t.dataType === DataType.DOUBLE) return copyAligned(this.tensorBytes(t), Float64Array);
    return Float64Array.from(this.tensorFloat32(t));
  }

  /** Integer tensors (shape constants) as numbers. */
  tensorInts(t: TensorProto): number[] {
    const b = this.tensorBytes(t);
    if (t.dataType === DataType.INT64) return Array.from(copyAligned(b, BigInt64Array), Number);
    if (t.dataType === DataType.INT32) return Array.from(copyAligned(b, Int32Array));
    throw new OnnxFormatError(`tensor ${t.name}: expected an integer tensor, got data type ${t.dataType}`);
  }
}

export function numel(t: { dims: number[] }): number {
  return t.dims.reduce((a, b) => a * b, 1);
}

export function expectedByteLength(t: TensorProto): number | undefined {
  const es = elementSize(t.dataType);
  if (es === undefined) return undefined;
  return Math.ceil(numel(t) * es);
}

function copyAligned<T>(b: Uint8Array, Ctor: { new (buf: ArrayBuffer): T; BYTES_PER_ELEMENT: number }): T {
  const copy = new Uint8Array(b.length);
  copy.set(b);
  return new Ctor(copy.buffer);
}

function inlineBytes(t: TensorProto): Uint8Array {
  if (t.rawData) return t.rawData;
  if (t.floatData) {
    if (t.dataType === DataType.FLOAT) return new Uint8Array(t.floatData.buffer, t.floatData.byteOffset, t.floatData.byteLength).slice();
  }
  if (t.doubleData) return new Uint8Array(Float64Array.from(t.doubleData).buffer);
  if (t.int64Data) return new Uint8Array(BigInt64Array.from(t.int64Data).buffer);
  if (t.int32Data) {
    // int32_data also carries int8/uint8/int16/uint16/bool/float16 per the ONNX spec.
    const n = t.int32Data.length;
    switch (t.dataType) {
      case DataType.INT32: return new Uint8Array(Int32Array.from(t.int32Data).buffer);
      case DataType.INT8: case DataType.UINT8: case DataType.BOOL: return Uint8Array.from(t.int32Data, (x) => x & 0xff);
      case DataType.INT16: case DataType.UINT16: case DataType.FLOAT16: case DataType.BFLOAT16: {
        const u = new Uint16Array(n);
        for (let i = 0; i < n; i++) u[i] = t.int32Data[i] & 0xffff;
        return new Uint8Array(u.buffer);
      }
    }
  }
  if (numel(t) === 0) return new Uint8Array(0);
  throw new OnnxFormatError(`tensor ${t.name}: no data (data type ${t.dataType})`);
}

export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function floatToHalf(v: number): number {
  f32[0] = v;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >> shift;
    if ((mant >> (shift - 1)) & 1 && ((mant & ((1 << (shift - 1)) - 1)) || h & 1)) h++;
    return sign | h;
  }
  let h = sign | (e << 10) | (mant >> 13);
  if (mant & 0x1000 && (mant & 0xfff || h & 1)) h++;
  return h;
}

export function bytesToFloat32(b: Uint8Array, dataType: number, name = 'tensor'): Float32Array {
  switch (dataType) {
    case DataType.FLOAT: return copyAligned(b, Float32Array);
    case DataType.DOUBLE: return Float32Array.from(copyAligned(b, Float64Array));
    case DataType.FLOAT16: {
      const u = copyAligned(b, Uint16Array);
      const out = new Float32Array(u.length);
      for (let i = 0; i < u.length; i++) out[i] = halfToFloat(u[i]);
      return out;
    }
    case DataType.BFLOAT16: {
      const u = copyAligned(b, Uint16Array);
      const out = new Float32Array(u.length);
      const o32 = new Uint32Array(out.buffer);
      for (let i = 0; i < u.length; i++) o32[i] = u[i] << 16;
      return out;
    }
    default:
      throw new OnnxFormatError(`${name}: data type ${dataType} is not a floating-point type this engine can read (quantized weights are not supported yet)`);
  }
}

/** Encodes float32 values in the given floating-point data type. */
export function float32ToBytes(v: Float32Array | Float64Array, dataType: number): Uint8Array {
  switch (dataType) {
    case DataType.FLOAT: return new Uint8Array(Float32Array.from(v).buffer);
    case DataType.DOUBLE: return new Uint8Array(Float64Array.from(v).buffer);
    case DataType.FLOAT16: {
      const u = new Uint16Array(v.length);
      for (let i = 0; i < v.length; i++) u[i] = floatToHalf(v[i]);
      return new Uint8Array(u.buffer);
    }
    case DataType.BFLOAT16: {
      const f = Float32Array.from(v);
      const u32v = new Uint32Array(f.buffer);
      const u = new Uint16Array(v.length);
      for (let i = 0; i < v.length; i++) {
        const x = u32v[i];
        u[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16; // round to nearest even
      }
      return new Uint8Array(u.buffer);
    }
    default:
      throw new OnnxFormatError(`cannot encode weights as data type ${dataType}`);
  }
}

// ---------------------------------------------------------------- writing

export interface ExternalDataOptions {
  /** File name of the first chunk, e.g. "model.onnx_data" or "model.onnx.data". */
  baseName: string;
  /** Name of chunk i >= 1 (Optimum/transformers.js: `${base}_${i}`). */
  chunkName?: (i: number) => string;
  /** Start a new chunk before exceeding this many bytes (default: no limit). */
  maxChunkBytes?: number;
  /** Tensors smaller than this stay inline (default 1024 bytes). */
  sizeThreshold?: number;
}

export interface WriteResult {
  onnxPath: string;
  dataFiles: string[];
  bytes: number;
}

/**
 * Writes a model to `outPath`. Tensor bytes come from `source` (the file the model was read
 * from, for tensors still stored externally there) or from the tensor itself. The model object
 * is not modified. With `external`, every initializer of at least `sizeThreshold` bytes goes to
 * the data files, copied in slices so that no whole data file is ever in memory.
 */
export function writeOnnx(model: ModelProto, source: OnnxFile | undefined, outPath: string, external?: ExternalDataOptions): WriteResult {
  const dir = path.dirname(outPath);
  const threshold = external?.sizeThreshold ?? 1024;
  const maxChunk = external?.maxChunkBytes ?? Number.MAX_SAFE_INTEGER;
  const chunkName = external?.chunkName ?? ((i: number) => `${external!.baseName}_${i}`);
  const chunks: { name: string; fd: number; size: number }[] = [];
  const copyBuf = Buffer.allocUnsafe(1 << 24);

  const sourceFiles = new Set<string>();
  if (source) {
    sourceFiles.add(path.resolve(source.filePath));
    for (const loc of externalLocations(source.model)) sourceFiles.add(source.resolveExternal(loc));
  }
  if (sourceFiles.has(path.resolve(outPath))) throw new OnnxFormatError('refusing to overwrite the model being read; write to another folder');
  const openChunk = (): { name: string; fd: number; size: number } => {
    const name = chunks.length === 0 ? external!.baseName : chunkName(chunks.length);
    if (sourceFiles.has(path.resolve(dir, name))) throw new OnnxFormatError(`refusing to overwrite ${name}, which the model being read uses; write to another folder`);
    const c = { name, fd: fs.openSync(path.join(dir, name), 'w'), size: 0 };
    chunks.push(c);
    return c;
  };

  const rewriteTensor = (t: TensorProto): TensorProto => {
    const srcRef = source?.externalRef(t);
    const length = srcRef ? srcRef.length : inlineLength(t);
    if (!external || length < threshold) {
      if (!srcRef) return t;
      return { ...t, rawData: source!.tensorBytes(t), externalData: undefined, dataLocation: undefined };
    }
    let c = chunks[chunks.length - 1] ?? openChunk();
    const align = length >= 1 << 20 ? 4096 : 64;
    let offset = Math.ceil(c.size / align) * align;
    if (c.size > 0 && offset + length > maxChunk) {
      c = openChunk();
      offset = 0;
    }
    if (srcRef) {
      for (let done = 0; done < length; ) {
        const n = Math.min(copyBuf.length, length - done);
        const slice = copyBuf.subarray(0, n);
        source!.readExternalInto(t, done, slice);
        writeFully(c.fd, slice, offset + done);
        done += n;
      }
    } else {
      writeFully(c.fd, inlineBytes(t), offset);
    }
    c.size = offset + length;
    return {
      name: t.name,
      dataType: t.dataType,
      dims: t.dims,
      externalData: [['location', c.name], ['offset', String(offset)], ['length', String(length)]],
      dataLocation: 1,
      unknown: t.unknown,
    };
  };

  const rewriteGraph = (g: GraphProto): GraphProto => ({
    ...g,
    initializer: g.initializer.map(rewriteTensor),
    node: g.node.map((n) =>
      n.attribute.some((a) => a.g || a.graphs)
        ? { ...n, attribute: n.attribute.map((a) => ({ ...a, g: a.g && rewriteGraph(a.g), graphs: a.graphs?.map(rewriteGraph) })) }
        : n,
    ),
  });

  try {
    const out: ModelProto = { ...model, graph: rewriteGraph(model.graph) };
    const bytes = encodeModel(out);
    if (bytes.length >= PROTOBUF_LIMIT) {
      throw new OnnxFormatError(`the written model would be ${bytes.length} bytes, over protobuf's 2 GiB limit: write it with external data`);
    }
    fs.writeFileSync(outPath, bytes);
    return { onnxPath: outPath, dataFiles: chunks.map((c) => path.join(dir, c.name)), bytes: bytes.length + chunks.reduce((a, c) => a + c.size, 0) };
  } finally {
    for (const c of chunks) fs.closeSync(c.fd);
  }
}

function inlineLength(t: TensorProto): number {
  if (t.rawData) return t.rawData.length;
  return inlineBytes(t).length;
}

function writeFully(fd: number, data: Uint8Array, position: number): void {
  let done = 0;
  while (done < data.length) done += fs.writeSync(fd, data, done, data.length - done, position + done);
}

/** External-data file names a model refers to (for copying and for reporting). */
export function externalLocations(model: ModelProto): string[] {
  const set = new Set<string>();
  forEachGraph(model.graph, (g) => {
    for (const t of g.initializer) {
      if (t.dataLocation === 1) for (const [k, v] of t.externalData ?? []) if (k === 'location') set.add(v);
    }
  });
  return [...set];
}
