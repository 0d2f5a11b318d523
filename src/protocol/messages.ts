// Messages between the extension host, the engine process and the webviews. The engine
// runs in a child process (onnxruntime's run() blocks its thread); the host talks to it over
// Node IPC with these JSON messages. Webviews receive a report and render one panel kind.

import type { BenchmarkReport, PruneOptions, Report } from './report';

// ---------------------------------------------------------------- host -> engine

export type EngineRequest =
  | { type: 'inspect'; id: number; model: string }
  | {
      type: 'prune';
      id: number;
      model: string;
      calib?: string;
      out?: string;
      overwrite?: boolean;
      threads?: number;
      execution?: 'auto' | 'whole' | 'layerwise';
      device?: 'cpu' | 'cuda' | 'dml' | 'coreml';
      options: Partial<PruneOptions>;
    }
  | { type: 'bench'; id: number; models: string[]; eval: string; samples?: number; threads?: number; device?: 'cpu' | 'cuda' | 'dml' | 'coreml' }
  | { type: 'cancel'; id: number };

// ---------------------------------------------------------------- engine -> host

export type EngineEvent =
  | { type: 'ready'; pid: number }
  | { type: 'progress'; id: number; stage: string; done: number; total: number; etaSeconds?: number }
  | { type: 'log'; id: number; line: string }
  | { type: 'result'; id: number; result: unknown }
  | { type: 'error'; id: number; message: string; stack?: string; cancelled?: boolean };

// ---------------------------------------------------------------- host <-> webview

export type PanelKind = 'redundancy' | 'tokens' | 'gap' | 'benchmark';

export type HostToWebview =
  | { type: 'show'; panel: PanelKind; report: Report; benchmark?: BenchmarkReport; theme?: 'light' | 'dark' | 'high-contrast' }
  | { type: 'image'; sample: number; dataUri: string };

export type WebviewToHost =
  | { type: 'ready' }
  | { type: 'requestImage'; sample: number }
  | { type: 'openPanel'; panel: PanelKind }
  | { type: 'selectLayers'; layers: number[] };
