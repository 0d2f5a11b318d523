// One pruning applied to every dtype variant of a decoder (fp32, fp16, q4, q4f16, int8,
// uint8, quantized, bnb4): the same layers removed, and each weight that compensation
// replaced in the calibrated decoder replaced at the same place (layer, block, position) in
// the variant, re-encoded with the variant's own scheme. Names differ between variants,
// places do not.
//
// Before writing, each matched weight is compared with the calibrated decoder's original
// weight (dequantised): a place holding another weight is refused, not silently edited.
//
// What a variant receives: when the calibrated weight is float, the new matrix itself,
// re-encoded (cast to fp16, or re-quantised with the same scheme and block size: the
// weight the variant's quantiser would have written from the compensated model); when the
// calibrated weight is itself quantised (no float variant in the package), the variant's own
// dequantised weight plus the update (new - old), re-encoded.

import { DecoderStructure, discoverLayers } from '../graph/layers';
import { GraphIndex } from '../graph/graphIndex';
import { encodeLinear, exclusiveTensors, layerLinears, LayerLinears, LinearWeight, readLinear, storedAsNK, transpose, weightPlaces, WeightPlace } from '../graph/linearWeights';
import { replaceInitializer } from '../graph/surgery';
import { OnnxFile } from '../onnx/onnxFile';
import { ModelProto, TensorProto } from '../onnx/proto';

/** A replaced weight of the calibrated decoder, as a [K, N] matrix at its place. */
export interface PlacedReplacement {
  key: string;
  place?: WeightPlace;
  /** New [K, N] values. */
  W: Float64Array;
  /** The calibrated decoder's weight before replacement, [K, N] (dequantised when quantised). */
  before?: Float64Array;
  /** Whether `before` is quantised (then variants receive the update rather than `W`). */
  quantised?: boolean;
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
      before: readLinear(file, w),
      quantised: w.scheme !== 'float',
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

/** The calibrated decoder with a replacement map applied (for scoring in memory, as the sweep does). */
export function withReplacements(file: OnnxFile, replace: Map<string, Float32Array | Float64Array>): ModelProto {
  if (!replace.size) return file.model;
  const lin = linearsOf(file);
  return applyToCalibrated(file, placeReplacements(file, replace, lin), lin);
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
    const what = `layer ${r.place.layer} ${r.place.block} linear #${r.place.position}`;
    const { w, own } = counterpart(file, lin, r, what);
    if (!exclusiveTensors(idx, w)) throw new VariantError(`${what}: its tensors are shared with other nodes`);
    let W = r.W;
    if (r.quantised) {
      W = new Float64Array(own.length);
      for (let i = 0; i < own.length; i++) W[i] = own[i] + (r.W[i] - r.before![i]);
    }
    model = swapTensors(model, encodeLinear(file, w, W));
  }
  return model;
}

const MATCH_LIMIT = 0.5;

/**
 * The variant's weight at a replacement's place: the linear at the same position of the same
 * block, which must hold the same weight up to rounding (4-bit weights differ from their
 * float originals by ~10 % relative L2, another weight of the same shape by ~140 %). If it
 * does not (an exporter ordered k and v differently, say), the block's weight of the same
 * shape closest to the original is taken, provided it is within the limit.
 */
function counterpart(file: OnnxFile, lin: Linears, r: PlacedReplacement, what: string): { w: LinearWeight; own: Float64Array } {
  const block = lin.linears[r.place!.layer]?.[r.place!.block] ?? [];
  const same = (w: LinearWeight | undefined) => w !== undefined && w.K === r.K && w.N === r.N;
  const at = block[r.place!.position];
  const candidates = [at, ...block.filter((w) => w !== at)].filter(same) as LinearWeight[];
  if (!candidates.length) throw new VariantError(`${what} (${r.K} x ${r.N}) has no counterpart`);
  let best: { w: LinearWeight; own: Float64Array; gap: number } | undefined;
  for (const w of candidates) {
    const own = readLinear(file, w);
    const gap = relativeDistance(own, r.before!);
    if (!best || gap < best.gap) best = { w, own, gap };
    if (w === at && gap <= MATCH_LIMIT) break;
  }
  if (best!.gap > MATCH_LIMIT) throw new VariantError(`${what}: no weight of the same shape matches the calibrated one (closest relative distance ${best!.gap.toFixed(2)})`);
  return best!;
}

function relativeDistance(a: Float64Array, b: Float64Array): number {
  let d = 0;
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i] - b[i]) ** 2;
    n += b[i] ** 2;
  }
  return n > 0 ? Math.sqrt(d / n) : d > 0 ? Infinity : 0;
}

function swapTensors(model: ModelProto, tensors: TensorProto[]): ModelProto {
  const byName = new Map(tensors.map((t) => [t.name, t]));
  return { ...model, graph: { ...model.graph, initializer: model.graph.initializer.map((t) => byName.get(t.name) ?? t) } };
}

