// Webview entry: talks to the extension host (src/protocol/messages.ts), keeps the panel's
// report and UI choices in the webview state so a reload or a restored panel comes back as
// it was, and re-renders on theme changes.

import type { HostToWebview, PanelKind } from '../src/protocol/messages';
import { REPORT_FORMAT } from '../src/protocol/report';
import { Chart, destroyCharts } from './charts';
import { h } from './dom';
import { empty, PANEL_TITLES } from './panels/common';
import type { PanelContext, PanelRenderer } from './panels/context';
import { renderBenchmark } from './panels/benchmark';
import { renderGap } from './panels/gap';
import { renderRedundancy } from './panels/redundancy';
import { renderTokens } from './panels/tokens';
import { dataTable } from './exporting';
import { applyChartDefaults, readTheme } from './theme';
import { registerToolkit } from './toolkit';
import { loadState, PersistedState, post, saveState, UiState } from './vscodeApi';

const RENDERERS: Record<PanelKind, PanelRenderer> = {
  redundancy: renderRedundancy,
  tokens: renderTokens,
  gap: renderGap,
  benchmark: renderBenchmark,
};

const root = document.getElementById('app') ?? document.body.appendChild(h('main', { id: 'app' }));
const initialPanel = (document.body.dataset.panel as PanelKind) || 'redundancy';

let state: PersistedState = loadState() ?? { version: 1, panel: initialPanel, ui: {} };
const images = new Map<number, string>();
const requested = new Set<number>();
let imageListeners: ((sample: number, uri: string) => void)[] = [];
let renders = 0;

function reportKey(s: PersistedState): string {
  return s.report ? `${s.report.createdAt}|${s.report.output?.root ?? ''}` : '';
}

function persist(): void {
  saveState(state);
}

function render(): void {
  const scroll = window.scrollY;
  destroyCharts();
  imageListeners = [];
  root.replaceChildren();
  document.body.dataset.panel = state.panel;
  const report = state.report;
  if (!report) {
    root.append(empty(`${PANEL_TITLES[state.panel] ?? 'Short-LVLM'}`, 'Waiting for the report from the extension…'));
    return;
  }
  if (report.format !== REPORT_FORMAT) {
    root.append(empty('Unsupported report', `Expected format “${REPORT_FORMAT}”, got “${String(report.format)}”. Re-run the prune with this version of the extension.`));
    return;
  }
  if (!Array.isArray(report.layers) || !report.layers.length) {
    root.append(empty('Nothing to draw', 'This report has no per-layer statistics (no calibration pass was run).'));
    return;
  }
  const theme = readTheme();
  applyChartDefaults(theme);
  const ctx: PanelContext = {
    panel: state.panel,
    report,
    benchmark: state.benchmark,
    theme,
    ui: state.ui,
    setUi(patch: Partial<UiState>, rerender = false) {
      state.ui = { ...state.ui, ...patch };
      for (const k of Object.keys(patch) as (keyof UiState)[]) if (patch[k] === undefined) delete state.ui[k];
      persist();
      if (rerender) render();
    },
    openPanel: (panel) => post({ type: 'openPanel', panel }),
    selectLayers: (layers) => post({ type: 'selectLayers', layers }),
    runBenchmark: () => post({ type: 'runBenchmark' }),
    selectLayer(layer) {
      if (state.ui.layer === layer) return;
      state.ui = { ...state.ui, layer };
      persist();
      post({ type: 'selectLayer', layer });
      render();
    },
    tickLayers(layers) {
      state.ui = { ...state.ui, selection: layers };
      persist();
      post({ type: 'tickLayers', layers });
    },
    table: (table) =>
      dataTable(table, state.ui.sorts?.[table.id], (s) => {
        const sorts = { ...state.ui.sorts };
        if (s) sorts[table.id] = s;
        else delete sorts[table.id];
        state.ui = { ...state.ui, sorts };
        persist();
      }),
    image(sample) {
      const uri = images.get(sample);
      if (!uri && !requested.has(sample)) {
        requested.add(sample);
        post({ type: 'requestImage', sample });
      }
      return uri;
    },
    onImage: (cb) => imageListeners.push(cb),
  };
  try {
    RENDERERS[state.panel](root, ctx);
  } catch (e) {
    destroyCharts();
    root.replaceChildren(empty('Cannot draw this report', String((e as Error)?.message ?? e)));
    console.warn('[short-lvlm] render failed', e);
  }
  renders++;
  document.body.dataset.renders = String(renders);
  if (state.ui.layer !== undefined) document.body.dataset.selectedLayer = String(state.ui.layer);
  else delete document.body.dataset.selectedLayer;
  window.scrollTo(0, scroll);
}

window.addEventListener('message', (ev: MessageEvent<HostToWebview>) => {
  const m = ev.data;
  if (!m || typeof m !== 'object') return;
  if (m.type === 'show') {
    const next: PersistedState = { version: 1, panel: m.panel, report: m.report, benchmark: m.benchmark ?? m.report?.benchmark, ui: state.ui };
    if (reportKey(next) !== reportKey(state) || next.panel !== state.panel) {
      next.ui = {};
      images.clear();
      requested.clear();
    }
    state = next;
    persist();
    render();
  } else if (m.type === 'selectLayer') {
    // From another panel or the Layers view, relayed by the host.
    if (state.ui.layer === m.layer) return;
    state.ui = { ...state.ui, layer: m.layer };
    persist();
    if (state.report) render();
  } else if (m.type === 'tickLayers') {
    const same = (state.ui.selection ?? []).join() === m.layers.join();
    if (same) return;
    state.ui = { ...state.ui, selection: m.layers };
    persist();
    if (state.report && state.panel === 'redundancy') render();
  } else if (m.type === 'image') {
    images.set(m.sample, m.dataUri);
    for (const cb of imageListeners) cb(m.sample, m.dataUri);
  }
});

// VS Code swaps the body class (vscode-light / vscode-dark / vscode-high-contrast) and the
// --vscode-* variables on a theme change: re-read them and redraw.
let themeSig = document.body.className;
new MutationObserver(() => {
  if (document.body.className === themeSig) return;
  themeSig = document.body.className;
  if (state.report) render();
}).observe(document.body, { attributes: true, attributeFilter: ['class'] });

registerToolkit();
(window as unknown as { Chart: typeof Chart }).Chart = Chart; // for tests and devtools: Chart.getChart(canvas)
render();
post({ type: 'ready' });
