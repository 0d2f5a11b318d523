// A sweep's result: the Benchmark panel's trade-off chart (accuracy against ratio per method,
// random dropping, exhaustive best) and the rows behind it.

import type { SweepOutcome } from '../../src/protocol/engineApi';
import { destroyCharts } from '../charts';
import { h, section } from '../dom';
import { basename, pct, sig } from '../format';
import { methodLabel, sweepSection } from '../panels/benchmark';
import { applyChartDefaults, readTheme } from '../theme';

export function renderSweepChart(root: HTMLElement, r: SweepOutcome): void {
  destroyCharts();
  const theme = readTheme();
  applyChartDefaults(theme);
  const facts: [string, string][] = [
    ['model', basename(r.model)],
    ['layers', String(r.numLayers)],
    ['candidates', `${r.candidates[0]}-${r.candidates[1]}`],
    ['calibration', `${r.calibSamples} samples`],
    ['evaluation', `${r.evalItems} items`],
    ['full model', pct(r.full.accuracy)],
    ['took', `${r.seconds.toFixed(1)} s`],
  ];
  const rows = [...r.rows].sort((a, b) => a.ratio - b.ratio || a.method.localeCompare(b.method));
  root.replaceChildren(
    h('header', { class: 'panel-header' }, h('h1', {}, 'Trade-off Chart ', h('span', { class: 'model', title: r.model }, `· ${basename(r.model)}`)), h('dl', { class: 'facts' }, ...facts.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v))))),
    // The best subset per ratio draws the exhaustive upper bound, as in the Benchmark panel.
    sweepSection({ theme }, [...r.rows, ...Object.values(r.exhaustive ?? {}).map((e) => ({ ...e.best, method: 'exhaustive' }))], r.full.accuracy),
    section(
      'Choices',
      'Each row is one layer choice scored on the evaluation items; agreement and KL are against the full model.',
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { class: 'data', id: 'sweep-table' },
          h('thead', {}, h('tr', {}, ...['ratio', 'method', 'removed', 'accuracy', 'relative', 'agreement', 'KL (nats)'].map((c) => h('th', { scope: 'col' }, c)))),
          h(
            'tbody',
            {},
            ...rows.map((x) =>
              h(
                'tr',
                {},
                h('td', { class: 'num' }, pct(x.ratio, 0)),
                h('td', {}, methodLabel(x.method)),
                h('td', {}, `${x.removed.join(', ')}${x.scp ? ' + SCP' : ''}`),
                h('td', { class: 'num' }, pct(x.accuracy)),
                h('td', { class: 'num' }, pct(x.relativeAccuracy)),
                h('td', { class: 'num' }, pct(x.agreement)),
                h('td', { class: 'num' }, sig(x.klMean)),
              ),
            ),
          ),
        ),
      ),
    ),
  );
}
