// What every panel renderer receives.

import type { BenchmarkReport, Report } from '../../src/protocol/report';
import type { PanelKind } from '../../src/protocol/messages';
import type { Theme } from '../theme';
import type { UiState } from '../vscodeApi';

export interface PanelContext {
  panel: PanelKind;
  report: Report;
  benchmark?: BenchmarkReport;
  theme: Theme;
  ui: UiState;
  /** Update UI state (persisted); rerender = re-run the panel's render. */
  setUi(patch: Partial<UiState>, rerender?: boolean): void;
  openPanel(panel: PanelKind): void;
  selectLayers(layers: number[]): void;
  /** Ask the host to run the benchmark command on this report's models. */
  runBenchmark(): void;
  /** Selects one layer here and in the other panels and the Layers view (ui.layer). */
  selectLayer(layer: number): void;
  /** The hand-made choice changed here: the Layers view and the other panels follow. */
  tickLayers(layers: number[]): void;
  /** Wraps a data table with its sortable headers and its CSV / PNG buttons. */
  table(table: HTMLTableElement): HTMLElement;
  /** Data URI of a sample image if the host sent it; otherwise asks the host once. */
  image(sample: number): string | undefined;
  /** Called when an image arrives (the panel re-renders its sample view). */
  onImage(cb: (sample: number, dataUri: string) => void): void;
}

export type PanelRenderer = (root: HTMLElement, ctx: PanelContext) => void;
