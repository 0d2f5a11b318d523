// Finds the decoder layers of an ONNX decoder graph by structure, not by names: the residual
// stream is walked from the embeddings to the final norm (a chain of residual Adds, or of
// Skip*LayerNormalization nodes whose 4th output is the running sum), consecutive residual
// steps are grouped into layers, and each layer is anchored on the KV-cache input it reads.
// Node names serve only as a cross-check.

import { GraphProto, NodeProto } from '../onnx/proto';
import { GraphIndex } from './graphIndex';

export type AttentionStyle = 'decomposed' | 'fused';

export interface WeightRef {
  /** Initializer name of the weight. */
  name: string;
  /** The node that consumes it (MatMul, Gemm, ...). */
  node: NodeProto;
  /** True when stored as [in, out] (MatMul); false for Gemm with transB=1 ([out, in]). */
  inOut: boolean;
}

export interface AttentionTap {
  kind: 'probs' | 'qk';
  /** 'probs': the Softmax output [B, heads, S, T]. */
  probs?: string;
  /** 'qk': the attention op, its query input [B,S,heads*hd] and present-key output [B,kv,T,hd] (rotary applied). */
  node?: NodeProto;
  query?: string;
  key?: string;
  presentKey?: string;
  numHeads?: number;
  kvNumHeads?: number;
  doRotary?: boolean;
  cosCache?: string;
  sinCache?: string;
  rotaryInterleaved?: boolean;
  /**
   * Where q and k are rotated: inside the op (do_rotary=1, from its cos/sin caches), by
   * com.microsoft RotaryEmbedding nodes before it (the op's q and k inputs are rotated), or
   * nowhere. Either way the op's present key is the rotated key.
   */
  rotary?: 'in-attention' | 'nodes' | 'none';
}

export interface LayerInfo {
  index: number;
  /** Residual stream entering the layer and leaving it ('' when fused into the final norm). */
  residualIn: string;
  residualMid: string;
  residualOut: string;
  /** The nodes that add attention and MLP into the residual stream. */
  attnStep: NodeProto;
  mlpStep: NodeProto;
  /** Fused style: the norm node feeding this layer's attention (Simplified or Skip* norm). */
  inputNorm?: NodeProto;
  kvIndex: number;
  pastKey?: string;
  pastValue?: string;
  presentKey?: string;
  presentValue?: string;
  oProj?: WeightRef;
  downProj?: WeightRef;
  /** Weights reading the normed residual (q, k, v / gate, up), for the input-side SCP variant. */
  attnInputWeights: WeightRef[];
  mlpInputWeights: WeightRef[];
  attention?: AttentionTap;
  /** Layer number seen in node names (`layers.N`), for cross-checking. */
  nameIndex?: number;
}

export interface DecoderStructure {
  style: AttentionStyle;
  embeddings: string;
  hiddenSize?: number;
  layers: LayerInfo[];
  /** Residual stream after the last layer ('' when fused into the final norm). */
  finalResidual: string;
  finalNorm?: NodeProto;
  logits: string;
  pastKeyPattern?: string;
  pastValuePattern?: string;
  presentKeyPattern?: string;
  presentValuePattern?: string;
  warnings: string[];
}

export class LayerDiscoveryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LayerDiscoveryError';
  }
}

const SKIP_NORMS = new Set(['SkipSimplifiedLayerNormalization', 'SkipLayerNormalization']);
const PLAIN_NORMS = new Set(['SimplifiedLayerNormalization', 'LayerNormalization', 'RMSNormalization']);
const FUSED_ATTENTION = new Set(['GroupQueryAttention', 'MultiHeadAttention', 'Attention', 'PagedAttention']);
const LINEAR_OPS = new Set(['MatMul', 'Gemm', 'MatMulNBits', 'MatMulInteger', 'FusedMatMul', 'MatMulBnb4']);

interface KvNames {
  past: Map<number, { key?: string; value?: string }>;
  present: Map<number, { key?: string; value?: string }>;
  pastKeyPattern?: string;
  pastValuePattern?: string;
  presentKeyPattern?: string;
  presentValuePattern?: string;
}

function kvNames(graph: GraphProto): KvNames {
  const res: KvNames = { past: new Map(), present: new Map() };
  const re = /^(.*?)(\d+)(.*)$/;
  const visit = (name: string, map: Map<number, { key?: string; value?: string }>, isPast: boolean) => {
    const lower = name.toLowerCase();
    const isKey = /key|\.k$|_k$/.test(lower.replace(/past_key_values|present_key_values/, ''));
    const isValue = /value|\.v$|_v$/.test(lower.replace(/past_key_values|present_key_values/, ''));
    if (!isKey && !isValue) return;
    const m = re.exec(name);
    if (!m) return;
    const idx = Number(m[2]);
    const pattern = `${m[1]}%d${m[3]}`;
    const e = map.get(idx) ?? {};
    if (isKey) e.key = name;
    else e.value = name;
    map.set(idx, e);
    if (isPast) {
      if (isKey) res.pastKeyPattern = pattern;
      else res.pastValuePattern = pattern;
    } else if (isKey) res.presentKeyPattern = pattern;
    else res.presentValuePattern = pattern;
  };
  for (const v of graph.input) if (/^past/i.test(v.name)) visit(v.name, res.past, true);
  for (const v of graph.output) if (/^present/i.test(v.name)) visit(v.name, res.present, false);
  return res;
}

function findEmbeddings(graph: GraphProto, idx: GraphIndex): string {
  if (idx.graphInputs.has('inputs_embeds')) return 'inputs_embeds';
  const embedsLike = graph.input.find((v) => /embed/i.test(v.name) && (v.shape?.length ?? 3) === 3);
  if (embedsLike) return embedsLike.name;
  const ids = graph.input.find((v) => v.name === 'input_ids');
  if (ids) {
    const gather = idx.consumersOf(ids.name).find((n) => n.opType === 'Gather' && idx.initializers.has(n.input[0]));
    if (gather) return gather.output[0];
  }
  throw new LayerDiscoveryError('cannot find the decoder input: expected an `inputs_embeds` input or an embedding Gather on `input_ids`');
}

interface Step {
  node: NodeProto;
  in: string;
  out: string;
  /** The branch that is added into the residual stream. */
  branch: string;
}

/** Walks the residual stream from the embeddings; each step adds one block's output. */
function residualSteps(idx: GraphIndex, start: string): { steps: Step[]; final: string; finalNorm?: NodeProto } {
  const steps: Step[] = [];
  let cur = start;
  for (let guard = 0; guard < 100000; guard++) {
    const candidates: Step[] = [];
    for (const c of idx.consumersOf(cur)) {
      if (c.opType === 'Add' && c.input.length === 2) {
        const other = c.input[0] === cur ? c.input[1] : c.input[0];
        if (other !== cur && !idx.initializers.has(other) && idx.dependsOn(other, cur)) {
          candidates.push({ node: c, in: cur, out: c.output[0], branch: other });
        }
      } else if (SKIP_NORMS.has(c.opType) && (c.input[0] === cur || c.input[1] === cur)) {
        const other = c.input[0] === cur ? c.input[1] : c.input[0];
        // The branch reads the normed output (output 0) of the node whose sum output (3) is
        // `cur`, not `cur` itself: it depends on the stream through that node.
        const p = idx.producer.get(cur);
        const fromStream = idx.dependsOn(other, cur) || (p !== undefined && SKIP_NORMS.has(p.opType) && idx.ancestors([other]).has(p));
        if (fromStream) candidates.push({ node: c, in: cur, out: c.output[3] ?? '', branch: other });
      }
    }
    if (candidates.length === 0) return { steps, final: cur };
    if (candidates.length > 1) {
      throw new LayerDiscoveryError(`ambiguous residual stream at tensor "${cur}": ${candidates.length} residual additions read it (${candidates.map((c) => c.node.name || c.node.opType).join(', ')})`);
    }
    const s = candidates[0];
    steps.push(s);
    if (!s.out || !idx.isUsed(s.out)) {
      // A Skip*Norm without a used sum output is the final norm, fused with the last MLP add.
      return { steps, final: s.out, finalNorm: s.node };
    }
    cur = s.out;
  }
  throw new LayerDiscoveryError('residual stream does not end');
}

/** Follows a block's output back to the linear layer that produced it (through bias Adds, Reshapes). */
function producingLinear(idx: GraphIndex, tensor: string): WeightRef | undefined {
  let t = tensor;
  for (let hops = 0; hops < 6; hops++) {
    const p = idx.producer.get(t);
    if (!p) return undefined;
    if (LINEAR_OPS.has(p.opType)) return weightOf(idx, p);
    // Dynamic 8-bit quantisation: Mul(Cast(MatMulInteger(...)), input scale * weight scale).
    const integer = p.opType === 'Mul' ? p.input.map((i) => idx.producer.get(i)).find((c) => c?.opType === 'Cast' && idx.producer.get(c.input[0])?.opType === 'MatMulInteger') : undefined;
    if (integer) return weightOf(idx, idx.producer.get(integer.input[0])!);
    if (p.opType === 'Add' || p.opType === 'Reshape' || p.opType === 'Cast' || p.opType === 'Identity') {
      const next = p.input.find((i) => !idx.initializers.has(i) && idx.producer.has(i));
      if (!next) return undefined;
      t = next;
      continue;
    }
    return undefined;
  }
  return undefined;
}

/**
 * Whether another weighted linear of the block reads this node's output (through any of the
 * block's ops). The block's output-side linears (o_proj, down_proj) do not, even when a norm
 * sits between them and the residual add (Gemma's sandwich norms), so they are never taken
 * for input-side weights.
 */
function feedsLinear(idx: GraphIndex, start: NodeProto, block: Set<NodeProto>): boolean {
  const seen = new Set<NodeProto>();
  const stack = [...start.output];
  while (stack.length) {
    for (const c of idx.consumersOf(stack.pop()!)) {
      if (!block.has(c) || seen.has(c)) continue;
      if (LINEAR_OPS.has(c.opType) && weightOf(idx, c)) return true;
      seen.add(c);
      stack.push(...c.output);
    }
  }
  return false;
}

function weightOf(idx: GraphIndex, n: NodeProto): WeightRef | undefined {
  const w = n.input[1];
  if (w && idx.initializers.has(w)) {
    const transB = n.opType === 'Gemm' && n.attribute.some((a) => a.name === 'transB' && a.i === 1n);
    return { name: w, node: n, inOut: n.opType !== 'MatMulNBits' && !transB };
  }
  // Weight through a Transpose of an initializer (some exporters keep [out, in] + Transpose).
  const p = w ? idx.producer.get(w) : undefined;
  if (p && p.opType === 'Transpose' && idx.initializers.has(p.input[0])) return { name: p.input[0], node: n, inOut: false };
  return undefined;
}

function layerNumberInName(nodes: Iterable<NodeProto>): number | undefined {
  const counts = new Map<number, number>();
  for (const n of nodes) {
    const m = /layers?[._/](\d+)/.exec(n.name);
    if (m) counts.set(Number(m[1]), (counts.get(Number(m[1])) ?? 0) + 1);
  }
  let best: number | undefined;
  let bestCount = 0;
  for (const [k, c] of counts) if (c > bestCount) [best, bestCount] = [k, c];
  return best;
}

export function discoverLayers(graph: GraphProto): DecoderStructure {
  const idx = new GraphIndex(graph);
  const warnings: string[] = [];
  const embeddings = findEmbeddings(graph, idx);
  // A float16 decoder with float32 inputs casts the embeddings first: the stream starts there.
  const only = idx.consumersOf(embeddings);
  const start = only.length === 1 && only[0].opType === 'Cast' ? only[0].output[0] : embeddings;
  const { steps, final, finalNorm: fusedFinalNorm } = residualSteps(idx, start);
  const kv = kvNames(graph);
  const style: AttentionStyle = graph.node.some((n) => FUSED_ATTENTION.has(n.opType) && n.domain === 'com.microsoft') ? 'fused' : 'decomposed';
  if (steps.length < 2 || steps.length % 2 !== 0) {
    throw new LayerDiscoveryError(`found ${steps.length} residual additions from "${embeddings}"; expected two per decoder layer (attention and MLP). Parallel-residual architectures are not supported yet`);
  }
  const numLayers = steps.length / 2;
  if (kv.past.size && kv.past.size !== numLayers) {
    warnings.push(`graph has ${kv.past.size} past_key_values pairs but ${numLayers} residual layers`);
  }

  const pastIndexOf = new Map<string, number>();
  for (const [i, e] of kv.past) {
    if (e.key) pastIndexOf.set(e.key, i);
    if (e.value) pastIndexOf.set(e.value, i);
  }

  const layers: LayerInfo[] = [];
  for (let i = 0; i < numLayers; i++) {
    const attnStep = steps[2 * i];
    const mlpStep = steps[2 * i + 1];
    const residualIn = attnStep.in;
    // Nodes of the attention block: ancestors of the branch that are not ancestors of the residual.
    const before = idx.ancestors([residualIn]);
    const attnNodes = [...idx.ancestors([attnStep.branch])].filter((n) => !before.has(n));
    const midAnc = idx.ancestors([mlpStep.in]);
    const mlpNodes = [...idx.ancestors([mlpStep.branch])].filter((n) => !midAnc.has(n));

    // KV anchor: the past input read by this layer's attention block.
    const pastRead = new Set<number>();
    for (const n of attnNodes) for (const inp of n.input) if (pastIndexOf.has(inp)) pastRead.add(pastIndexOf.get(inp)!);
    let kvIndex = i;
    if (pastRead.size === 1) kvIndex = [...pastRead][0];
    else if (pastRead.size > 1) {
      // Shared mask computation may read past 0; the layer's own cache is the other one.
      const own = [...pastRead].filter((k) => k !== 0 || i === 0);
      kvIndex = own.length === 1 ? own[0] : i;
    } else if (kv.past.size) warnings.push(`layer ${i}: no past_key_values input found in its attention block`);

    const attnInputWeights: WeightRef[] = [];
    const mlpInputWeights: WeightRef[] = [];
    const oProj = producingLinear(idx, attnStep.branch);
    const downProj = producingLinear(idx, mlpStep.branch);
    const attnSet = new Set(attnNodes);
    const mlpSet = new Set(mlpNodes);
    for (const n of attnNodes) {
      if (!LINEAR_OPS.has(n.opType) || n === oProj?.node || !feedsLinear(idx, n, attnSet)) continue;
      const w = weightOf(idx, n);
      if (w) attnInputWeights.push(w);
    }
    for (const n of mlpNodes) {
      if (!LINEAR_OPS.has(n.opType) || n === downProj?.node || !feedsLinear(idx, n, mlpSet)) continue;
      const w = weightOf(idx, n);
      if (w) mlpInputWeights.push(w);
    }

    const attention = findAttentionTap(idx, attnNodes);
    if (!attention) warnings.push(`layer ${i}: no attention probabilities or fused attention op found`);

    let inputNorm: NodeProto | undefined;
    if (style === 'fused' || SKIP_NORMS.has(attnStep.node.opType)) {
      inputNorm = i === 0 ? idx.consumersOf(residualIn).find((n) => PLAIN_NORMS.has(n.opType)) : steps[2 * i - 1].node;
      if (!inputNorm || !(PLAIN_NORMS.has(inputNorm.opType) || SKIP_NORMS.has(inputNorm.opType))) {
        throw new LayerDiscoveryError(`layer ${i}: cannot find the normalization feeding its attention`);
      }
    }

    const nameIndex = layerNumberInName([...attnNodes, ...mlpNodes]);
    if (nameIndex !== undefined && nameIndex !== i) warnings.push(`layer ${i}: node names say layers.${nameIndex}`);
    if (kvIndex !== i) warnings.push(`layer ${i} reads past_key_values ${kvIndex}`);

    layers.push({
      index: i,
      residualIn,
      residualMid: attnStep.out,
      residualOut: mlpStep.out,
      attnStep: attnStep.node,
      mlpStep: mlpStep.node,
      inputNorm,
      kvIndex,
      pastKey: kv.past.get(kvIndex)?.key,
      pastValue: kv.past.get(kvIndex)?.value,
      presentKey: kv.present.get(kvIndex)?.key,
      presentValue: kv.present.get(kvIndex)?.value,
      oProj,
      downProj,
      attnInputWeights,
      mlpInputWeights,
      attention,
      nameIndex,
    });
  }

  const logits = graph.output.find((o) => /logits/i.test(o.name))?.name ?? graph.output[0]?.name ?? '';
  const embedsInfo = graph.input.find((v) => v.name === embeddings) ?? graph.valueInfo.find((v) => v.name === embeddings);
  const lastDim = embedsInfo?.shape?.[embedsInfo.shape.length - 1]?.value;
  return {
    style,
    embeddings,
    hiddenSize: lastDim,
    layers,
    finalResidual: final,
    finalNorm: fusedFinalNorm,
    logits,
    pastKeyPattern: kv.pastKeyPattern,
    pastValuePattern: kv.pastValuePattern,
    presentKeyPattern: kv.presentKeyPattern,
    presentValuePattern: kv.presentValuePattern,
    warnings,
  };
}

function findAttentionTap(idx: GraphIndex, attnNodes: NodeProto[]): AttentionTap | undefined {
  const fused = attnNodes.find((n) => FUSED_ATTENTION.has(n.opType));
  if (fused) {
    const a = (name: string) => fused.attribute.find((x) => x.name === name);
    const doRotary = a('do_rotary')?.i === 1n;
    const rotatedBefore = producedThrough(idx, fused.input[0], 'RotaryEmbedding');
    return {
      kind: 'qk',
      node: fused,
      query: fused.input[0],
      key: fused.input[1],
      presentKey: fused.output[1] || undefined,
      numHeads: a('num_heads')?.i !== undefined ? Number(a('num_heads')!.i) : undefined,
      kvNumHeads: a('kv_num_heads')?.i !== undefined ? Number(a('kv_num_heads')!.i) : undefined,
      doRotary,
      rotary: doRotary ? 'in-attention' : rotatedBefore ? 'nodes' : 'none',
      rotaryInterleaved: a('rotary_interleaved')?.i === 1n,
      cosCache: fused.input[7] || undefined,
      sinCache: fused.input[8] || undefined,
    };
  }
  const softmax = attnNodes.filter((n) => n.opType === 'Softmax');
  if (softmax.length === 1) return { kind: 'probs', probs: softmax[0].output[0] };
  return undefined;
}

/** True when `tensor` comes from an `opType` node, possibly through reshapes (M-RoPE graphs reshape around it). */
function producedThrough(idx: GraphIndex, tensor: string, opType: string): boolean {
  let t = tensor;
  for (let hops = 0; hops < 4; hops++) {
    const p = idx.producer.get(t);
    if (!p) return false;
    if (p.opType === opType) return true;
    if (p.opType !== 'Reshape' && p.opType !== 'Transpose' && p.opType !== 'Identity' && p.opType !== 'Cast') return false;
    t = p.input[0];
  }
  return false;
}
