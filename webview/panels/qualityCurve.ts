// The quality-budget curve a pruning records (held-out agreement and KL after each removal in the
// method's order, the budget, the chosen point): drawn in the redundancy and benchmark panels.

import type { ChartDataset, TooltipItem } from 'chart.js';
import { axisTitle, makeChart } from '../charts';
import { chartBox, section } from '../dom';
import { layerList } from '../format';
import type { PanelContext } from './context';

/** Layers removed vs measured held-out agreement / KL along the method's removal order. */
export function qualityCurve(ctx: PanelContext): HTMLElement {
  const r = ctx.report;
  const t = ctx.theme;
  const sel = r.selection!;
  const { box, canvas } = chartBox('chart-quality-curve', 280, 'Quality budget curve');
  const labels = sel.curve.map((p, i) => `${i + 1} (L${p.added})`);
  const chosen = r.removed.length;
  const budget = sel.budget;
  const datasets: ChartDataset<'line', (number | null)[]>[] = [
    {
      label: 'Held-out top-1 agreement',
      data: sel.curve.map((p) => p.agreement),
      borderColor: t.blue,
      backgroundColor: t.blue,
      pointRadius: sel.curve.map((_, i) => (i + 1 === chosen ? 7 : 3)),
      pointStyle: sel.curve.map((_, i) => (i + 1 === chosen ? 'rectRot' : 'circle')),
      yAxisID: 'y',
    },
    {
      label: 'Held-out mean KL (nats)',
      data: sel.curve.map((p) => p.kl),
      borderColor: t.orange,
      backgroundColor: t.orange,
      borderDash: [6, 3],
      pointRadius: 2,
      yAxisID: 'y2',
    },
  ];
  if (budget?.minAgreement !== undefined) {
    datasets.push({ label: `Budget: agreement ≥ ${budget.minAgreement}`, data: sel.curve.map(() => budget.minAgreement!), borderColor: t.red, borderDash: [2, 3], pointRadius: 0, borderWidth: 1.5, yAxisID: 'y' });
  }
  if (budget?.maxKl !== undefined) {
    datasets.push({ label: `Budget: KL ≤ ${budget.maxKl}`, data: sel.curve.map(() => budget.maxKl!), borderColor: t.red, borderDash: [8, 3], pointRadius: 0, borderWidth: 1.5, yAxisID: 'y2' });
  }
  makeChart(canvas, {
    type: 'line',
    data: { labels, datasets },
    options: {
      interaction: { mode: 'index', intersect: false },
      scales: {
        x: { title: axisTitle('layers removed (layer added at that step)'), grid: { display: false } },
        y: { type: 'linear', min: 0, max: 1, title: axisTitle('top-1 agreement') },
        y2: { type: 'linear', position: 'right', beginAtZero: true, grid: { display: false }, title: axisTitle('mean KL (nats)') },
      },
      plugins: {
        legend: { position: 'bottom' },
        tooltip: { callbacks: { footer: (items: TooltipItem<'line'>[]) => `removed: ${layerList(sel.curve[items[0]?.dataIndex ?? 0].removed)}` } },
      },
    },
  });
  const how = sel.method === 'greedy' ? 'the greedy order (each step removes the layer that changes the output least, re-measured)' : `the ${sel.method} ranking`;
  const chose = budget ? `The budget allowed ${budget.layers} layer${budget.layers === 1 ? '' : 's'}.` : `${chosen} removed (the ◆ point).`;
  return section('Quality budget curve', `Held-out agreement and KL after removing 1, 2, … layers in ${how}. ${chose} ${r.methodNote ?? ''}`, box);
}

