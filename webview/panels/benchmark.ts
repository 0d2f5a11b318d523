// Panel 4: the side-by-side benchmark (accuracy per question family, relative accuracy,
// agreement and KL against the reference, throughput, size) and, when a sweep was run, the
// accuracy / ratio trade-off per method with random dropping and exhaustive search.

import type { ChartDataset, TooltipItem } from 'chart.js';
import type { BenchmarkReport, BenchRow, SweepRow } from '../../src/protocol/report';
import { axisTitle, makeChart } from '../charts';
import { chartBox, h, section } from '../dom';
import { basename, bytes, fixed, pct, sig } from '../format';
import { alpha, FILL_ALPHA, Theme } from '../theme';
import { button } from '../toolkit';
import { empty, header } from './common';
import type { PanelContext } from './context';
import { qualityCurve } from './qualityCurve';

export const rowLabel = (r: BenchRow) => r.label || `${basename(r.model)} (${r.numLayers} layers)`;

export function families(rows: BenchRow[]): string[] {
  const s = new Set<string>();
  for (const r of rows) for (const f of Object.keys(r.families ?? {})) s.add(f);
  return [...s].sort();
}

const palette = (t: Theme) => [t.blue, t.green, t.orange, t.purple, t.red, t.yellow];

export function renderBenchmark(root: HTMLElement, ctx: PanelContext): void {
  const t = ctx.theme;
  root.append(header(ctx));
  const b: BenchmarkReport | undefined = ctx.benchmark ?? ctx.report.benchmark;
  const rows = b?.rows ?? [];
  const sweep = b?.sweep ?? [];
  if (!rows.length && !sweep.length) {
    if (ctx.report.selection?.curve.length) root.append(qualityCurve(ctx));
    root.append(
      empty(
        'No benchmark yet',
        'A benchmark runs the full and the pruned model side by side on an evaluation set (JSONL of {id, image, question, answer, family}) and reports accuracy per question family, accuracy relative to the full model, next-token agreement and KL divergence, throughput and size.',
        h('p', {}, button('Run Benchmark…', () => ctx.runBenchmark(), { appearance: 'primary', id: 'run-benchmark', title: 'Benchmark the original and this pruned model (asks for the evaluation data)' })),
        'The same is “Short-LVLM: Benchmark Models...” in the Command Palette and the Runs view.',
        'For the accuracy/ratio trade-off across methods, random dropping and exhaustive search, run the sweep command (cli sweep).',
      ),
    );
    return;
  }
  const colors = palette(t);

  if (rows.length) {
    const ref = rows[0];
    const fams = families(rows);
    const labels = ['overall', ...fams];
    const { box, canvas } = chartBox('chart-bench-acc', 320, 'accuracy per question family');
    root.append(
      section(
        'Accuracy per question family',
        `${b?.items ?? '?'} evaluation items${b?.evalFile ? ` from ${basename(b.evalFile)}` : ''}; greedy answers compared with the reference answer. Relative accuracy, agreement and KL are against ${rowLabel(ref)}.`,
        box,
      ),
    );
    makeChart(canvas, {
      type: 'bar',
      data: {
        labels,
        datasets: rows.map((r, i) => ({
          label: rowLabel(r),
          data: [r.accuracy, ...fams.map((f) => r.families[f]?.accuracy ?? null)],
          backgroundColor: alpha(colors[i % colors.length], FILL_ALPHA),
          borderColor: colors[i % colors.length],
          borderWidth: 1,
        })),
      },
      options: {
        interaction: { mode: 'index', intersect: false },
        scales: {
          x: { title: axisTitle('question family'), grid: { display: false } },
          y: { min: 0, max: 1, title: axisTitle('accuracy'), ticks: { callback: (v) => `${Math.round(Number(v) * 100)} %` } },
        },
        plugins: {
          legend: { position: 'bottom' },
          tooltip: {
            callbacks: {
              label: (item: TooltipItem<'bar'>) => {
                const r = rows[item.datasetIndex];
                const f = item.dataIndex === 0 ? null : r.families[fams[item.dataIndex - 1]];
                const n = f ? ` (${f.correct}/${f.n})` : '';
                return ` ${rowLabel(r)}: ${pct(item.parsed.y ?? null)}${n}`;
              },
            },
          },
        },
      },
    });

    const cols = ['model', 'layers', 'accuracy', 'relative acc.', 'agreement', 'KL (nats)', 'samples/s', 'speedup', 'package size', 'package vs ref'];
    const tbody = h('tbody');
    rows.forEach((r, i) => {
      const speed = r.speedup ?? (ref.samplesPerSecond ? r.samplesPerSecond / ref.samplesPerSecond : undefined);
      tbody.append(
        h(
          'tr',
          {},
          h('td', { title: r.model }, h('span', { class: 'swatch', 'data-color': String(i) }), rowLabel(r)),
          h('td', { class: 'num' }, r.numLayers),
          h('td', { class: 'num' }, pct(r.accuracy)),
          h('td', { class: 'num' }, i === 0 ? 'ref' : pct(r.relativeAccuracy ?? (ref.accuracy ? r.accuracy / ref.accuracy : undefined))),
          h('td', { class: 'num' }, i === 0 ? '–' : pct(r.agreement)),
          h('td', { class: 'num' }, i === 0 ? '–' : sig(r.klMean)),
          h('td', { class: 'num' }, fixed(r.samplesPerSecond, 1)),
          h('td', { class: 'num' }, speed === undefined ? '–' : `${speed.toFixed(2)}×`),
          h('td', { class: 'num' }, bytes(r.sizeBytes)),
          h('td', { class: 'num' }, i === 0 || !ref.sizeBytes ? '–' : pct(r.sizeBytes / ref.sizeBytes, 0)),
        ),
      );
    });
    root.append(
      section(
        'Summary',
        'Agreement: share of items whose first generated token matches the reference model; KL: mean KL(reference ‖ model) of the first-token distribution. Package size: every file of the model folder (decoder, vision encoder, embeddings, tokenizer, ...).',
        ctx.table(h('table', { id: 'bench-table', class: 'data' }, h('thead', {}, h('tr', {}, ...cols.map((c) => h('th', { scope: 'col' }, c)))), tbody)),
      ),
    );
    tbody.querySelectorAll<HTMLElement>('.swatch').forEach((s) => {
      s.style.backgroundColor = colors[Number(s.dataset.color) % colors.length];
    });
  }

  if (sweep.length) root.append(sweepSection(ctx, sweep, rows[0]?.accuracy));
  // The held-out quality curve the pruning recorded: the same trade-off, measured before any benchmark.
  if (ctx.report.selection?.curve.length) root.append(qualityCurve(ctx));
}

/** Lines per method; random seeds as points plus their mean; exhaustive subsets as points plus their best. */
export function sweepSeries(sweep: SweepRow[]): { methods: Map<string, SweepRow[]>; random: SweepRow[]; exhaustive: SweepRow[] } {
  const methods = new Map<string, SweepRow[]>();
  const random: SweepRow[] = [];
  const exhaustive: SweepRow[] = [];
  for (const r of sweep) {
    if (/^random/.test(r.method)) random.push(r);
    else if (/^exhaustive/.test(r.method)) exhaustive.push(r);
    else methods.set(r.method, [...(methods.get(r.method) ?? []), r]);
  }
  for (const v of methods.values()) v.sort((a, b) => a.ratio - b.ratio);
  return { methods, random, exhaustive };
}

const METHOD_NAMES: Record<string, string> = {
  svl: 'TIS cosine + SCP (Short-LVLM)',
  'svl-noscp': 'TIS cosine, no SCP',
  cosine: 'all-token cosine',
  'cosine-scp': 'all-token cosine + SCP',
  text: 'text-only cosine',
  visual: 'visual-only cosine',
};

/** "svl: TIS cosine + SCP (Short-LVLM)"; the key first so it matches the CLI's --methods. */
export const methodLabel = (m: string) => (METHOD_NAMES[m] ? `${m}: ${METHOD_NAMES[m]}` : m);

function byRatio(rows: SweepRow[], f: (accs: number[]) => number): { x: number; y: number }[] {
  const m = new Map<number, number[]>();
  for (const r of rows) m.set(r.ratio, [...(m.get(r.ratio) ?? []), r.accuracy]);
  return [...m.entries()].sort((a, b) => a[0] - b[0]).map(([x, a]) => ({ x, y: f(a) }));
}

export function sweepSection(ctx: Pick<PanelContext, 'theme'>, sweep: SweepRow[], fullAcc?: number): HTMLElement {
  const t = ctx.theme;
  const colors = palette(t);
  const { methods, random, exhaustive } = sweepSeries(sweep);
  // The sweep's own full-model accuracy (same eval items) from accuracy / relativeAccuracy; the benchmark's otherwise.
  const withRel = sweep.find((x) => (x.relativeAccuracy ?? 0) > 0 && x.accuracy > 0);
  const fullRef = withRel ? withRel.accuracy / withRel.relativeAccuracy! : fullAcc;
  const ratios = [...new Set(sweep.map((r) => r.ratio))].sort((a, b) => a - b);
  const datasets: ChartDataset<'scatter', { x: number; y: number }[]>[] = [];
  let ci = 0;
  for (const [m, rs] of methods) {
    const c = colors[ci++ % colors.length];
    // Earlier datasets are drawn on top: give later ones bigger markers so coinciding points stay visible.
    const style = (['circle', 'rect', 'triangle', 'rectRot', 'crossRot', 'star'] as const)[(ci - 1) % 6];
    datasets.push({ label: methodLabel(m), data: rs.map((r) => ({ x: r.ratio, y: r.accuracy })), showLine: true, borderColor: c, backgroundColor: alpha(c, 0.45), pointStyle: style, pointRadius: 4 + 1.5 * Math.min(4, ci - 1), borderWidth: 2 });
  }
  if (random.length) {
    datasets.push({ label: 'random (each seed)', data: random.map((r) => ({ x: r.ratio, y: r.accuracy })), borderColor: t.neutral, backgroundColor: alpha(t.neutral, 0.5), pointRadius: 3, pointStyle: 'circle' });
    datasets.push({ label: 'random (mean)', data: byRatio(random, (a) => a.reduce((s, x) => s + x, 0) / a.length), showLine: true, borderColor: t.neutral, backgroundColor: t.neutral, borderDash: [4, 4], pointRadius: 2, borderWidth: 1.5 });
  }
  if (exhaustive.length) {
    datasets.push({ label: 'exhaustive best (upper bound)', data: byRatio(exhaustive, (a) => Math.max(...a)), showLine: true, borderColor: t.yellow, backgroundColor: t.yellow, pointStyle: 'star', pointRadius: 7, borderDash: [2, 2], borderWidth: 1.5 });
  }
  if (fullRef !== undefined && ratios.length) {
    datasets.push({ label: 'full model', data: [{ x: 0, y: fullRef }, { x: ratios[ratios.length - 1], y: fullRef }], showLine: true, borderColor: t.fg, backgroundColor: t.fg, borderDash: [8, 4], pointRadius: 0, borderWidth: 1 });
  }
  const { box, canvas } = chartBox('chart-sweep', 340, 'accuracy against pruning ratio per method');
  makeChart(canvas, {
    type: 'scatter',
    data: { datasets },
    options: {
      scales: {
        x: { min: 0, title: axisTitle('pruning ratio (share of decoder layers removed)'), ticks: { callback: (v) => `${Math.round(Number(v) * 100)} %` } },
        y: { title: axisTitle('accuracy'), ticks: { callback: (v) => `${+(Number(v) * 100).toFixed(1)} %` } },
      },
      plugins: {
        legend: { position: 'bottom', labels: { usePointStyle: true } },
        tooltip: {
          callbacks: {
            label: (item: TooltipItem<'scatter'>) => {
              const ds = item.dataset.label ?? '';
              const x = item.parsed.x ?? 0;
              const y = item.parsed.y ?? 0;
              const row = sweep.find((r) => r.ratio === x && r.accuracy === y && (methodLabel(r.method) === ds || (ds.startsWith('random') && r.method.startsWith('random'))));
              const rel = fullRef ? ` (${pct(y / fullRef)} of full)` : '';
              return ` ${ds} @ ${pct(x, 0)}: ${pct(y)}${rel}${row ? ` · removed [${row.removed.join(', ')}]${row.scp ? ' + SCP' : ''}` : ''}`;
            },
          },
        },
      },
    },
  });
  return section('Accuracy / ratio trade-off', 'Each method picks its layers from one calibration pass; random dropping over several seeds is the baseline, exhaustive search over candidate subsets (where small enough) the upper bound.', box);
}
