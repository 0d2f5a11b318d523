// Panel 3: the feature gap between each pruned layer and its retained partner, before and
// after subspace-compensated pruning (SCP): grouped bars, the 2-D projection of the
// per-sample features (the paper's Figure 6) and the singular values of the gap.

import type { TooltipItem } from 'chart.js';
import type { PairReport } from '../../src/protocol/report';
import { axisTitle, makeChart, onLayerClick } from '../charts';
import { chartBox, h, section } from '../dom';
import { fixed, pct, sig, signed } from '../format';
import { alpha, FILL_ALPHA } from '../theme';
import { dropdown } from '../toolkit';
import { empty, header } from './common';
import type { PanelContext } from './context';

export const pairLabel = (p: PairReport) => `L${p.pruned} → L${p.partner}`;

/** Share of the gap's energy (sum of squared singular values) in the first k directions. */
export function energy(p: PairReport): number {
  const s2 = p.singularValues.map((x) => x * x);
  const tot = s2.reduce((a, b) => a + b, 0);
  return tot ? s2.slice(0, p.rank).reduce((a, b) => a + b, 0) / tot : 0;
}

/** Pairs whose relative L2 gap is larger after compensation than before. */
export function widenedPairs(pairs: PairReport[]): PairReport[] {
  return pairs.filter((p) => p.gapAfter && p.gapAfter.relL2 > p.gapBefore.relL2);
}

function widenedWarning(worse: PairReport[], total: number, what: string): HTMLElement {
  return h(
    'div',
    { class: 'callout warning', id: 'gap-widened', role: 'alert' },
    h('strong', {}, `${what} widened the gap on ${worse.length} of ${total} pair${total === 1 ? '' : 's'}: `),
    worse.map((p) => `${pairLabel(p)} (relative L2 ${fixed(p.gapBefore.relL2, 3)} → ${fixed(p.gapAfter!.relL2, 3)}, cosine ${fixed(p.gapBefore.cosine, 3)} → ${fixed(p.gapAfter!.cosine, 3)})`).join('; '),
    '. On these pairs the partner moved away from the removed layer’s output; pruning without compensation (or another method) may do better there.',
  );
}

export function renderGap(root: HTMLElement, ctx: PanelContext): void {
  const r = ctx.report;
  const t = ctx.theme;
  root.append(header(ctx));
  const pairs = r.pairs ?? [];
  if (!pairs.length) {
    root.append(
      empty(
        'No compensation pairs',
        r.options.scp
          ? 'This report removed no layers, so nothing was compensated.'
          : 'This model was pruned without subspace-compensated pruning (--no-scp): there is no gap to show. Prune again with SCP on to see how much of the gap it closes.',
      ),
    );
    return;
  }
  const labels = pairs.map(pairLabel);
  const worse = widenedPairs(pairs);
  if (worse.length) root.append(widenedWarning(worse, pairs.length, r.options.scp ? 'SCP' : 'compensation'));
  const hasAfter = pairs.some((p) => p.gapAfter);
  const before = alpha(t.blue, FILL_ALPHA);
  const after = alpha(t.green, FILL_ALPHA);

  // ------------------------------------------------------------ grouped bars
  const cos = chartBox('chart-gap-cos', 280, 'cosine between pruned and partner features');
  const rel = chartBox('chart-gap-rel', 280, 'relative L2 gap between pruned and partner features');
  root.append(
    section(
      'Feature gap per pair, before and after SCP',
      `For each removed layer, its retained partner's output features (per calibration sample, mean over ${r.options.features} tokens) are compared with the removed layer's. ` +
        `SCP projects the partner's ${r.options.scpTarget} weight onto the top-${pairs[0].rank} subspace of the gap.`,
      h('div', { class: 'grid2' }, cos.box, rel.box),
    ),
  );
  const lo = Math.min(...pairs.flatMap((p) => [p.gapBefore.cosine, p.gapAfter?.cosine ?? 1]));
  const cosMin = Math.max(-1, Math.floor((lo - 0.02) * 20) / 20);
  const tip = (metric: 'cosine' | 'relL2') => ({
    callbacks: {
      label: (item: TooltipItem<'bar'>) => {
        const p = pairs[item.dataIndex];
        const v = item.datasetIndex === 0 ? p.gapBefore[metric] : p.gapAfter?.[metric];
        return ` ${item.dataset.label}: ${v === undefined ? 'n/a' : fixed(v, 5)}`;
      },
      footer: (items: TooltipItem<'bar'>[]) => {
        const p = pairs[items[0]?.dataIndex ?? 0];
        if (!p.gapAfter) return '';
        const d = p.gapAfter[metric] - p.gapBefore[metric];
        return `change: ${signed(d, 5)} (${metric === 'cosine' ? 'higher' : 'lower'} is closer)`;
      },
    },
  });
  const bars = (metric: 'cosine' | 'relL2') => [
    { label: 'before SCP', data: pairs.map((p) => p.gapBefore[metric]), backgroundColor: before, borderColor: t.blue, borderWidth: 1 },
    ...(hasAfter ? [{ label: 'after SCP', data: pairs.map((p) => p.gapAfter?.[metric] ?? null), backgroundColor: after, borderColor: t.green, borderWidth: 1 }] : []),
  ];
  makeChart(cos.canvas, {
    type: 'bar',
    data: { labels, datasets: bars('cosine') },
    options: {
      scales: { x: { title: axisTitle('pruned → partner layer'), grid: { display: false } }, y: { min: cosMin, max: 1, title: axisTitle('cosine (higher = closer)') } },
      onClick: onLayerClick((l) => ctx.selectLayer(l), (i) => pairs[i]?.pruned),
      plugins: { title: { display: true, text: 'Cosine similarity' }, legend: { position: 'bottom' }, tooltip: tip('cosine') },
    },
  });
  makeChart(rel.canvas, {
    type: 'bar',
    data: { labels, datasets: bars('relL2') },
    options: {
      scales: { x: { title: axisTitle('pruned → partner layer'), grid: { display: false } }, y: { beginAtZero: true, title: axisTitle('‖Xp − Xr‖ / ‖Xp‖ (lower = closer)') } },
      onClick: onLayerClick((l) => ctx.selectLayer(l), (i) => pairs[i]?.pruned),
      plugins: { title: { display: true, text: 'Relative L2 gap' }, legend: { position: 'bottom' }, tooltip: tip('relL2') },
    },
  });

  // ------------------------------------------------------------ one pair: projection + spectrum
  // The pair of the layer selected across panels (as pruned layer or as partner), else the first.
  const linked = pairs.findIndex((q) => q.pruned === ctx.ui.layer);
  const linkedPartner = pairs.findIndex((q) => q.partner === ctx.ui.layer);
  const pi = linked >= 0 ? linked : linkedPartner >= 0 ? linkedPartner : Math.min(pairs.length - 1, Math.max(0, ctx.ui.pair ?? 0));
  const p = pairs[pi];
  const picker = dropdown(
    'pair-select',
    'Pair',
    pairs.map((x, i) => ({ value: String(i), label: `${pairLabel(x)} (pruned ${x.pruned}, partner ${x.partner})` })),
    String(pi),
    (v) => ctx.selectLayer(pairs[Number(v)].pruned),
  );
  const sc = chartBox('chart-gap-scatter', 340, 'PCA projection of per-sample features');
  const sv = chartBox('chart-gap-sv', 340, 'singular values of the gap');
  root.append(
    section(
      `Pair ${pairLabel(p)}`,
      'Left: the per-sample features projected on their first two principal components; segments join each sample’s partner feature before and after SCP. Right: singular values of H = X_pruned − X_partner; the first k directions are the ones SCP compensates.',
      h('div', { class: 'controls' }, picker, h('span', { class: 'hint', id: 'pair-energy' }, `rank k = ${p.rank}, capturing ${pct(energy(p))} of the gap’s energy`)),
      h('div', { class: 'grid2' }, sc.box, sv.box),
    ),
  );
  if (p.projection) {
    const pts = (a: [number, number][]) => a.map(([x, y]) => ({ x, y }));
    makeChart(sc.canvas, {
      type: 'scatter',
      data: {
        datasets: [
          // "before" as large hollow rings drawn first, "after" as small filled triangles drawn
          // last (lowest order is drawn on top): a sample whose feature barely moved shows a
          // triangle inside its ring instead of one marker hiding the other.
          { label: `pruned L${p.pruned}`, data: pts(p.projection.pruned), backgroundColor: alpha(t.red, 0.85), borderColor: t.red, pointStyle: 'crossRot', pointRadius: 6, borderWidth: 2, order: 1 },
          { label: `partner L${p.partner} before SCP`, data: pts(p.projection.before), backgroundColor: 'transparent', borderColor: t.blue, pointStyle: 'circle', pointRadius: 7, borderWidth: 2, order: 2 },
          { label: `partner L${p.partner} after SCP`, data: pts(p.projection.after), backgroundColor: t.green, borderColor: t.green, pointStyle: 'triangle', pointRadius: 4, borderWidth: 1, order: 0 },
        ],
      },
      options: {
        scales: { x: { title: axisTitle('PC 1') }, y: { title: axisTitle('PC 2') } },
        plugins: {
          // Listed as the datasets are (pruned, before, after), not in drawing order.
          legend: { position: 'bottom', labels: { usePointStyle: true, sort: (a, b) => (a.datasetIndex ?? 0) - (b.datasetIndex ?? 0) } },
          title: { display: true, text: 'Per-sample features (PCA)' },
          connectors: { pairs: [[1, 2]], color: alpha(t.fg, 0.35) },
          tooltip: { callbacks: { label: (item: TooltipItem<'scatter'>) => ` ${item.dataset.label} · sample ${item.dataIndex}: (${sig(item.parsed.x)}, ${sig(item.parsed.y)})` } },
        },
      },
    });
  } else {
    sc.box.replaceChildren(empty('No projection', 'The report has no 2-D projection for this pair.'));
  }
  const svShow = p.singularValues.slice(0, Math.min(p.singularValues.length, 32));
  makeChart(sv.canvas, {
    type: 'bar',
    data: {
      labels: svShow.map((_, i) => String(i + 1)),
      datasets: [
        {
          label: 'singular value',
          data: svShow,
          backgroundColor: svShow.map((_, i) => alpha(i < p.rank ? t.orange : t.neutral, FILL_ALPHA)),
          borderColor: svShow.map((_, i) => (i < p.rank ? t.orange : t.neutral)),
          borderWidth: 1,
        },
      ],
    },
    options: {
      scales: { x: { title: axisTitle('direction (sorted)'), grid: { display: false } }, y: { type: 'logarithmic', title: axisTitle('singular value (log)'), ticks: { callback: (v) => (Math.abs(Math.log10(Number(v)) % 1) < 1e-9 ? sig(Number(v)) : '') } } },
      plugins: {
        legend: { display: false },
        title: { display: true, text: `Spectrum of the gap (first ${p.rank} used)` },
        tooltip: { callbacks: { label: (item: TooltipItem<'bar'>) => ` σ${item.dataIndex + 1} = ${sig(svShow[item.dataIndex], 4)}${item.dataIndex < p.rank ? ' (compensated)' : ''}` } },
      },
    },
  });

  // ------------------------------------------------------------ table
  const cols = ['pair', 'weight', 'k', 'energy in k', 'cos before', 'cos after', 'Δ cos', 'rel L2 before', 'rel L2 after', 'Δ rel L2'];
  const tbody = h('tbody');
  for (const q of pairs) {
    tbody.append(
      h(
        'tr',
        { class: `${worse.includes(q) ? 'widened' : ''}${q === p ? ' selected' : ''}`, 'data-layer': q.pruned },
        h('td', {}, pairLabel(q), worse.includes(q) ? h('span', { class: 'flag', title: 'compensation widened this gap', 'aria-label': 'widened' }, ' ⚠') : null),
        h('td', { class: 'mono', title: q.weight ?? '' }, q.weight ?? '–'),
        h('td', { class: 'num' }, q.rank),
        h('td', { class: 'num' }, pct(energy(q))),
        h('td', { class: 'num' }, fixed(q.gapBefore.cosine)),
        h('td', { class: 'num' }, fixed(q.gapAfter?.cosine)),
        h('td', { class: 'num' }, q.gapAfter ? signed(q.gapAfter.cosine - q.gapBefore.cosine) : '–'),
        h('td', { class: 'num' }, fixed(q.gapBefore.relL2)),
        h('td', { class: 'num' }, fixed(q.gapAfter?.relL2)),
        h('td', { class: 'num' }, q.gapAfter ? signed(q.gapAfter.relL2 - q.gapBefore.relL2) : '–'),
      ),
    );
  }
  tbody.querySelectorAll<HTMLElement>('tr').forEach((tr) => tr.addEventListener('click', () => ctx.selectLayer(Number(tr.dataset.layer))));
  root.append(
    section(
      'Pairs',
      undefined,
      ctx.table(h('table', { id: 'pair-table', class: 'data' }, h('thead', {}, h('tr', {}, ...cols.map((c) => h('th', { scope: 'col' }, c)))), tbody)),
    ),
  );
}
