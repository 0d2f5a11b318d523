// Cuts a decoder graph into pieces that run one after another: a prologue (everything the
// layers share that is computed from the graph inputs: mask bias, rotary cos/sin, seqlens_k,
// ...), one piece per layer (residual stream in -> residual stream out) and a head (residual
// after the last layer -> logits). Pieces reference the same initializers (external data
// stays where it is), so a layer-wise runner never holds more than the pieces it has open.
//
// Every node gets a segment: -1 prologue, 0..L-1 layer, L head; nodes computed from
// initializers only (shape constants) get none and are copied into each piece that reads them.
// A node's segment is the latest segment among the tensors it reads, the residual stream
// entering layer k counting as segment k. Shape/Size of the embeddings only read their shape,
// which the prologue knows, so they stay in the prologue (otherwise the mask would be computed
// inside layer 0 and skipping layer 0 would lose it).

import { makeNode, makeValueInfo } from '../onnx/builder';
import { attrFloat, DataType, GraphProto, ModelProto, NodeProto } from '../onnx/proto';
import { GraphIndex, nodeReads } from './graphIndex';
import { DecoderStructure, discoverLayers, LayerDiscoveryError } from './layers';
import { cloneModel } from './surgery';

export const PROLOGUE = -1;
/** Name given to the residual stream after the last layer when a fused final norm hides it. */
export const FINAL_RESIDUAL = 'short_lvlm.final_residual';
const CONSTANT = Number.NEGATIVE_INFINITY;
const SKIP_NORMS = new Set(['SkipSimplifiedLayerNormalization', 'SkipLayerNormalization']);
const SHAPE_ONLY = new Set(['Shape', 'Size']);

export interface DecoderCut {
  /** The decoder with layer-boundary Skip*Norms split into Add + norm (same tensor names). */
  model: ModelProto;
  structure: DecoderStructure;
  /** residuals[k]: the residual stream entering layer k; residuals[L]: after the last layer. */
  residuals: string[];
  logits: string;
  /** Tensors the prologue computes for the layers (and the head); empty when there are none. */
  shared: string[];
  /** Per segment (index seg + 1): the nodes of that piece, in graph order, constants included. */
  pieceNodes: NodeProto[][];
  /** Per segment (index seg + 1): tensors the piece reads from outside (residual, shared, graph inputs). */
  pieceInputs: string[][];
  /** Per segment: tensors the piece computes (for validating requested taps). */
  produced: Set<string>[];
}

export interface PieceTypes {
  /** ONNX element type and rank of each input the piece will be fed. */
  [input: string]: { elemType: number; rank: number };
}

/**
 * Replaces a Skip*Norm (input, skip, gamma[, beta / bias]) by Add(input, skip[, bias]) -> sum and
 * a plain norm of the sum, keeping its output names, so the residual stream becomes an
 * ordinary tensor at the layer boundary (output 0 of the fused op is norm(input + skip)).
 */
function splitSkipNorm(g: GraphProto, n: NodeProto, sumName: string): void {
  const simplified = n.opType === 'SkipSimplifiedLayerNormalization';
  const bias = simplified ? n.input[3] : n.input[4];
  const eps = attrFloat(n, 'epsilon', 1e-5)!;
  const added: NodeProto[] = [];
  const firstSum = bias ? `${sumName}.pre_bias` : sumName;
  added.push(makeNode('Add', [n.input[0], n.input[1]], [firstSum], { name: `${n.name}/residual_add` }));
  if (bias) added.push(makeNode('Add', [firstSum, bias], [sumName], { name: `${n.name}/residual_bias` }));
  if (n.output[0]) {
    const norm = simplified
      ? makeNode('SimplifiedLayerNormalization', [sumName, n.input[2]], [n.output[0]], { name: `${n.name}/norm`, attrs: { axis: -1, epsilon: { float: eps }, stash_type: 1 } })
      : makeNode('LayerNormalization', [sumName, n.input[2], ...(n.input[3] ? [n.input[3]] : [])], [n.output[0]], { name: `${n.name}/norm`, attrs: { axis: -1, epsilon: { float: eps } } });
    added.push(norm);
  }
  g.node.splice(g.node.indexOf(n), 1, ...added);
}

export function cutDecoder(model: ModelProto): DecoderCut {
  const out = cloneModel(model);
  const g = out.graph;
  const structure = discoverLayers(g);
  const L = structure.layers.length;
  const residuals = structure.layers.map((l) => l.residualIn);
  let final = structure.layers[L - 1].residualOut;

  // Layer boundaries hidden inside Skip*Norms become plain tensors.
  for (let i = 1; i < L; i++) {
    const n = structure.layers[i].inputNorm;
    if (n && SKIP_NORMS.has(n.opType) && n.output[3] === residuals[i]) splitSkipNorm(g, n, residuals[i]);
  }
  if (structure.finalNorm && SKIP_NORMS.has(structure.finalNorm.opType)) {
    // The final norm adds the last MLP: its sum output (often unused) is the stream.
    final = structure.finalNorm.output[3] || FINAL_RESIDUAL;
    splitSkipNorm(g, structure.finalNorm, final);
  }
  if (!final) throw new LayerDiscoveryError('cannot find the residual stream after the last layer');
  residuals.push(final);
  const residualIndex = new Map(residuals.map((r, k) => [r, k]));

  const idx = new GraphIndex(g);
  if (!idx.graphOutputs.has(structure.logits)) throw new LayerDiscoveryError(`the decoder has no logits output "${structure.logits}"`);
  const segOfNode = new Map<NodeProto, number>();
  const segOfTensor = (t: string, reader: NodeProto): number => {
    const k = residualIndex.get(t);
    if (k !== undefined) return k === 0 && SHAPE_ONLY.has(reader.opType) ? PROLOGUE : k;
    if (idx.initializers.has(t)) return CONSTANT;
    const p = idx.producer.get(t);
    if (p) return nodeSeg(p);
    if (idx.graphInputs.has(t)) return PROLOGUE;
    throw new LayerDiscoveryError(`tensor "${t}" read by ${reader.name || reader.opType} is neither produced, an input nor an initializer`);
  };
  const nodeSeg = (n: NodeProto): number => {
    const known = segOfNode.get(n);
    if (known !== undefined) return known;
    // Iterative over producers would be longer; graphs are topologically sorted, so the
    // recursion depth stays at the distance to an already visited node.
    let s = CONSTANT;
    for (const t of nodeReads(n)) s = Math.max(s, segOfTensor(t, n));
    segOfNode.set(n, s);
    return s;
  };
  for (const n of g.node) nodeSeg(n);

  // A residual tensor belongs to the segment that reads it, but is produced by the one before.
  const producedSeg = (t: string): number | undefined => {
    const p = idx.producer.get(t);
    return p ? segOfNode.get(p) : undefined;
  };
  for (let k = 1; k <= L; k++) {
    if (producedSeg(residuals[k]) !== k - 1) {
      throw new LayerDiscoveryError(`the residual stream after layer ${k - 1} ("${residuals[k]}") is not computed by that layer`);
    }
  }

  // Each piece: the ancestors of what it must output, stopping at what it is fed.
  const pieceNodes: NodeProto[][] = [];
  const pieceInputs: string[][] = [];
  const produced: Set<string>[] = [];
  const shared = new Set<string>();
  const order = new Map(g.node.map((n, i) => [n, i]));
  const collect = (seg: number, outputs: string[]): void => {
    const stop = new Set<string>(seg >= 0 ? [residuals[seg]] : []);
    const nodes = new Set<NodeProto>();
    const inputs = new Set<string>();
    walkBack(outputs, (t) => {
      if (stop.has(t)) {
        inputs.add(t);
        return [];
      }
      if (idx.initializers.has(t)) return [];
      const p = idx.producer.get(t);
      if (!p) {
        inputs.add(t); // a graph input
        return [];
      }
      const ps = segOfNode.get(p)!;
      if (ps === seg || ps === CONSTANT) {
        if (nodes.has(p)) return [];
        nodes.add(p);
        return nodeReads(p);
      }
      if (ps === PROLOGUE && seg >= 0) {
        inputs.add(t);
        shared.add(t);
        return [];
      }
      throw new LayerDiscoveryError(`${segName(seg, L)} reads "${t}", computed in ${segName(ps, L)}: the decoder cannot be cut into layers`);
    });
    const sorted = [...nodes].sort((a, b) => order.get(a)! - order.get(b)!);
    pieceNodes[seg + 1] = sorted;
    pieceInputs[seg + 1] = [...inputs];
    produced[seg + 1] = new Set(sorted.flatMap((n) => n.output.filter((o) => o)));
  };

  // Layers first (they decide which prologue tensors are shared), then the head, then the
  // prologue, which outputs the shared tensors and the first residual if it computes it.
  for (let k = 0; k < L; k++) {
    const wanted = [residuals[k + 1], ...layerSideOutputs(structure, k, idx)];
    collect(k, wanted);
  }
  collect(L, [structure.logits]);
  const prologueOutputs = [...shared];
  if (idx.producer.has(residuals[0])) prologueOutputs.push(residuals[0]);
  collect(PROLOGUE, prologueOutputs);
  return { model: out, structure, residuals, logits: structure.logits, shared: [...shared], pieceNodes, pieceInputs, produced };
}

/**
 * Tensors of layer k that are not on its path to the residual but that callers commonly tap
 * (the present key/value): collected so a piece's node set includes them when asked.
 */
function layerSideOutputs(s: DecoderStructure, k: number, idx: GraphIndex): string[] {
  const l = s.layers[k];
  return [l.presentKey, l.presentValue].filter((t): t is string => !!t && idx.producer.has(t));
}

/** Visits each tensor once, from `start` backwards through whatever `visit` returns to read next. */
function walkBack(start: string[], visit: (t: string) => string[]): void {
  const stack = [...start];
  const seen = new Set<string>();
  while (stack.length) {
    const t = stack.pop()!;
    if (seen.has(t)) continue;
    seen.add(t);
    stack.push(...visit(t));
  }
}

function segName(seg: number, L: number): string {
  return seg === PROLOGUE ? 'the prologue' : seg === L ? 'the head' : `layer ${seg}`;
}

/**
 * The piece of segment `seg` as a model of its own: its nodes, the initializers they read
 * (external references kept as they are), inputs typed as they will be fed, and outputs
 * (untyped: onnxruntime infers them).
 */
export function pieceModel(cut: DecoderCut, seg: number, outputs: string[], types: PieceTypes): ModelProto {
  const L = cut.structure.layers.length;
  const nodes = cut.pieceNodes[seg + 1];
  if (!nodes) throw new Error(`no piece ${seg}: the decoder has ${L} layers`);
  const made = cut.produced[seg + 1];
  for (const o of outputs) {
    const isFedThrough = cut.pieceInputs[seg + 1].includes(o);
    if (!made.has(o) && !isFedThrough) throw new Error(`${segName(seg, L)} does not compute "${o}"`);
  }
  // Only the nodes the requested outputs need (a piece may compute side outputs, e.g. present.*).
  const byOutput = new Map<string, NodeProto>();
  for (const n of nodes) for (const o of n.output) if (o) byOutput.set(o, n);
  const keep = new Set<NodeProto>();
  walkBack(outputs, (t) => {
    const p = byOutput.get(t);
    if (!p || keep.has(p)) return [];
    keep.add(p);
    return nodeReads(p);
  });
  const kept = nodes.filter((n) => keep.has(n));
  const reads = new Set(kept.flatMap((n) => nodeReads(n)));
  for (const o of outputs) reads.add(o);
  const src = cut.model.graph;
  const inputs = cut.pieceInputs[seg + 1].filter((t) => reads.has(t));
  const m = cloneModel({ ...cut.model, graph: { ...src, node: [], initializer: [], input: [], output: [], valueInfo: [] } });
  m.graph.node = kept;
  m.graph.initializer = src.initializer.filter((t) => reads.has(t.name));
  m.graph.input = inputs.map((t) => {
    const ty = types[t];
    if (!ty) throw new Error(`${segName(seg, L)}: no type for its input "${t}"`);
    return makeValueInfo(t, ty.elemType, new Array(ty.rank).fill(undefined));
  });
  m.graph.output = outputs.map((o) => ({ name: o, unknown: [] }));
  m.graph.name = `${src.name || 'decoder'}_${seg === PROLOGUE ? 'prologue' : seg === L ? 'head' : `layer${seg}`}`;
  return m;
}

/** onnxruntime tensor type -> ONNX element type. */
export function onnxElemType(t: string): number {
  const map: Record<string, number> = {
    float32: DataType.FLOAT,
    float16: DataType.FLOAT16,
    float64: DataType.DOUBLE,
    int64: DataType.INT64,
    int32: DataType.INT32,
    int8: DataType.INT8,
    uint8: DataType.UINT8,
    bool: DataType.BOOL,
  };
  const v = map[t];
  if (v === undefined) throw new Error(`unsupported tensor type ${t} at a piece boundary`);
  return v;
}
