// Webview entry of the run forms and the sweep's chart (dist/forms.js): the page's kind is in
// body[data-panel]. A form is built when the host sends its fields, or at once from the state
// a restored webview kept; the chart redraws on theme changes.

import type { SweepOutcome } from '../src/protocol/engineApi';
import type { FormKind, HostToForm } from '../src/protocol/messages';
import { Chart } from './charts';
import { h } from './dom';
import { FormState, startForm } from './forms/runForm';
import { renderSweepChart } from './forms/sweepChart';
import { registerToolkit } from './toolkit';
import { formApi } from './vscodeApi';

interface ChartState {
  version: 1;
  kind: 'sweepChart';
  result: SweepOutcome;
}

registerToolkit();
const root = document.getElementById('app') ?? document.body.appendChild(h('main', { id: 'app' }));
const kind = document.body.dataset.panel as FormKind;
const saved = formApi.getState() as FormState | ChartState | undefined;
let handle: ((m: HostToForm) => void) | undefined;
let chart: SweepOutcome | undefined;

const start = (fields: Record<string, string>) => {
  if (kind === 'pruneForm' || kind === 'sweepForm') handle = startForm(root, kind, fields, (m) => formApi.postMessage(m), (s) => formApi.setState(s));
};

if (saved?.version === 1 && saved.kind === kind) {
  if ('result' in saved) {
    chart = saved.result;
    renderSweepChart(root, chart);
  } else start(saved.fields);
}

window.addEventListener('message', (ev: MessageEvent<HostToForm>) => {
  const m = ev.data;
  if (!m || typeof m !== 'object') return;
  if (m.type === 'sweepResult' && kind === 'sweepChart') {
    chart = m.result;
    formApi.setState({ version: 1, kind, result: chart } satisfies ChartState);
    renderSweepChart(root, chart);
    document.body.dataset.renders = String(Number(document.body.dataset.renders ?? 0) + 1);
  } else if (m.type === 'init') {
    if (!handle) start(m.fields);
  } else handle?.(m);
});

// VS Code swaps the body's theme class: the chart reads its colours again.
let themeSig = document.body.className;
new MutationObserver(() => {
  if (document.body.className === themeSig) return;
  themeSig = document.body.className;
  if (chart) renderSweepChart(root, chart);
}).observe(document.body, { attributes: true, attributeFilter: ['class'] });

(window as unknown as { Chart: typeof Chart }).Chart = Chart; // for tests and devtools: Chart.getChart(canvas)
formApi.postMessage({ type: 'ready' });
