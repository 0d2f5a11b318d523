// Builds a variant of the decoder that also outputs every layer's residual stream and its
// attention (the Softmax probabilities, or the fused op's query and rotated keys), so that
// one calibration run sees everything the method needs. Only graph outputs are added: the
// computation is unchanged.

import { makeValueInfo } from '../onnx/builder';
import { DataType, ModelProto } from '../onnx/proto';
import { FINAL_RESIDUAL } from './cut';
import { GraphIndex } from './graphIndex';
import { discoverLayers, DecoderStructure } from './layers';
import { cloneModel } from './surgery';

export interface LayerTaps {
  /** Output name of the residual stream entering layer i ('' for the graph input itself). */
  residualIn: string;
  /** Residual stream between attention and MLP (after the attention add). */
  residualMid: string;
  residualOut: string;
  /** Attention probabilities [B, heads, S, T] (decomposed style). */
  probs?: string;
  /** Fused style: query before rotary [B, S, heads*hd] and present key after rotary [B, kv, T, hd]. */
  query?: string;
  presentKey?: string;
}

export interface Instrumented {
  model: ModelProto;
  structure: DecoderStructure;
  taps: LayerTaps[];
  /** Graph input holding the residual stream entering layer 0. */
  embeddings: string;
}


export function instrumentDecoder(model: ModelProto, opts: { attention?: boolean; layers?: number[] } = {}): Instrumented {
  const out = cloneModel(model);
  const g = out.graph;
  const structure = discoverLayers(g);
  const idx = new GraphIndex(g);
  const existing = new Set(g.output.map((o) => o.name));
  // The stream's type: the embeddings', or what a float16 decoder casts them to first.
  const cast = idx.producer.get(structure.layers[0]?.residualIn ?? '');
  const castTo = cast?.opType === 'Cast' ? cast.attribute.find((a) => a.name === 'to')?.i : undefined;
  const embedsType = castTo !== undefined ? Number(castTo) : g.input.find((v) => v.name === structure.embeddings)?.elemType ?? DataType.FLOAT;
  const addOutput = (name: string, elemType = embedsType) => {
    if (!name || existing.has(name) || idx.graphInputs.has(name)) return;
    existing.add(name);
    g.output.push(makeValueInfo(name, elemType, []));
    // Rank unknown: drop the empty shape so onnxruntime does not insist on rank 0.
    delete g.output[g.output.length - 1].shape;
  };

  const want = new Set(opts.layers ?? structure.layers.map((l) => l.index));
  const taps: LayerTaps[] = [];
  for (const l of structure.layers) {
    let residualOut = l.residualOut;
    if (!residualOut && l.index === structure.layers.length - 1 && structure.finalNorm) {
      // Fused final norm: ask it for its optional sum output.
      const fn = g.node.find((n) => n === structure.finalNorm)!;
      while (fn.output.length < 4) fn.output.push('');
      fn.output[3] = FINAL_RESIDUAL;
      residualOut = FINAL_RESIDUAL;
    }
    const tap: LayerTaps = { residualIn: l.residualIn === structure.embeddings ? '' : l.residualIn, residualMid: l.residualMid, residualOut };
    if (want.has(l.index)) {
      addOutput(tap.residualIn);
      addOutput(tap.residualMid);
      addOutput(residualOut);
    }
    if (opts.attention !== false && want.has(l.index) && l.attention) {
      if (l.attention.kind === 'probs' && l.attention.probs) {
        tap.probs = l.attention.probs;
        addOutput(tap.probs);
      } else if (l.attention.kind === 'qk') {
        tap.query = l.attention.query;
        tap.presentKey = l.attention.presentKey;
        if (tap.query) addOutput(tap.query);
        if (tap.presentKey && !existing.has(tap.presentKey)) addOutput(tap.presentKey);
      }
    }
    taps.push(tap);
  }
  return { model: out, structure, taps, embeddings: structure.embeddings };
}
