// Checks that a decoded model is what it claims to be before anything reads its weights or
// writes a copy: every tensor's shape agrees with the data it carries (inline bytes, typed
// fields or an external-data range) and fits in what the files can hold, and every graph is
// a DAG in which each tensor is produced once and every read has a producer. A crafted or
// damaged file then fails with one sentence instead of passing its damage on to the output.

import { DATA_TYPE_NAMES, DataType, elementSize, GraphProto, NodeProto, TensorProto } from './proto';
import { OnnxFormatError, WireReader, WireType } from './wire';

/** What validation needs from the file: its name, size and the external-data checks. */
export interface TensorSource {
  readonly filePath: string;
  readonly byteSize: number;
  externalRef(t: TensorProto): { location: string; offset: number; length: number } | undefined;
}

export function validateModelGraph(graph: GraphProto, src: TensorSource): void {
  for (const { g } of graphsWithScopes(graph)) {
    for (const t of g.initializer) validateTensor(t, src);
    for (const n of g.node) {
      for (const a of n.attribute) {
        if (a.t) validateTensor(a.t, src, `attribute ${a.name} of node "${nodeLabel(n)}"`);
        for (const t of a.tensors ?? []) validateTensor(t, src, `attribute ${a.name} of node "${nodeLabel(n)}"`);
      }
    }
  }
  validateTopology(graph);
}

// ---------------------------------------------------------------- tensors

function typeName(dt: number): string {
  return DATA_TYPE_NAMES[dt] ?? `data type ${dt}`;
}

/** Element count of a shape, refusing negative, fractional and astronomically large dims. */
export function checkedElementCount(t: TensorProto, what: string): number {
  let n = 1;
  for (const d of t.dims) {
    if (!Number.isSafeInteger(d) || d < 0) throw new OnnxFormatError(`${what} has an invalid dimension ${d} in its shape [${t.dims.join(', ')}]`);
    n *= d;
    if (n > Number.MAX_SAFE_INTEGER) throw new OnnxFormatError(`${what} declares the shape [${t.dims.join(', ')}], more elements than any file can hold`);
  }
  return n;
}

/** Elements per entry of the typed field holding this data type (complex numbers take two). */
function typedField(t: TensorProto): { field: string; count: number; perElement: number } | undefined {
  if (t.floatData) return { field: 'float_data', count: t.floatData.length, perElement: t.dataType === 14 ? 2 : 1 };
  if (t.int32Data) return { field: 'int32_data', count: t.int32Data.length, perElement: 1 };
  if (t.int64Data) return { field: 'int64_data', count: t.int64Data.length, perElement: 1 };
  if (t.doubleData) return { field: 'double_data', count: t.doubleData.length, perElement: t.dataType === 15 ? 2 : 1 };
  return undefined;
}

const FIELD_TYPES: Record<string, number[]> = {
  float_data: [DataType.FLOAT, 14],
  int32_data: [DataType.INT32, DataType.INT16, DataType.INT8, DataType.UINT16, DataType.UINT8, DataType.BOOL, DataType.FLOAT16, DataType.BFLOAT16, 17, 18, 19, 20, 21, 22, 23],
  int64_data: [DataType.INT64],
  double_data: [DataType.DOUBLE, 15],
};

/** Entries of string_data (field 6) and uint64_data (field 11), kept raw by the codec. */
function rawFieldCount(t: TensorProto): { field: string; count: number } | undefined {
  let strings = 0;
  let u64 = 0;
  for (const u of t.unknown) {
    const r = new WireReader(u, 0, u.length, 'tensor');
    const { field, wire } = r.tag();
    if (field === 6) strings++;
    if (field === 11) {
      if (wire === WireType.LengthDelimited) {
        const [s, e] = r.lengthDelimited();
        const p = new WireReader(u, s, e, 'tensor');
        while (!p.done) {
          p.varintBig();
          u64++;
        }
      } else u64++;
    }
  }
  if (strings) return { field: 'string_data', count: strings };
  if (u64) return { field: 'uint64_data', count: u64 };
  return undefined;
}

export function validateTensor(t: TensorProto, src: TensorSource, where?: string): void {
  const what = `tensor "${t.name}"${where ? ` (${where})` : ''} in ${src.filePath}`;
  const n = checkedElementCount(t, what);
  if (!(t.dataType in DATA_TYPE_NAMES) && ![14, 15, 17, 18, 19, 20, 23].includes(t.dataType)) {
    throw new OnnxFormatError(`${what} has data type ${t.dataType}, which ONNX does not define`);
  }
  if (t.dataType === DataType.STRING && (t.rawData || t.dataLocation === 1)) {
    throw new OnnxFormatError(`${what} is a string tensor stored as raw bytes; ONNX keeps strings in string_data`);
  }
  const es = elementSize(t.dataType);
  const need = es === undefined ? undefined : Math.ceil(n * es);
  const shape = `[${t.dims.join(', ')}]`;
  if (t.dataLocation === 1) {
    if (!t.externalData?.length) throw new OnnxFormatError(`${what} is marked as external data but names no data file`);
    // Range inside the data file, length equal to what the shape needs (checked there).
    const ref = src.externalRef(t)!;
    if (need === undefined && n > ref.length * 8) {
      throw new OnnxFormatError(`${what}: shape ${shape} has ${n} elements, more than its ${ref.length} bytes of data can hold`);
    }
    return;
  }
  if (t.rawData) {
    if (need !== undefined && t.rawData.length !== need) {
      throw new OnnxFormatError(`${what}: shape ${shape} of ${typeName(t.dataType)} needs ${need} bytes, but its data has ${t.rawData.length}`);
    }
    if (need === undefined && n > t.rawData.length * 8) {
      throw new OnnxFormatError(`${what}: shape ${shape} has ${n} elements, more than its ${t.rawData.length} bytes of data can hold`);
    }
    return;
  }
  const typed = typedField(t);
  if (typed) {
    if (!FIELD_TYPES[typed.field].includes(t.dataType)) {
      throw new OnnxFormatError(`${what}: its values are in ${typed.field}, which cannot hold ${typeName(t.dataType)}`);
    }
    const packed4 = t.dataType === 21 || t.dataType === 22 || t.dataType === 23;
    const ok = typed.count === n * typed.perElement || (packed4 && typed.count === Math.ceil(n / 2));
    if (!ok) throw new OnnxFormatError(`${what}: shape ${shape} has ${n} elements, but ${typed.field} holds ${typed.count} values`);
    return;
  }
  const raw = rawFieldCount(t);
  if (raw) {
    if (raw.count !== n) throw new OnnxFormatError(`${what}: shape ${shape} has ${n} elements, but ${raw.field} holds ${raw.count} values`);
    return;
  }
  if (n > 0) throw new OnnxFormatError(`${what}: shape ${shape} has ${n} elements but the tensor carries no data`);
}

// ---------------------------------------------------------------- topology

function nodeLabel(n: NodeProto): string {
  return n.name || `${n.opType} -> ${n.output.find(Boolean) ?? '?'}`;
}

interface ScopedGraph {
  g: GraphProto;
  /** Names visible from enclosing graphs, innermost last. */
  outer: Set<string>[];
}

/** Every graph with the names its enclosing graphs define; an explicit stack, no recursion. */
function graphsWithScopes(root: GraphProto): ScopedGraph[] {
  const out: ScopedGraph[] = [];
  const stack: ScopedGraph[] = [{ g: root, outer: [] }];
  while (stack.length) {
    const cur = stack.pop()!;
    out.push(cur);
    let here: Set<string> | undefined;
    for (const n of cur.g.node) {
      for (const a of n.attribute) {
        const subs = [...(a.g ? [a.g] : []), ...(a.graphs ?? [])];
        if (!subs.length) continue;
        here ??= definedNames(cur.g);
        for (const sg of subs) stack.push({ g: sg, outer: [...cur.outer, here] });
      }
    }
  }
  return out;
}

function definedNames(g: GraphProto): Set<string> {
  const s = new Set<string>();
  for (const v of g.input) s.add(v.name);
  for (const t of g.initializer) s.add(t.name);
  for (const n of g.node) for (const o of n.output) if (o) s.add(o);
  return s;
}

/** Names a node reads, including those its subgraphs read from enclosing scopes. */
function readsDeep(n: NodeProto): string[] {
  const out = n.input.filter(Boolean);
  const stack: GraphProto[] = [];
  for (const a of n.attribute) stack.push(...(a.g ? [a.g] : []), ...(a.graphs ?? []));
  while (stack.length) {
    const g = stack.pop()!;
    for (const m of g.node) {
      for (const i of m.input) if (i) out.push(i);
      for (const a of m.attribute) stack.push(...(a.g ? [a.g] : []), ...(a.graphs ?? []));
    }
  }
  return out;
}

export function validateTopology(root: GraphProto): void {
  for (const { g, outer } of graphsWithScopes(root)) {
    const sub = outer.length > 0;
    const where = sub ? `subgraph "${g.name}"` : 'the graph';
    const available = new Set<string>([...g.input.map((v) => v.name), ...g.initializer.map((t) => t.name)]);
    const producer = new Map<string, number>();
    g.node.forEach((n, k) => {
      for (const o of n.output) {
        if (!o) continue;
        const prev = producer.get(o);
        if (prev !== undefined) throw new OnnxFormatError(`${where}: tensor "${o}" is produced twice (by nodes "${nodeLabel(g.node[prev])}" and "${nodeLabel(n)}")`);
        if (available.has(o)) throw new OnnxFormatError(`${where}: node "${nodeLabel(n)}" writes "${o}", which is already a graph input or initializer`);
        producer.set(o, k);
      }
    });
    const visible = (name: string) => available.has(name) || producer.has(name) || outer.some((s) => s.has(name));
    for (const n of g.node) {
      for (const i of n.input) {
        if (i && !visible(i)) throw new OnnxFormatError(`${where}: node "${nodeLabel(n)}" reads "${i}", which no node, input or initializer produces`);
      }
    }
    for (const o of g.output) {
      if (!visible(o.name)) throw new OnnxFormatError(`${where}: output "${o.name}" is not produced by any node, input or initializer`);
    }
    // Kahn's algorithm over local producer -> consumer edges; what remains lies on a cycle.
    const deps = g.node.map((n) => [...new Set(readsDeep(n).map((i) => producer.get(i)).filter((p): p is number => p !== undefined))]);
    const consumers: number[][] = g.node.map(() => []);
    const pending = deps.map((d) => d.length);
    deps.forEach((d, k) => d.forEach((p) => consumers[p].push(k)));
    const ready = pending.flatMap((c, k) => (c === 0 ? [k] : []));
    let done = 0;
    while (ready.length) {
      const k = ready.pop()!;
      done++;
      for (const c of consumers[k]) if (--pending[c] === 0) ready.push(c);
    }
    if (done < g.node.length) {
      const stuck = pending.findIndex((c) => c > 0);
      throw new OnnxFormatError(`${where} has a cycle: node "${nodeLabel(g.node[stuck])}" lies on a loop of nodes feeding each other (not a valid ONNX graph)`);
    }
  }
}
