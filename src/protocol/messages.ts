// Messages between the extension host, the engine process and the webviews. The engine
// runs in a child process (onnxruntime's run() blocks its thread); the host talks to it over
// Node IPC with these JSON messages, derived from the EngineApi so that each request's result
// type follows from its job. Webviews receive a report and render one panel kind.

import type { AskResult, EngineApi, JobArgs, JobResult, JobType, Progress, RunCheck, SweepOutcome } from './engineApi';
import type { BenchmarkReport, PruneOptions, Report } from './report';

// ---------------------------------------------------------------- host -> engine

/** A job request: its type, an id for the answer, and the job's arguments. */
export type JobRequest<K extends JobType = JobType> = K extends JobType ? { type: K; id: number } & JobArgs<K> : never;

export type EngineRequest = JobRequest | { type: 'cancel'; id: number };

// ---------------------------------------------------------------- engine -> host

export type EngineEvent =
  | { type: 'ready'; pid: number }
  | ({ type: 'progress'; id: number } & Progress)
  | { type: 'log'; id: number; line: string }
  | { type: 'result'; id: number; result: JobResult<JobType> }
  | {
      type: 'error';
      id: number;
      message: string;
      stack?: string;
      cancelled?: boolean;
      /** The PruneOptions field a bad value belongs to, so the host can name its setting. */
      option?: string;
      detail?: string;
    };

/** The engine's side of a job: the API method's result for its request. */
export type JobHandlers = { [K in JobType]: (a: JobArgs<K>) => Promise<JobResult<K>> | JobResult<K> };

export type { EngineApi };

// ---------------------------------------------------------------- host <-> webview

export const PANEL_KINDS = ['redundancy', 'tokens', 'gap', 'benchmark'] as const;
export type PanelKind = (typeof PANEL_KINDS)[number];

/** Panel titles, the same in the editor tab, the panel's heading and its buttons. */
export const PANEL_TITLES: Record<PanelKind, string> = {
  redundancy: 'Layer Redundancy',
  tokens: 'Token Importance',
  gap: 'Compensation Gap',
  benchmark: 'Benchmark',
};

/** The webview panel's view type (also its activation event in package.json). */
export const panelViewType = (kind: PanelKind): string => `shortLvlm.panel.${kind}`;

/** The custom editor for report files. */
export const REPORT_VIEW_TYPE = 'shortLvlm.report';

// The webview follows the theme itself (VS Code swaps its body class and CSS variables), so
// the host sends the report once per change of report, not per change of theme.
export type HostToWebview =
  | { type: 'show'; panel: PanelKind; report: Report; benchmark?: BenchmarkReport }
  | { type: 'image'; sample: number; dataUri: string }
  | LinkedSelection;

export type WebviewToHost =
  | { type: 'ready' }
  | { type: 'requestImage'; sample: number }
  | { type: 'openPanel'; panel: PanelKind }
  | { type: 'selectLayers'; layers: number[] }
  /** The empty Benchmark panel's button: run "Benchmark Models..." on this report's models. */
  | { type: 'runBenchmark' }
  | LinkedSelection
  | ExportRequest
  | { type: 'openAsk' };

// ---------------------------------------------------------------- linked selection and export
// One decoder layer (0-based, the model's own numbering) is "selected" across the open panels
// and the Layers view: a click in any of them sends selectLayer, the host relays it to the
// others. tickLayers carries the hand-made choice (the Layers view's checkboxes and the
// redundancy table's) the same way, so both always show the same ticks.
export type LinkedSelection = { type: 'selectLayer'; layer: number } | { type: 'tickLayers'; layers: number[] };

/** A chart's or table's data as CSV for the clipboard; a chart or table as a PNG to save. */
export type ExportRequest = { type: 'copyText'; text: string; what: string } | { type: 'savePng'; dataUri: string; name: string };

// ---------------------------------------------------------------- ask both models (issue 15)
// Its own page (dist/askWebview.js) and panel: it shows two models' answers, not a report.

export const ASK_PAGE = 'ask';
export const ASK_VIEW_TYPE = 'shortLvlm.ask';
export const ASK_TITLE = 'Ask Both Models';
/** What a webview page shows: one of the report panels, or the ask page. */
export type WebviewPage = PanelKind | typeof ASK_PAGE;

/** An image the user can ask about; calibration images carry their calibration question. */
export interface AskImage {
  path: string;
  label: string;
  source: 'calibration' | 'workspace' | 'chosen';
  question?: string;
}

export interface AskTarget {
  original: string;
  pruned: string;
  originalLayers?: number;
  prunedLayers?: number;
  removed?: number[];
}

export type HostToAsk =
  | { type: 'askSetup'; target: AskTarget; images: AskImage[] }
  | { type: 'askImage'; path: string; dataUri: string }
  | { type: 'askProgress'; stage: string; done: number; total: number }
  | { type: 'askAnswer'; result: AskResult }
  | { type: 'askFailed'; message: string; cancelled?: boolean };

export type AskToHost =
  | { type: 'ready' }
  | { type: 'askPreview'; path: string }
  | { type: 'askBrowse' }
  | { type: 'ask'; image: string; question: string; maxNewTokens: number; topK: number }
  | { type: 'askCancel' };

// ---------------------------------------------------------------- issue 15: run forms and the sweep's chart

/** Webviews that are not report panels: the prune form, the sweep form and a sweep's trade-off chart. */
export const FORM_KINDS = ['pruneForm', 'sweepForm', 'sweepChart'] as const;
export type FormKind = (typeof FORM_KINDS)[number];

export const FORM_TITLES: Record<FormKind, string> = {
  pruneForm: 'Prune Model',
  sweepForm: 'Trade-off Sweep',
  sweepChart: 'Trade-off Chart',
};

export const formViewType = (kind: FormKind): string => `shortLvlm.form.${kind}`;

/** What a form asks for, its fields parsed with the option table: checked by the engine, then run. */
export interface FormRequest {
  kind: 'prune' | 'sweep';
  model: string;
  calib: string;
  /** Prune: the output folder. */
  out?: string;
  /** Sweep: evaluation data. */
  eval?: string;
  /** Prune: the method's options; sweep: `samples` only. */
  options: Partial<PruneOptions>;
  ratios?: number[];
  methods?: string[];
  evalSamples?: number;
  randomSeeds?: number;
  exhaustiveLimit?: number;
}

/** The fields of a form as text, keyed by field name (prefilled from the settings). */
export type FormFields = Record<string, string>;

export type HostToForm =
  | { type: 'init'; kind: FormKind; fields: FormFields }
  | { type: 'check'; seq: number; check: RunCheck }
  | { type: 'field'; field: string; value: string }
  | { type: 'progress'; progress: Progress }
  | { type: 'runEnded'; outcome: 'done' | 'failed' | 'cancelled'; message: string }
  | { type: 'sweepResult'; result: SweepOutcome };

export type FormToHost =
  | { type: 'ready' }
  | { type: 'check'; seq: number; request: FormRequest }
  | { type: 'browse'; field: string; folder: boolean; current: string }
  | { type: 'run'; request: FormRequest }
  | { type: 'cancel' };
