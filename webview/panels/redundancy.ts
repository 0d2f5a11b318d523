// Panel 1: per-layer input/output cosine of the residual stream (TIS-kept, all, text-only,
// visual-only tokens), pruned and partner layers marked, candidate range shaded; the table
// below lets the user pick layers for a manual prune.

import type { ChartDataset, LegendItem, TooltipItem } from 'chart.js';
import { isCostly, COSTLY_AGREEMENT, COSTLY_KL } from '../../src/protocol/report';
import type { LayerReport, Report } from '../../src/protocol/report';
import { axisTitle, bandColors, legendWithExtras, makeChart } from '../charts';
import { chartBox, h, section } from '../dom';
import { fixed, layerList, pct, sig } from '../format';
import { alpha } from '../theme';
import { button, checkbox, dropdown, isChecked, setDisabled } from '../toolkit';
import { header, statusBadge } from './common';
import type { PanelContext } from './context';
import { qualityCurve } from './qualityCurve';

export function candidateRange(r: Report): [number, number] | null {
  if (r.options.candidates) return r.options.candidates;
  const c = r.layers.filter((l) => l.candidate).map((l) => l.index);
  return c.length ? [Math.min(...c), Math.max(...c)] : null;
}

/** pruned -> partner and partner -> pruned. */
function partnerMap(r: Report): Map<number, number> {
  const m = new Map<number, number>();
  for (const p of r.pairs ?? []) {
    m.set(p.pruned, p.partner);
    m.set(p.partner, p.pruned);
  }
  return m;
}

const SERIES: { key: keyof LayerReport; label: string; color: 'blue' | 'orange' | 'green' | 'purple'; dash?: number[] }[] = [
  { key: 'cosTis', label: 'TIS-kept tokens (score)', color: 'blue' },
  { key: 'cosAll', label: 'All tokens', color: 'orange', dash: [6, 3] },
  { key: 'cosText', label: 'Text tokens only', color: 'green', dash: [2, 3] },
  { key: 'cosVisual', label: 'Visual tokens only', color: 'purple', dash: [8, 3, 2, 3] },
];

export function renderRedundancy(root: HTMLElement, ctx: PanelContext): void {
  const r = ctx.report;
  const t = ctx.theme;
  const scale = ctx.ui.cosScale ?? 'linear';
  const removed = new Set(r.removed);
  const partners = r.layers.filter((l) => l.status === 'partner').map((l) => l.index);
  const pmap = partnerMap(r);
  const cand = candidateRange(r);
  const value = (c: number | null) => (c === null ? null : scale === 'gap' ? Math.max(1e-7, 1 - c) : c);

  root.append(header(ctx));

  const { box, canvas } = chartBox('chart-redundancy', 340, 'Layer input/output cosine per decoder layer');
  const controls = h(
    'div',
    { class: 'controls' },
    dropdown(
      'cos-scale',
      'y axis',
      [
        { value: 'linear', label: 'cosine (linear)' },
        { value: 'gap', label: '1 − cosine (log)' },
      ],
      scale,
      (v) => ctx.setUi({ cosScale: v as 'linear' | 'gap' }, true),
    ),
    h('span', { class: 'hint' }, 'Higher cosine = the layer changes the residual stream less = more redundant.'),
  );
  root.append(
    section(
      'Input/output cosine per decoder layer',
      `Mean cosine between a layer's input and output hidden states over ${r.calibration.samples} calibration samples. ` +
        `Layers are ranked by the TIS-kept cosine within the candidate range${cand ? ` (layers ${cand[0]}–${cand[1]})` : ''}; ` +
        `the ${r.removed.length} highest are removed.`,
      controls,
      box,
    ),
  );

  const pointStyle = r.layers.map((l) => (removed.has(l.index) ? 'crossRot' : l.status === 'partner' ? 'rectRot' : 'circle'));
  const pointRadius = r.layers.map((l) => (removed.has(l.index) ? 7 : l.status === 'partner' ? 5 : 3));
  const datasets: ChartDataset<'line', (number | null)[]>[] = SERIES.map((s, i) => ({
    label: s.label,
    data: r.layers.map((l) => value(l[s.key] as number | null)),
    borderColor: t[s.color],
    backgroundColor: t[s.color],
    borderWidth: i === 0 ? 2.5 : 1.5,
    borderDash: s.dash,
    pointStyle: i === 0 ? pointStyle : 'circle',
    pointRadius: i === 0 ? pointRadius : 2,
    pointHoverRadius: i === 0 ? pointRadius.map((x) => x + 2) : 4,
    pointBorderWidth: i === 0 ? r.layers.map((l) => (removed.has(l.index) ? 2.5 : 1)) : 1,
    pointBorderColor: i === 0 ? r.layers.map((l) => (removed.has(l.index) ? t.red : l.status === 'partner' ? t.green : t[s.color])) : t[s.color],
    pointBackgroundColor: i === 0 ? r.layers.map((l) => (l.status === 'partner' ? t.green : t[s.color])) : t[s.color],
    spanGaps: false,
    order: i,
  }));

  const bc = bandColors(t);
  const extras: LegendItem[] = [
    { text: 'Pruned layer', fillStyle: bc.pruned, strokeStyle: t.red, lineWidth: 1, hidden: false, fontColor: t.fg } as LegendItem,
    { text: 'Partner (compensated)', fillStyle: bc.partner, strokeStyle: t.green, lineWidth: 1, hidden: false, fontColor: t.fg } as LegendItem,
  ];
  if (cand) extras.push({ text: 'Candidate range', fillStyle: alpha(t.fg, 0.12), strokeStyle: alpha(t.fg, 0.3), lineWidth: 1, hidden: false, fontColor: t.fg } as LegendItem);

  makeChart(canvas, {
    type: 'line',
    data: { labels: r.layers.map((l) => String(l.index)), datasets },
    options: {
      interaction: { mode: 'index', intersect: false },
      scales: {
        x: { title: axisTitle('decoder layer'), grid: { display: false } },
        y:
          scale === 'gap'
            ? { type: 'logarithmic', title: axisTitle('1 − cosine(input, output)  (log; lower = more redundant)') }
            : { type: 'linear', title: axisTitle('cosine(input, output)'), suggestedMax: 1 },
      },
      plugins: {
        legend: { position: 'bottom', ...legendWithExtras(extras) },
        layerBands: { candidates: cand, pruned: r.removed, partners, colors: bc },
        tooltip: {
          callbacks: {
            title: (items: TooltipItem<'line'>[]) => {
              const l = r.layers[items[0]?.dataIndex ?? 0];
              const p = pmap.get(l.index);
              const rel = l.status === 'pruned' ? ` → partner L${p}` : l.status === 'partner' && p !== undefined ? ` ← compensates L${p}` : '';
              return `Layer ${l.index}: ${l.status}${l.rank !== null ? `, rank ${l.rank}` : ''}${rel}`;
            },
            label: (item: TooltipItem<'line'>) => {
              const l = r.layers[item.dataIndex];
              const c = l[SERIES[item.datasetIndex].key] as number | null;
              return ` ${SERIES[item.datasetIndex].label}: ${c === null ? 'n/a' : `${c.toFixed(5)} (1−cos ${sig(1 - c)})`}`;
            },
            footer: (items: TooltipItem<'line'>[]) => {
              const l = r.layers[items[0]?.dataIndex ?? 0];
              return `visual share of kept tokens: ${pct(l.keptVisualShare, 0)}`;
            },
          },
        },
      },
    },
  });

  if (r.layers.some((l) => l.skipCost)) root.append(skipCostChart(ctx));
  if (r.selection?.curve.length) root.append(qualityCurve(ctx));
  root.append(layerTable(ctx, pmap));
}

/** The measured effect of skipping each layer alone, beside the cosine proxy above. */
function skipCostChart(ctx: PanelContext): HTMLElement {
  const r = ctx.report;
  const t = ctx.theme;
  const m = r.measurement;
  const { box, canvas } = chartBox('chart-skip-cost', 300, 'Measured skip cost per decoder layer');
  const removed = new Set(r.removed);
  makeChart(canvas, {
    type: 'bar',
    data: {
      labels: r.layers.map((l) => String(l.index)),
      datasets: [
        {
          type: 'bar',
          label: 'KL(original ‖ layer skipped), nats',
          data: r.layers.map((l) => l.skipCost?.kl ?? null),
          backgroundColor: r.layers.map((l) => (isCostly(l) ? alpha(t.red, 0.75) : alpha(t.blue, 0.6))),
          borderColor: r.layers.map((l) => (removed.has(l.index) ? t.fg : 'transparent')),
          borderWidth: r.layers.map((l) => (removed.has(l.index) ? 2 : 0)),
          yAxisID: 'y',
          order: 2,
        },
        {
          type: 'line',
          label: 'Top-1 agreement',
          data: r.layers.map((l) => (l.skipCost ? l.skipCost.agreement : null)) as number[],
          borderColor: t.orange,
          backgroundColor: t.orange,
          pointRadius: 3,
          borderWidth: 1.5,
          yAxisID: 'y2',
          order: 1,
        },
      ],
    },
    options: {
      interaction: { mode: 'index', intersect: false },
      scales: {
        x: { title: axisTitle('decoder layer (skipped alone)'), grid: { display: false } },
        y: { type: 'linear', beginAtZero: true, title: axisTitle('mean KL (nats)') },
        y2: { type: 'linear', position: 'right', min: 0, max: 1, grid: { display: false }, title: axisTitle('top-1 agreement') },
      },
      plugins: {
        legend: { position: 'bottom' },
        tooltip: {
          callbacks: {
            title: (items: TooltipItem<'bar'>[]) => {
              const l = r.layers[items[0]?.dataIndex ?? 0];
              return `Layer ${l.index}${isCostly(l) ? ': costly, keep it' : ''}${removed.has(l.index) ? ' (removed)' : ''}`;
            },
          },
        },
      },
    },
  });
  const costly = r.layers.filter(isCostly).map((l) => l.index);
  return section(
    'Measured skip cost',
    `What skipping each layer alone does to the answer: mean KL between the original and the skipped model's next-token ` +
      `distributions at the first answer token, and how often the top answer stays the same, on ${m?.heldOutSamples ?? '?'} held-out ` +
      `calibration samples${m?.heldOutInCalibration ? ' (also used for calibration by this method)' : ' not used to choose'}. ` +
      `Red bars: costly (agreement below ${pct(COSTLY_AGREEMENT, 0)} or KL above ${COSTLY_KL}) — ` +
      (costly.length ? `layers ${layerList(costly)} should stay.` : 'none here.') +
      ' Compare with the cosine above: a layer can look redundant and still decide answers.',
    box,
  );
}

function layerTable(ctx: PanelContext, pmap: Map<number, number>): HTMLElement {
  const r = ctx.report;
  const L = r.model.numLayers;
  const selected = new Set(ctx.ui.selection ?? r.removed);
  const summary = h('span', { class: 'selection-summary' });
  const apply = button('Prune selected layers…', () => ctx.selectLayers([...selected].sort((a, b) => a - b)), {
    appearance: 'primary',
    id: 'select-layers',
    title: 'Ask the extension to prune exactly the checked layers (with SCP compensation)',
  });
  const reset = button('Reset to report', () => ctx.setUi({ selection: undefined }, true), { id: 'reset-selection' });
  const update = () => {
    const list = [...selected].sort((a, b) => a - b);
    summary.textContent = `Selected: ${layerList(list)} (${list.length} of ${L} layers, ${Math.round((list.length / L) * 100)} %)`;
    setDisabled(apply, list.length === 0 || list.length >= L);
  };
  const cols = ['', 'layer', 'status', 'rank', 'cos TIS-kept', 'cos all', 'cos text', 'cos visual', '1 − cos TIS', 'kept visual share', 'skip KL', 'skip agreement', 'pair'];
  const tbody = h('tbody');
  for (const l of r.layers) {
    const p = pmap.get(l.index);
    const pair = p === undefined ? '' : l.status === 'pruned' ? `→ L${p}` : `← L${p}`;
    const cb = checkbox('', selected.has(l.index), () => {
      if (isChecked(cb)) selected.add(l.index);
      else selected.delete(l.index);
      ctx.setUi({ selection: [...selected].sort((a, b) => a - b) });
      update();
    }, { title: `select layer ${l.index}`, data: { layer: String(l.index) } });
    tbody.append(
      h(
        'tr',
        { class: `row-${l.status}${l.candidate ? ' candidate' : ''}`, 'data-layer': l.index },
        h('td', {}, cb),
        h('td', { class: 'num' }, l.index),
        h('td', {}, statusBadge(l.status)),
        h('td', { class: 'num' }, l.rank ?? '–'),
        h('td', { class: 'num' }, fixed(l.cosTis)),
        h('td', { class: 'num' }, fixed(l.cosAll)),
        h('td', { class: 'num' }, fixed(l.cosText)),
        h('td', { class: 'num' }, fixed(l.cosVisual)),
        h('td', { class: 'num' }, sig(1 - l.cosTis)),
        h('td', { class: 'num' }, pct(l.keptVisualShare, 0)),
        h('td', { class: `num${isCostly(l) ? ' costly' : ''}` }, fixed(l.skipCost?.kl)),
        h('td', { class: `num${isCostly(l) ? ' costly' : ''}`, title: isCostly(l) ? 'costly: skipping this layer alone changes the answers' : '' }, pct(l.skipCost?.agreement)),
        h('td', {}, pair),
      ),
    );
  }
  update();
  return section(
    'Layers',
    'Rank is the position in the removal order among candidate layers (0 = most redundant). Check layers to try another selection.',
    h('div', { class: 'controls' }, summary, apply, reset),
    h('div', { class: 'table-wrap' }, h('table', { id: 'layer-table', class: 'data' }, h('thead', {}, h('tr', {}, ...cols.map((c) => h('th', { scope: 'col' }, c)))), tbody)),
  );
}
