// Calibration statistics computed inside onnxruntime, so that only per-token vectors leave it
// instead of every layer's [heads, S, S] attention and residual streams. Per layer, in float64:
//   from queries [1, 2, S] and to visual [1, S, 1]: of the head-averaged attention, what each
//     key receives from visual and from text query rows, and what each query gives visual
//     keys. Token importance follows from these and the token counts (method/tis.ts).
//   cos [1, S]: cosine of the residual stream entering and leaving the layer, per token.
// Few nodes per layer: onnxruntime's cost per node matters on small models.
// Attention probabilities come from the Softmax (decomposed style) or from
// GroupQueryAttention's own qk output after softmax (qk_output = 2, onnxruntime >= 1.22),
// which applies the model's real mask and rotary.

import { int64Tensor, makeAttr, makeNode, makeValueInfo } from '../onnx/builder';
import { DataType, NodeProto } from '../onnx/proto';
import { Instrumented } from './instrument';

/** Inputs the statistics read: the modality of each position, as float64 rows / a column. */
export const MODALITY_ROWS = 'short_lvlm.modality_rows'; // [2, S]: visual, text
export const VISUAL_COLUMN = 'short_lvlm.visual_column'; // [S, 1]

export interface StatsTaps {
  /** [1, 2, S] float64: head-averaged attention each key receives from visual (row 0) and text (row 1) queries. */
  fromQueries: string;
  /** [1, S, 1] float64: head-averaged attention each query gives visual keys. */
  toVisual: string;
  /** [1, S] float64 cosines; absent when computed outside (layer-wise). */
  cos?: string;
}

/** Whether every layer's attention probabilities can be had in the graph (Softmax or GroupQueryAttention). */
export function statsInGraphPossible(inst: Instrumented): boolean {
  return inst.structure.layers.every((l) => (l.attention?.kind === 'probs' && !!l.attention.probs) || (l.attention?.kind === 'qk' && l.attention.node?.opType === 'GroupQueryAttention'));
}

/**
 * Adds the statistics nodes and outputs to an instrumented decoder (in place: `inst.model` is
 * already a copy). `cosine: false` leaves the cosines out (a layer-wise runner has the
 * residual streams in hand and a node reading both ends of a layer cannot be cut into it).
 */
export function addCalibrationStats(inst: Instrumented, opts: { cosine: boolean }): StatsTaps[] {
  const m = inst.model;
  const g = m.graph;
  const opset = m.opsetImport.find((o) => o.domain === '' || o.domain === 'ai.onnx')?.version ?? 13;
  const nodes: NodeProto[] = [];
  let k = 0;
  const t = (what: string) => `short_lvlm.stats.${what}.${k++}`;
  const consts = new Map<string, string>();
  const axes = (values: number[]): string => {
    const name = `short_lvlm.stats.axes_${values.join('_').replace(/-/g, 'm')}`;
    if (!consts.has(name)) {
      g.initializer.push(int64Tensor(name, [values.length], values));
      consts.set(name, name);
    }
    return name;
  };
  // Axes became an input in opset 13 for ReduceSum and in opset 18 for ReduceMean.
  const reduce = (type: 'ReduceSum' | 'ReduceMean', x: string, ax: number[], out = t(type)): string => {
    const asInput = opset >= (type === 'ReduceSum' ? 13 : 18);
    nodes.push(asInput ? makeNode(type, [x, axes(ax)], [out], { attrs: { keepdims: 0 } }) : makeNode(type, [x], [out], { attrs: { axes: ax, keepdims: 0 } }));
    return out;
  };
  const op = (type: string, inputs: string[], attrs?: Record<string, number | number[]>): string => {
    const out = t(type.toLowerCase());
    nodes.push(makeNode(type, inputs, [out], { attrs }));
    return out;
  };
  const toDouble = (x: string) => op('Cast', [x], { to: DataType.DOUBLE });

  g.input.push(makeValueInfo(MODALITY_ROWS, DataType.DOUBLE, [2, 'sequence_length']));
  g.input.push(makeValueInfo(VISUAL_COLUMN, DataType.DOUBLE, ['sequence_length', 1]));

  // Each residual stream is cast and normalised once: it leaves one layer and enters the next.
  const unit = new Map<string, string>();
  const unitRows = (x: string): string => {
    let u = unit.get(x);
    if (!u) unit.set(x, (u = op('LpNormalization', [toDouble(x)], { axis: -1, p: 2 })));
    return u;
  };
  const taps: StatsTaps[] = [];
  for (const l of inst.structure.layers) {
    const tap = inst.taps[l.index];
    const a = l.attention;
    let probs: string | undefined;
    if (a?.kind === 'probs' && a.probs) probs = a.probs;
    else if (a?.kind === 'qk' && a.node?.opType === 'GroupQueryAttention') {
      const node = a.node; // a node of inst.model (instrumentation discovers layers on its copy)
      node.attribute = node.attribute.filter((x) => x.name !== 'qk_output');
      node.attribute.push(makeAttr('qk_output', 2)); // after softmax
      while (node.output.length < 4) node.output.push('');
      probs = node.output[3] || `short_lvlm.l${l.index}.probs`;
      node.output[3] = probs;
    }
    if (!probs) throw new Error(`layer ${l.index}: no attention probabilities to compute token importance from`);
    // Head average in the model's precision (an error of a few ulps), the sums over S rows in float64.
    const mean = toDouble(reduce('ReduceMean', probs, [1])); // [B, S, T]
    const out: StatsTaps = { fromQueries: `short_lvlm.l${l.index}.from_queries`, toVisual: `short_lvlm.l${l.index}.to_visual` };
    nodes.push(makeNode('MatMul', [MODALITY_ROWS, mean], [out.fromQueries]));
    nodes.push(makeNode('MatMul', [mean, VISUAL_COLUMN], [out.toVisual]));
    if (opts.cosine) {
      // A zero vector normalises to zeros here (cosine 0); method/cosine.ts calls it 1. Residual
      // streams are not zero.
      out.cos = `short_lvlm.l${l.index}.cos`;
      reduce('ReduceSum', op('Mul', [unitRows(tap.residualIn || inst.embeddings), unitRows(tap.residualOut)]), [-1], out.cos);
    }
    for (const o of [out.fromQueries, out.toVisual, out.cos]) if (o) g.output.push({ name: o, unknown: [] });
    taps.push(out);
  }
  g.node.push(...nodes);
  return taps;
}
