// Layer removal and weight replacement on a decoder graph. Always works on a copy:
// the input model is left untouched (tensors are shared, never mutated).

import { DataType, forEachGraph, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto } from '../onnx/proto';
import { float32ToBytes } from '../onnx/onnxFile';
import { dropUnusedInitializers, eliminateDeadNodes, GraphIndex, rewireConsumers } from './graphIndex';
import { DecoderStructure, discoverLayers, LayerDiscoveryError, LayerInfo } from './layers';

const SKIP_NORMS = new Set(['SkipSimplifiedLayerNormalization', 'SkipLayerNormalization']);

/** Copies graph structure (nodes, lists) but shares tensor payloads. */
export function cloneModel(m: ModelProto): ModelProto {
  return { ...m, opsetImport: m.opsetImport.map((o) => ({ ...o })), graph: cloneGraph(m.graph), unknown: m.unknown };
}

function cloneGraph(g: GraphProto): GraphProto {
  return {
    ...g,
    node: g.node.map(cloneNode),
    initializer: [...g.initializer],
    input: g.input.map(cloneVi),
    output: g.output.map(cloneVi),
    valueInfo: g.valueInfo.map(cloneVi),
  };
}

function cloneNode(n: NodeProto): NodeProto {
  return {
    ...n,
    input: [...n.input],
    output: [...n.output],
    attribute: n.attribute.map((a) => ({ ...a, g: a.g && cloneGraph(a.g), graphs: a.graphs?.map(cloneGraph) })),
  };
}

function cloneVi(v: ValueInfoProto): ValueInfoProto {
  return { ...v, shape: v.shape?.map((d) => ({ ...d })) };
}

export interface RemovalResult {
  model: ModelProto;
  removed: number[];
  numLayers: number;
  droppedInitializers: string[];
  renamedTensors: number;
}

/**
 * A list of layers to remove, as given through the API (JSON from the host, a recipe file):
 * an array of distinct safe integers inside 0..L-1 that leaves at least one layer. Checked
 * before any work sized by the list is done.
 */
export function checkLayerIndices(remove: unknown, L: number): number[] {
  if (!Array.isArray(remove)) throw new LayerDiscoveryError('the layers to remove must be a list of layer indices');
  if (remove.length > L) throw new LayerDiscoveryError(`${remove.length} layers to remove, but the decoder has only ${L}`);
  for (const k of remove) {
    if (typeof k !== 'number' || !Number.isSafeInteger(k)) throw new LayerDiscoveryError(`${JSON.stringify(k)} is not a layer index (the decoder has layers 0..${L - 1})`);
    if (k < 0 || k >= L) throw new LayerDiscoveryError(`layer ${k} does not exist: the decoder has layers 0..${L - 1}`);
  }
  const distinct = new Set(remove as number[]);
  if (distinct.size >= L) throw new LayerDiscoveryError(`cannot remove all ${L} layers`);
  return [...distinct];
}

/** Removes the given layers (0-based indices of the original model). */
export function removeLayers(model: ModelProto, remove: number[]): RemovalResult {
  const out = cloneModel(model);
  const g = out.graph;
  const s = discoverLayers(g);
  const L = s.layers.length;
  const removeSet = new Set(checkLayerIndices(remove, L));
  const sorted = [...removeSet].sort((a, b) => b - a);

  const internal = new Map<NodeProto, number>();
  const before = new GraphIndex(g);
  for (const k of sorted) for (const n of layerInternals(before, s.layers[k])) internal.set(n, k);

  for (const k of sorted) cutLayer(g, s, k);

  // Drop the removed layers' cache inputs and outputs.
  const removedPast = new Set<string>();
  const removedPresent = new Set<string>();
  for (const k of sorted) {
    const l = s.layers[k];
    for (const p of [l.pastKey, l.pastValue]) if (p) removedPast.add(p);
    for (const p of [l.presentKey, l.presentValue]) if (p) removedPresent.add(p);
  }
  g.output = g.output.filter((o) => !removedPresent.has(o.name));
  eliminateDeadNodes(g);
  refuseSurvivingInternals(g, internal);

  // Shared nodes (e.g. past-length for the mask) may read a removed layer's cache: point them
  // at a surviving layer's cache, which has the same shape.
  const survivor = s.layers.find((l) => !removeSet.has(l.index));
  const idx = new GraphIndex(g);
  for (const p of removedPast) {
    if (idx.consumersOf(p).length === 0) continue;
    const isKey = s.layers.some((l) => l.pastKey === p);
    const repl = isKey ? survivor?.pastKey : survivor?.pastValue;
    if (!repl) throw new LayerDiscoveryError(`cannot reroute shared reads of ${p}`);
    rewireConsumers(g, p, repl);
  }
  g.input = g.input.filter((v) => !removedPast.has(v.name));
  const droppedInitializers = dropUnusedInitializers(g);

  const renamedTensors = renumber(g, s, removeSet);
  return { model: out, removed: [...removeSet].sort((a, b) => a - b), numLayers: L - removeSet.size, droppedInitializers, renamedTensors };
}

/**
 * Nodes that compute layer l from its residual stream: descendants of the stream entering it
 * (through values, not shapes: Shape/Size outputs carry no values) that its outputs depend on.
 */
function layerInternals(idx: GraphIndex, l: LayerInfo): Set<NodeProto> {
  const ends = [l.residualMid, l.residualOut, l.presentKey, l.presentValue].filter((x): x is string => !!x);
  const upstream = idx.ancestors(ends, new Set([l.residualIn]));
  const inside = new Set<NodeProto>();
  const stack = [l.residualIn];
  const seen = new Set<string>();
  while (stack.length) {
    const t = stack.pop()!;
    if (seen.has(t)) continue;
    seen.add(t);
    for (const c of idx.consumersOf(t)) {
      if (!upstream.has(c) || inside.has(c) || c.opType === 'Shape' || c.opType === 'Size') continue;
      inside.add(c);
      for (const o of c.output) if (o) stack.push(o);
    }
  }
  // Fused style: cutLayer makes the layer's own input norm the next layer's norm.
  if (l.inputNorm) inside.delete(l.inputNorm);
  return inside;
}

/**
 * After the cut, a removed layer's nodes are dead unless something outside still reads them:
 * then the layers are not independent (a later layer computes from this one's internals) and
 * removing it has no meaning; say so rather than write a graph that half keeps it.
 */
function refuseSurvivingInternals(g: GraphProto, internal: Map<NodeProto, number>): void {
  const idx = new GraphIndex(g);
  for (const n of g.node) {
    const k = internal.get(n);
    if (k === undefined) continue;
    for (const o of n.output) {
      const reader = idx.consumersOf(o).find((c) => !internal.has(c));
      if (reader) {
        throw new LayerDiscoveryError(`layer ${k} cannot be removed: node "${reader.name || reader.opType}" outside it reads "${o}", computed inside layer ${k} (the layers are not independent)`);
      }
    }
  }
}

/** Disconnects layer k from the residual stream; dead-node elimination removes its nodes. */
function cutLayer(g: GraphProto, s: DecoderStructure, k: number): void {
  const layer = s.layers[k];
  const next = k + 1 < s.layers.length ? s.layers[k + 1].inputNorm : s.finalNorm;
  if (layer.inputNorm && next && SKIP_NORMS.has(next.opType)) {
    // Fused style: the norm that adds this layer's MLP also normalises for the next layer.
    // This layer's own input norm (which reads the stream entering layer k) becomes the next
    // norm: it takes over its weight, its name and its output names, and the next norm is
    // deleted, so the graph reads like an export without layer k (names renumber cleanly,
    // graph outputs stay produced). Removing several layers in descending order chains this.
    const own = layer.inputNorm;
    const ownWeight = SKIP_NORMS.has(own.opType) ? 2 : 1;
    own.input[ownWeight] = next.input[2];
    if (SKIP_NORMS.has(own.opType) && SKIP_NORMS.has(next.opType) && next.input[3]) own.input[3] = next.input[3];
    const nextLayerNo = /layers?[._/](\d+)/.exec(next.name)?.[1];
    own.name = own.opType === next.opType || nextLayerNo === undefined ? next.name : own.name.replace(/(layers?[._/])\d+/, `$1${nextLayerNo}`);
    own.output[0] = next.output[0];
    if (next.output[3]) {
      if (SKIP_NORMS.has(own.opType)) {
        while (own.output.length < 4) own.output.push('');
        own.output[3] = next.output[3];
      } else rewireConsumers(g, next.output[3], layer.residualIn);
    } else if (own.output.length > 3) own.output[3] = '';
    g.node.splice(g.node.indexOf(next), 1);
    return;
  }
  if (!layer.residualOut) throw new LayerDiscoveryError(`layer ${k}: residual output not found`);
  rewireConsumers(g, layer.residualOut, layer.residualIn);
  if (g.output.some((o) => o.name === layer.residualOut)) {
    throw new LayerDiscoveryError(`layer ${k}: its output is a graph output and cannot be bypassed`);
  }
}

function formatPattern(pattern: string, i: number): string {
  return pattern.replace('%d', String(i));
}

/**
 * Renumbers cache inputs/outputs contiguously, and `layers.N` in node, tensor and
 * initializer names, so the pruned graph reads like an export of a shallower model.
 */
function renumber(g: GraphProto, s: DecoderStructure, removed: Set<number>): number {
  const newIndex = new Map<number, number>();
  let j = 0;
  for (let i = 0; i < s.layers.length; i++) if (!removed.has(i)) newIndex.set(i, j++);
  newIndex.set(s.layers.length, j); // a final norm named after layer L

  const rename = new Map<string, string>();
  for (const l of s.layers) {
    if (removed.has(l.index)) continue;
    const ni = newIndex.get(l.index)!;
    const pairs: Array<[string | undefined, string | undefined]> = [
      [l.pastKey, s.pastKeyPattern],
      [l.pastValue, s.pastValuePattern],
      [l.presentKey, s.presentKeyPattern],
      [l.presentValue, s.presentValuePattern],
    ];
    for (const [name, pat] of pairs) if (name && pat) rename.set(name, formatPattern(pat, ni));
  }

  const re = /(layers?[._/])(\d+)(?=[._/:]|$)/g;
  const mapName = (name: string): string => {
    if (rename.has(name)) return rename.get(name)!;
    return name.replace(re, (m, pre: string, num: string) => {
      const n = newIndex.get(Number(num));
      return n === undefined ? m : pre + n;
    });
  };

  // Collect every tensor name, then keep any name whose new form would collide.
  const names = new Set<string>();
  forEachGraph(g, (x) => {
    for (const n of x.node) for (const t of [...n.input, ...n.output]) if (t) names.add(t);
    for (const t of x.initializer) names.add(t.name);
    for (const v of [...x.input, ...x.output, ...x.valueInfo]) names.add(v.name);
  });
  const finalName = new Map<string, string>();
  for (const n of names) finalName.set(n, mapName(n));
  for (let changed = true; changed; ) {
    changed = false;
    const owner = new Map<string, string>();
    for (const [orig, nn] of finalName) {
      const prev = owner.get(nn);
      if (prev !== undefined && prev !== orig) {
        // Collision: the one that was renamed keeps its old name.
        for (const o of [prev, orig]) {
          if (finalName.get(o) !== o && !rename.has(o)) {
            finalName.set(o, o);
            changed = true;
          }
        }
      } else owner.set(nn, orig);
    }
  }

  let count = 0;
  const t = (x: string) => {
    if (!x) return x;
    const y = finalName.get(x) ?? x;
    if (y !== x) count++;
    return y;
  };
  forEachGraph(g, (x) => {
    // Node names follow the same rule as tensor names: a renamed node whose new name is taken
    // (a node of a removed layer that a later layer still reads survives under its old
    // number) keeps its old name, since onnxruntime refuses two nodes of one name.
    const newNames = x.node.map((n) =>
      n.name.replace(re, (m, pre: string, num: string) => {
        const ni = newIndex.get(Number(num));
        return ni === undefined ? m : pre + ni;
      }),
    );
    for (let changed = true; changed; ) {
      changed = false;
      const taken = new Map<string, number>();
      for (const nn of newNames) if (nn) taken.set(nn, (taken.get(nn) ?? 0) + 1);
      newNames.forEach((nn, i) => {
        if (nn && nn !== x.node[i].name && taken.get(nn)! > 1) {
          newNames[i] = x.node[i].name;
          changed = true;
        }
      });
    }
    x.node.forEach((n, i) => {
      n.input = n.input.map(t);
      n.output = n.output.map(t);
      n.name = newNames[i];
    });
    x.initializer = x.initializer.map((ti) => (finalName.get(ti.name) !== ti.name ? { ...ti, name: finalName.get(ti.name)! } : ti));
    for (const v of [...x.input, ...x.output, ...x.valueInfo]) v.name = finalName.get(v.name) ?? v.name;
  });
  return count;
}

/** Returns a copy of the model with one initializer's values replaced (same shape and dtype). */
export function replaceInitializer(model: ModelProto, name: string, values: Float32Array | Float64Array, original: TensorProto): ModelProto {
  const out = { ...model, graph: { ...model.graph, initializer: [...model.graph.initializer] } };
  const i = out.graph.initializer.findIndex((t) => t.name === name);
  if (i < 0) throw new Error(`no initializer named ${name}`);
  const n = original.dims.reduce((a, b) => a * b, 1);
  if (values.length !== n) throw new Error(`replacement for ${name} has ${values.length} values, expected ${n}`);
  const dt = original.dataType === DataType.UNDEFINED ? DataType.FLOAT : original.dataType;
  out.graph.initializer[i] = { name, dataType: dt, dims: [...original.dims], rawData: float32ToBytes(values, dt), unknown: original.unknown };
  return out;
}
