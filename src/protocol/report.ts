// The report and recipe schemas: written by the engine next to a pruned package (file names
// in files.ts), read by the extension host and drawn by the webviews. Plain data, so all three
// share it.

export const REPORT_FORMAT = 'short-lvlm-report/1';
export const RECIPE_FORMAT = 'short-lvlm-recipe/1';

import { DEFAULT_PRUNE_OPTIONS, type COMPENSATIONS, type FEATURE_MODES, type KEEP_MODES, type METHODS, type SCP_TARGETS } from './options';

/** A layer-choosing method (options.ts lists them), or `manual` for a hand-made list. */
export type Method = (typeof METHODS)[number] | 'manual';
/** `scp`: the paper's subspace projection; `ls`: least-squares map (ReplaceMe-like); `none`. */
export type Compensation = (typeof COMPENSATIONS)[number];
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
  /** Overrides `scp` when set. */
  compensation?: Compensation;
  /** Least-squares ridge, relative to the mean diagonal of X^T X (0 = plain least squares). */
  lsRidge?: number;
  /** Least-squares rank: undefined = full D x D map; k = identity plus a rank-k correction. */
  lsRank?: number;
  /** Share of the calibration samples held out to measure skip cost, the curve and compensation. */
  holdout?: number;
  /** Greedy: narrow each round to the top-m remaining candidates by TIS cosine. */
  topM?: number;
  /** Quality budget (replaces the ratio): remove as many layers as keep held-out agreement >= this ... */
  minAgreement?: number;
  /** ... and held-out mean KL <= this. */
  maxKl?: number;
}

/**
 * Measured effect of skipping layers, at the answer positions of held-out calibration samples.
 * Answer position = the last prompt position of the sample's first user turn, i.e. where the
 * model produces the first token of its answer (the whole answer for one-word answers).
 */
export interface OutputEffect {
  /** Mean KL(original || skipped) of the next-token distributions, in nats. */
  kl: number;
  /** Share of answer positions whose top-1 token is unchanged. */
  agreement: number;
}

export interface CurvePoint extends OutputEffect {
  /** Layers removed at this point of the greedy order (sorted). */
  removed: number[];
  /** Layer added at this point. */
  added: number;
  /** Mean KL on the selection samples that chose it. */
  selectionKl: number;
}

export interface MeasurementReport {
  positions: 'first-answer-token';
  heldOutSamples: number;
  /** Ids of the held-out calibration samples. */
  heldOutIds?: string[];
  selectionSamples: number;
  /** Model runs with some layers removed (trials), and their cost in full forward passes per calibration sample used. */
  trials: number;
  forwardPassesPerSample: number;
  /** True when the held-out samples also fed the calibration (score-ranked methods use every sample). */
  heldOutInCalibration?: boolean;
}

export interface SelectionReport {
  /** greedy: the order of the greedy search; a score method: its ranking's prefixes. */
  method: Method;
  objective: 'mean-kl';
  candidates: number[];
  topM?: number;
  /** Held-out effect after each greedy removal, 1..n layers (the quality-budget curve). */
  curve: CurvePoint[];
  budget?: { minAgreement?: number; maxKl?: number; layers: number };
}

export interface LsMapReport {
  /** Removed block [first, last] and the kept layer before it whose down projection carries the map. */
  block: [number, number];
  layer: number;
  weight: string;
  rank: number | null;
  ridge: number;
  tokens: number;
  /** Relative L2 gap ||X T - Y|| / ||Y|| before (T = I) and after, on the calibration tokens. */
  gapBefore: number;
  gapAfter: number;
}

export interface CompensationCheck {
  kind: 'scp' | 'ls';
  /** Held-out effect of the chosen layers removed without and with compensation. */
  without: OutputEffect;
  with: OutputEffect;
  applied: boolean;
  note: string;
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
  /** Measured effect of skipping this layer alone (held-out samples); absent in older reports. */
  skipCost?: OutputEffect;
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
  /** One plain sentence naming the method that chose the layers (and whether it is the paper's). */
  methodNote?: string;
  measurement?: MeasurementReport;
  selection?: SelectionReport;
  lsMaps?: LsMapReport[];
  compensationCheck?: CompensationCheck;
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
  /** Compensation actually applied (after any held-out fall-back). */
  compensation?: Compensation;
  /** True when compensation was computed but raised the held-out KL, so plain removal was scored. */
  fellBack?: boolean;
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

/** A least-squares map folded into one weight: W' = W T ([in, out]) or T^T W ([out, in]). */
export interface RecipeLsMap {
  weight: string;
  inOut: boolean;
  /** T: D x D float64, row-major, base64 little-endian. */
  map: { rows: number; cols: number; float64: string };
}

export interface Recipe {
  format: typeof RECIPE_FORMAT;
  model: { decoder: string; numLayers: number; bytes: number };
  removed: number[];
  compensation: RecipeCompensation[];
  lsMaps?: RecipeLsMap[];
  options: PruneOptions;
}

/** A model's accuracy relative to the reference's; undefined when the reference scores 0. */
export function relativeAccuracy(accuracy: number, reference: number): number | undefined {
  return reference > 0 ? accuracy / reference : undefined;
}

/**
 * A layer whose removal alone measurably changes the answers: held-out top-1 agreement below
 * 95 % or mean KL above 0.1 nats. The Layers view and the redundancy panel flag these.
 */
export const COSTLY_AGREEMENT = 0.95;
export const COSTLY_KL = 0.1;
export function isCostly(l: Pick<LayerReport, 'skipCost'>): boolean {
  return !!l.skipCost && (l.skipCost.agreement < COSTLY_AGREEMENT || l.skipCost.kl > COSTLY_KL);
}

/**
 * The method "Prune with Short-LVLM" and `prune` run when none is given, chosen from the sweep on
 * two models (README, "Choosing the default"); `--method svl` runs the paper's method unchanged.
 */
export const DEFAULT_METHOD: Method = DEFAULT_PRUNE_OPTIONS.method;

/**
 * Compensation when none is named: SCP for the paper's method and its baselines; none for greedy
 * (least squares never raised accuracy in the sweeps on two models and cost up to 2.5 points
 * once, so it is opt-in: --compensation ls).
 */
export function resolveCompensation(o: Partial<Pick<PruneOptions, 'compensation' | 'scp' | 'method'>>): Compensation {
  if (o.compensation) return o.compensation;
  if (o.scp === false) return 'none';
  return (o.method ?? DEFAULT_METHOD) === 'greedy' ? 'none' : 'scp';
}
