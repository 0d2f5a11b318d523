// Typed access to the webview API VS Code injects (acquireVsCodeApi may be called once).

import type { BenchmarkReport, Report } from '../src/protocol/report';
import type { FormToHost, PanelKind, WebviewToHost } from '../src/protocol/messages';

/** UI choices kept across reloads (per panel). */
export interface UiState {
  layer?: number;
  sample?: number;
  pair?: number;
  cosScale?: 'linear' | 'gap';
  histMode?: 'share' | 'count';
  overlay?: number;
  selection?: number[];
  /** Sorted column per table id. */
  sorts?: Record<string, { col: number; desc: boolean }>;
}

export interface PersistedState {
  version: 1;
  panel: PanelKind;
  report?: Report;
  benchmark?: BenchmarkReport;
  ui: UiState;
}

interface VsCodeApi {
  postMessage(message: unknown): void;
  getState(): unknown;
  setState(state: unknown): void;
}

declare function acquireVsCodeApi(): VsCodeApi;

const api: VsCodeApi =
  typeof acquireVsCodeApi === 'function'
    ? acquireVsCodeApi()
    : { postMessage: (m) => console.debug('[short-lvlm] no host:', m), getState: () => undefined, setState: () => undefined };

export function post(message: WebviewToHost): void {
  api.postMessage(message);
}

export function loadState(): PersistedState | undefined {
  const s = api.getState() as PersistedState | undefined;
  return s && s.version === 1 ? s : undefined;
}

export function saveState(s: PersistedState): void {
  api.setState(s);
}

/** The run forms' side (webview/forms.ts): the same API object, their own messages and state. */
export const formApi = api as { postMessage(m: FormToHost): void; getState(): unknown; setState(s: unknown): void };
