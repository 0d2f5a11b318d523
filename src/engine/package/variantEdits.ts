// One pruning applied to every dtype variant of a decoder (fp32, fp16, q4, q4f16, int8,
// uint8, quantized, bnb4): the same layers removed, and each weight that compensation
// replaced in the calibrated decoder replaced at the same place (layer, block, position) in
// the variant, re-encoded with the variant's own scheme. Names differ between variants,
// places do not.
//
// What a variant receives: when the calibrated weight is float, the new matrix itself,
// re-encoded (cast to fp16, or re-quantised with the same scheme and block size: the
// weight the variant's quantiser would have written from the compensated model); when the
// calibrated weight is itself quantised (no float variant in the package), the variant's own
// dequantised weight plus the update (new - old), re-encoded.

import { DecoderStructure, discoverLayers } from '../graph/layers';
import { GraphIndex } from '../graph/graphIndex';
import { encodeLinear, exclusiveTensors, layerLinears, LayerLinears, LinearWeight, NotRequantisable, readLinear, storedAsNK, transpose, weightPlaces, WeightPlace } from '../graph/linearWeights';
import { replaceInitializer } from '../graph/surgery';
import { OnnxFile } from '../onnx/onnxFile';
import { ModelProto, TensorProto } from '../onnx/proto';

/** A replaced weight of the calibrated decoder, as a [K, N] matrix at its place. */
export interface PlacedReplacement {
  key: string;
  place?: WeightPlace;
  /** New [K, N] values. */
  W: Float64Array;
  /** The calibrated decoder's weight before replacement, [K, N], when it is quantised (for the update). */
  before?: Float64Array;
  K: number;
  N: number;
}

export class VariantError extends Error {}

function kn(w: LinearWeight, values: Float32Array | Float64Array): Float64Array {
  const v = Float64Array.from(values);
  if (v.length !== w.K * w.N) throw new VariantError(`replacement for ${w.key} has ${v.length} values, expected ${w.K * w.N}`);
  return storedAsNK(w) ? transpose(v, w.N, w.K) : v;
}

export interface Linears {
  structure: DecoderStructure;
  linears: LayerLinears[];
}

export function linearsOf(file: OnnxFile): Linears {
  const structure = discoverLayers(file.graph);
  return { structure, linears: layerLinears(file.graph, structure, file.initializerMap()) };
}

/**
 * Places the calibrated decoder's replacements. Keys that are not weights of a layer's
 * linear nodes (a norm weight, say) keep their name only and are applied to the calibrated
 * decoder alone.
 */
export function placeReplacements(file: OnnxFile, replace: Map<string, Float32Array | Float64Array>, lin: Linears): PlacedReplacement[] {
  const places = weightPlaces(lin.linears);
  const out: PlacedReplacement[] = [];
  for (const [key, values] of replace) {
    const p = places.get(key);
    if (!p) {
      out.push({ key, W: Float64Array.from(values), K: 0, N: 0 });
      continue;
    }
    const w = p.weight;
    out.push({
      key,
      place: { layer: p.layer, block: p.block, position: p.position },
      W: kn(w, values),
      before: w.scheme === 'float' ? undefined : readLinear(file, w),
      K: w.K,
      N: w.N,
    });
  }
  return out;
}

/** The calibrated decoder with its replacements applied (its own names, its own schemes). */
export function applyToCalibrated(file: OnnxFile, placed: PlacedReplacement[], lin: Linears): ModelProto {
  let model = file.model;
  const inits = file.initializerMap();
  for (const r of placed) {
    if (!r.place) {
      const orig = inits.get(r.key);
      if (!orig) throw new VariantError(`weight ${r.key} not found in the decoder`);
      model = replaceInitializer(model, r.key, r.W, orig);
      continue;
    }
    const w = lin.linears[r.place.layer][r.place.block][r.place.position];
    model = swapTensors(model, encodeLinear(file, w, r.W));
  }
  return model;
}

/**
 * A sibling variant with the same replacements at the same places. Throws VariantError
 * (or NotRequantisable) when a weight cannot be placed or re-encoded: the caller then
 * prunes that variant without compensation and says so.
 */
export function applyToVariant(file: OnnxFile, placed: PlacedReplacement[], lin: Linears, calibratedLayers: number): ModelProto {
  if (lin.structure.layers.length !== calibratedLayers) {
    throw new VariantError(`it has ${lin.structure.layers.length} layers, the calibrated decoder ${calibratedLayers}`);
  }
  let model = file.model;
  const idx = new GraphIndex(file.graph);
  for (const r of placed) {
    if (!r.place) throw new VariantError(`replaced tensor ${r.key} is not a linear weight of a layer, so it has no counterpart`);
    const w = lin.linears[r.place.layer]?.[r.place.block]?.[r.place.position];
    const what = `layer ${r.place.layer} ${r.place.block} linear #${r.place.position}`;
    if (!w) throw new VariantError(`${what} has no counterpart`);
    if (w.K !== r.K || w.N !== r.N) throw new VariantError(`${what} is ${w.K} x ${w.N} here, ${r.K} x ${r.N} in the calibrated decoder`);
    if (!exclusiveTensors(idx, w)) throw new VariantError(`${what}: its tensors are shared with other nodes`);
    let W = r.W;
    if (r.before) {
      const own = readLinear(file, w);
      W = new Float64Array(own.length);
      for (let i = 0; i < own.length; i++) W[i] = own[i] + (r.W[i] - r.before[i]);
    }
    model = swapTensors(model, encodeLinear(file, w, W));
  }
  return model;
}

function swapTensors(model: ModelProto, tensors: TensorProto[]): ModelProto {
  const byName = new Map(tensors.map((t) => [t.name, t]));
  return { ...model, graph: { ...model.graph, initializer: model.graph.initializer.map((t) => byName.get(t.name) ?? t) } };
}

export { NotRequantisable };
