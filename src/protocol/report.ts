// The report and recipe schemas: written by the engine next to a pruned package (file names
// in files.ts), read by the extension host and drawn by the webviews. Plain data, so all three
// share it.

export const REPORT_FORMAT = 'short-lvlm-report/1';
export const RECIPE_FORMAT = 'short-lvlm-recipe/1';

import type { FEATURE_MODES, KEEP_MODES, METHODS, SCP_TARGETS } from './options';

/** A layer-choosing method (options.ts lists them), or `manual` for a hand-made list. */
export type Method = (typeof METHODS)[number] | 'manual';
export type ScpTarget = (typeof SCP_TARGETS)[number];
export type FeatureMode = (typeof FEATURE_MODES)[number];
export type KeepMode = (typeof KEEP_MODES)[number];

export interface PruneOptions {
  ratio: number;
  method: Method;
  scp: boolean;
  scpTarget: ScpTarget;
  topP: number;
  keepMode: KeepMode;
  /** SVD rank; undefined = max(1, round(hidden / 64)). */
  rank?: number;
  features: FeatureMode;
  /** Inclusive candidate range [first, last]; undefined = last half. */
  candidates?: [number, number];
  samples?: number;
  seed: number;
  layers?: number[];
}

export interface LayerReport {
  index: number;
  /** Mean input/output cosine on TIS-kept tokens, all tokens, text-only, visual-only tokens. */
  cosTis: number;
  cosAll: number;
  cosText: number | null;
  cosVisual: number | null;
  /** Rank by the selection score (0 = most redundant) among candidates, or null outside the range. */
  rank: number | null;
  candidate: boolean;
  status: 'pruned' | 'retained' | 'partner';
  /** Fraction of kept tokens that are visual. */
  keptVisualShare: number;
}

export interface Histogram {
  /** Bin edges in log10(TIS). */
  edges: number[];
  counts: number[];
}

export interface TokenSample {
  id: string;
  image?: string;
  /** Tokens as text (image tokens shown as <image>). */
  tokens: string[];
  isImage: number[];
  imageGrid?: [number, number];
  /** TIS per layer per token: [layer][token]. */
  tis: number[][];
  /** Kept token indices per layer. */
  kept: number[][];
}

export interface PairReport {
  pruned: number;
  partner: number;
  weight?: string;
  rank: number;
  singularValues: number[];
  gapBefore: { cosine: number; relL2: number };
  gapAfter: { cosine: number; relL2: number } | null;
  /** 2-D PCA coordinates of the per-sample features: pruned, partner before, partner after. */
  projection?: { pruned: [number, number][]; before: [number, number][]; after: [number, number][] };
}

/** What a pruning did to one dtype variant of the decoder (decoder_model_merged_q4.onnx, ...). */
export interface DecoderVariantOutcome {
  /** Path relative to the package root. */
  file: string;
  /** calibrated: the variant the method ran on; compensated: replaced weights carried over; layers-only: layers removed, not compensated; dropped: not in the output. */
  status: 'calibrated' | 'compensated' | 'layers-only' | 'dropped';
  /** Why a variant was not compensated or not carried over. */
  note?: string;
}

export interface Report {
  format: typeof REPORT_FORMAT;
  createdAt: string;
  model: { root: string; decoder: string; layout: string; style: string; numLayers: number; hiddenSize: number };
  output: {
    root: string;
    numLayers: number;
    bytes: number;
    variants?: DecoderVariantOutcome[];
    /** Files of the model folder not copied because they are not part of the model (calibration data, notes, other folders), relative to the model folder. */
    leftOut?: string[];
  };
  options: PruneOptions;
  calibration: { file?: string; samples: number; tokensMean: number; visualTokensMean: number };
  removed: number[];
  layers: LayerReport[];
  histograms: { visual: Histogram[]; text: Histogram[] };
  tokenSamples: TokenSample[];
  pairs: PairReport[];
  timings: Record<string, number>;
  benchmark?: BenchmarkReport;
  warnings: string[];
}

/** One benchmarked model; the first row of a comparison is the reference. */
export interface BenchRow {
  model: string;
  label: string;
  numLayers: number;
  accuracy: number;
  families: Record<string, { n: number; correct: number; accuracy: number }>;
  relativeAccuracy?: number;
  agreement?: number;
  klMean?: number;
  samplesPerSecond: number;
  speedup?: number;
  sizeBytes: number;
  prefillMsMean?: number;
  decodeMsMean?: number;
}

export interface BenchmarkReport {
  evalFile?: string;
  items: number;
  rows: BenchRow[];
  sweep?: SweepRow[];
}

export interface SweepRow {
  ratio: number;
  method: string;
  scp: boolean;
  removed: number[];
  accuracy: number;
  /** Against the full model; absent when the full model scores 0. */
  relativeAccuracy?: number;
  families: Record<string, number>;
  agreement?: number;
  klMean?: number;
}

export interface RecipeCompensation {
  pruned: number;
  partner: number;
  /** Original initializer names and how they were projected. */
  weights: { name: string; side: 'output' | 'input'; inOut: boolean }[];
  /** V_k: D x k float64, row-major, base64 little-endian. */
  basis: { rows: number; cols: number; float64: string };
}

export interface Recipe {
  format: typeof RECIPE_FORMAT;
  model: { decoder: string; numLayers: number; bytes: number };
  removed: number[];
  compensation: RecipeCompensation[];
  options: PruneOptions;
}

/** A model's accuracy relative to the reference's; undefined when the reference scores 0. */
export function relativeAccuracy(accuracy: number, reference: number): number | undefined {
  return reference > 0 ? accuracy / reference : undefined;
}
