// The engine's API as the extension host and the CLI see it: one method per job, each taking
// plain JSON arguments and answering a plain JSON result. Requests, results and the engine
// process's messages are derived from this interface (messages.ts), so a job's result type is
// declared once, here, and the host never names an engine module.

import type { DEVICES, EXECUTIONS } from './options';
import type { BenchmarkReport, BenchRow, Compensation, CurvePoint, DecoderVariantOutcome, PruneOptions, SweepRow } from './report';

export type Device = (typeof DEVICES)[number];
export type Execution = (typeof EXECUTIONS)[number];

/** Where a long job is: the stage, items done of total, and an estimate of the time left. */
export interface Progress {
  stage: string;
  done: number;
  total: number;
  etaSeconds?: number;
}

export interface WeightInfo {
  name: string;
  shape: number[];
  dtype: string;
  layout: 'in,out' | 'out,in';
}

/** `inspect`: what the engine understands of a model package. */
export interface InspectReport {
  root: string;
  layout: string;
  decoder: string;
  variant: string;
  otherDecoderVariants: string[];
  /** dtype variants of the decoder, pruned together with it. */
  decoderVariants: string[];
  embedTokens?: string;
  visionEncoder?: string;
  /** The model family as the package's config names it (config.json model_type, genai_config.json model.type). */
  family?: string;
  /** onnxruntime-genai packages: the model type, and why calibration cannot run its front end (absent when it can). */
  genai?: { type: string; unsupported?: string };
  files: { path: string; bytes: number }[];
  externalData: string[];
  attentionStyle: string;
  numLayers: number;
  configLayers?: number;
  hiddenSize?: number;
  numHeads?: number;
  numKvHeads?: number;
  headDim?: number;
  vocabSize?: number;
  embeddings: string;
  logits: string;
  layers: {
    index: number;
    kvIndex: number;
    residualIn: string;
    residualOut: string;
    attention: string;
    oProj?: WeightInfo;
    downProj?: WeightInfo;
    inputWeights: WeightInfo[];
  }[];
  warnings: string[];
}

export interface InspectArgs {
  model: string;
}

/** How a job runs (options.ts RUN_OPTION_SPECS): not part of the method or its report. */
export interface RunOptions {
  threads?: number;
  /** onnxruntime execution provider (default cpu). */
  device?: 'cpu' | 'cuda' | 'dml' | 'coreml';
  /** Calibration's decoder execution (default auto). Commands that do not calibrate ignore it. */
  execution?: 'auto' | 'whole' | 'layerwise';
}

export interface PruneArgs extends RunOptions {
  model: string;
  calib?: string;
  out?: string;
  overwrite?: boolean;
  /** Re-apply a recorded pruning (recipe.json) instead of choosing layers. */
  recipe?: string;
  options: Partial<PruneOptions>;
}

export interface PruneSummary {
  out: string;
  removed: number[];
  ratio: number;
  numLayers: number;
  method: string;
  scp: boolean;
  /** Compensation actually applied (after any held-out fall-back). */
  compensation?: Compensation;
  /** One sentence naming the method that chose the layers. */
  note?: string;
  /** Per-layer measured skip cost (held-out KL, agreement), when measured. */
  skipCost?: Array<{ layer: number; kl: number; agreement: number }>;
  compensationNote?: string;
  /** The report written into the package (absent for packages made without calibration). */
  report?: string;
  /** What the report says went otherwise than asked (e.g. SCP skipped for a family). */
  warnings?: string[];
  seconds: number;
  /** Each dtype variant of the decoder and what was done to it (calibrated, compensated, layers-only, dropped). */
  variants?: DecoderVariantOutcome[];
  /** Files of the model folder that are not part of the model and were not copied. */
  leftOut?: string[];
}

export interface BenchArgs extends RunOptions {
  models: string[];
  eval: string;
  samples?: number;
  /** Store the comparison in the report of every benchmarked package that has one (default true). */
  save?: boolean;
}

export interface BenchOutcome {
  /** One row per model, the first being the reference. */
  benchmark: BenchmarkReport;
  /** Reports the comparison was stored in. */
  reports: string[];
}

// ---------------------------------------------------------------- ask both models (issue 15)

export interface AskArgs extends RunOptions {
  /** The model the pruned one was made from; default: the one its report names. */
  original?: string;
  pruned: string;
  image: string;
  question: string;
  /** options.ts ASK_OPTION_SPECS: bounds and defaults. */
  maxNewTokens?: number;
  topK?: number;
}

/** A candidate next token: its id, its text (special tokens shown) and its probability. */
export interface TokenProb {
  id: number;
  text: string;
  p: number;
}

/** One generation step: the token chosen (argmax) and the top-k of the distribution it came from. */
export interface AskStep extends TokenProb {
  /** The step chose end-of-sequence (the token is not part of the answer text). */
  eos?: boolean;
  top: TokenProb[];
}

export interface AskAnswer {
  model: string;
  numLayers: number;
  text: string;
  steps: AskStep[];
  stop: 'eos' | 'newline' | 'limit';
  loadMs: number;
  prefillMs: number;
  decodeMs: number;
}

export interface AskResult {
  question: string;
  image: string;
  /** The prompt the original's chat template made (image tokens collapsed). */
  prompt: string;
  original: AskAnswer;
  pruned: AskAnswer;
  /**
   * KL(original || pruned) of the next-token distributions, in nats (float64), at each step
   * of the original's answer, the pruned model reading the same tokens; `first` is the
   * first answer token, where both see exactly the prompt.
   */
  kl: { first: number; mean: number; steps: number[] };
  /** The pruned model's top-k at each step of the original's answer (same context as `kl.steps`). */
  prunedAlongOriginal: TokenProb[][];
  /** How the two models were held in memory (see README: one at a time). */
  loading: 'sequential';
  warnings?: string[];
}

// ---------------------------------------------------------------- issue 15: run form and sweep from the UI

/** `checkRun`: what a run form needs checked and previewed before a prune or a sweep starts. */
export interface CheckRunArgs {
  kind: 'prune' | 'sweep';
  model: string;
  calib?: string;
  /** Sweep: evaluation data. */
  eval?: string;
  /** Prune: the output folder (must not exist, its parent writable). */
  out?: string;
  /** Options as the form parsed them with the option table (checked here against the model). */
  options?: Partial<PruneOptions>;
  /** Sweep: the ratios to try. */
  ratios?: number[];
  /** Sweep: the methods to try. */
  methods?: string[];
  /** Sweep: evaluation items used. */
  evalSamples?: number;
  /** How many calibration samples to preview (default 4). */
  previews?: number;
  /** Read everything again (the check just before a run); otherwise unchanged files are not re-read. */
  fresh?: boolean;
}

export interface CalibPreviewSample {
  id: string;
  /** The first user turn, without the image marker. */
  prompt: string;
  image?: string;
  /** The image as a data: URI (absent when larger than the preview limit). */
  thumbnail?: string;
}

/** One problem, named by the form field it belongs to (`model`, `calib`, `eval`, `out`, or a PruneOptions field). */
export interface RunProblem {
  field: string;
  message: string;
}

export interface RunCheck {
  model?: {
    root: string;
    /** The decoder file that will be pruned, relative to root, and its dtype variant. */
    decoder: string;
    variant: string;
    decoderVariants: string[];
    layout: string;
    /** The family as the engine runs it (`llava (LlavaForConditionalGeneration)`, `genai phi3v`). */
    family: string;
    numLayers: number;
  };
  calib?: { file: string; format: 'json' | 'jsonl'; records: number; samples: number; previews: CalibPreviewSample[]; problems: string[] };
  eval?: { file: string; items: number };
  /** Prune: the output folder the run will write. */
  out?: string;
  /** Every reason the run cannot start; empty when it can. */
  problems: RunProblem[];
  /** The methods a sweep can try. */
  sweepMethods: string[];
}

/** `sweep`: the paper's ablation (methods x ratios) on one model, scored in memory. */
export interface SweepArgs extends RunOptions {
  model: string;
  calib: string;
  eval: string;
  ratios: number[];
  methods?: string[];
  randomSeeds?: number;
  exhaustiveLimit?: number;
  samples?: number;
  evalSamples?: number;
}

/** A sweep's result: one row per method and ratio (random seeds included), the exhaustive search summarised. */
export interface SweepOutcome {
  model: string;
  numLayers: number;
  candidates: [number, number];
  calibSamples: number;
  evalItems: number;
  full: { accuracy: number; families: Record<string, number> };
  rows: SweepRow[];
  /** Cost of each greedy search run for the sweep (one run serves every ratio: its order is a prefix chain). */
  greedy?: Record<string, { candidates: [number, number]; seconds: number; trials: number; forwardPassesPerSample: number; curve: CurvePoint[] }>;
  exhaustive: Record<string, { subsets: number; best: SweepRow; worst: SweepRow; mean: number }>;
  random: Record<string, { seeds: number; mean: number; sd: number }>;
  /** The CLI's text table. */
  table: string;
  seconds: number;
}

/** The jobs of the engine process. Each method's argument and result travel as JSON. */
export interface EngineApi {
  inspect(a: InspectArgs): InspectReport;
  prune(a: PruneArgs): PruneSummary;
  bench(a: BenchArgs): BenchOutcome;
  ask(a: AskArgs): AskResult;
  checkRun(a: CheckRunArgs): RunCheck;
  sweep(a: SweepArgs): SweepOutcome;
}

export type JobType = keyof EngineApi;
export type JobArgs<K extends JobType> = Parameters<EngineApi[K]>[0];
export type JobResult<K extends JobType> = ReturnType<EngineApi[K]>;

export type { BenchRow };
