// Chart.js instances of the current render (destroyed before each re-render) and the small
// plugins the panels share.

import { Chart, ChartConfiguration, ChartEvent, ChartType, LegendItem, Plugin } from 'chart.js/auto';
import { attachChartExport, exportBackground } from './exporting';
import { alpha, Theme } from './theme';

const live: Chart[] = [];

export function makeChart<T extends ChartType>(canvas: HTMLCanvasElement, config: ChartConfiguration<T>): Chart<T> {
  const c = new Chart(canvas, config);
  live.push(c as unknown as Chart);
  attachChartExport(c as unknown as Chart);
  return c;
}

export function destroyCharts(): void {
  for (const c of live.splice(0)) c.destroy();
}

/** Extra legend entries (bands, markers) that do not toggle a dataset. */
export function legendWithExtras(extras: LegendItem[]) {
  return {
    labels: {
      generateLabels(chart: Chart): LegendItem[] {
        return [...Chart.defaults.plugins.legend.labels.generateLabels(chart), ...extras];
      },
    },
    onClick(this: unknown, e: unknown, item: LegendItem, legend: unknown) {
      if (item.datasetIndex === undefined) return;
      (Chart.defaults.plugins.legend.onClick as unknown as (this: unknown, ...a: unknown[]) => void).call(this, e, item, legend);
    },
  };
}

export interface LayerBandsOptions {
  candidates?: [number, number] | null;
  pruned: number[];
  partners: number[];
  /** The layer selected across panels and the Layers view (outlined). */
  selected?: number | null;
  colors: { candidate: string; pruned: string; partner: string; label: string; selected?: string };
}

/** Shaded columns behind a category x axis: candidate range, pruned and partner layers. */
export const layerBands: Plugin = {
  id: 'layerBands',
  beforeDatasetsDraw(chart, _args, opts: LayerBandsOptions) {
    if (!opts || !opts.pruned) return;
    const x = chart.scales.x;
    const area = chart.chartArea;
    if (!x || !area) return;
    const n = chart.data.labels?.length ?? 0;
    if (!n) return;
    const step = n > 1 ? Math.abs(x.getPixelForValue(1) - x.getPixelForValue(0)) : area.right - area.left;
    const left = (i: number) => x.getPixelForValue(i) - step / 2;
    const ctx = chart.ctx;
    ctx.save();
    ctx.beginPath();
    ctx.rect(area.left, area.top, area.right - area.left, area.bottom - area.top);
    ctx.clip();
    if (opts.candidates) {
      const [a, b] = opts.candidates;
      ctx.fillStyle = opts.colors.candidate;
      ctx.fillRect(left(a), area.top, left(b) + step - left(a), area.bottom - area.top);
    }
    for (const [list, color] of [
      [opts.partners, opts.colors.partner],
      [opts.pruned, opts.colors.pruned],
    ] as const) {
      ctx.fillStyle = color;
      for (const i of list) ctx.fillRect(left(i) + step * 0.08, area.top, step * 0.84, area.bottom - area.top);
    }
    if (opts.selected !== undefined && opts.selected !== null && opts.selected >= 0 && opts.selected < n) {
      ctx.strokeStyle = opts.colors.selected ?? opts.colors.label;
      ctx.lineWidth = 2;
      ctx.setLineDash([5, 3]);
      ctx.strokeRect(left(opts.selected) + 1, area.top + 1, step - 2, area.bottom - area.top - 2);
      ctx.setLineDash([]);
    }
    if (opts.candidates) {
      ctx.fillStyle = opts.colors.label;
      ctx.font = `${Chart.defaults.font.size}px ${Chart.defaults.font.family}`;
      ctx.textBaseline = 'bottom';
      const [a, b] = opts.candidates;
      const x0 = left(a) + 2;
      const x1 = left(b) + step - 2;
      ctx.strokeStyle = opts.colors.label;
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      ctx.moveTo(x0, area.bottom - 8);
      ctx.lineTo(x0, area.bottom - 2);
      ctx.lineTo(x1, area.bottom - 2);
      ctx.lineTo(x1, area.bottom - 8);
      ctx.stroke();
      ctx.fillText(`candidate range (layers ${a}–${b})`, x0 + 6, area.bottom - 6);
    }
    ctx.restore();
  },
};

export interface ConnectorOptions {
  /** Pairs of dataset indices: draw a segment from point i of the first to point i of the second. */
  pairs: [number, number][];
  color: string;
}

/** Thin segments between corresponding points of two scatter datasets (before -> after). */
export const connectors: Plugin = {
  id: 'connectors',
  beforeDatasetsDraw(chart, _args, opts: ConnectorOptions) {
    if (!opts || !opts.pairs) return;
    const ctx = chart.ctx;
    ctx.save();
    ctx.strokeStyle = opts.color;
    ctx.lineWidth = 1;
    for (const [a, b] of opts.pairs) {
      if (!chart.isDatasetVisible(a) || !chart.isDatasetVisible(b)) continue;
      const pa = chart.getDatasetMeta(a).data;
      const pb = chart.getDatasetMeta(b).data;
      for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
        ctx.beginPath();
        ctx.moveTo(pa[i].x, pa[i].y);
        ctx.lineTo(pb[i].x, pb[i].y);
        ctx.stroke();
      }
    }
    ctx.restore();
  },
};

Chart.register(layerBands, connectors, exportBackground);

/**
 * Click handler for a chart whose x axis is one category per decoder layer (or whose
 * categories map to layers through `toLayer`): the clicked column selects that layer.
 */
export function onLayerClick(select: (layer: number) => void, toLayer: (index: number) => number | undefined = (i) => i) {
  return (_e: ChartEvent, _els: unknown, chart: Chart) => {
    const e = _e as ChartEvent & { x: number | null; y: number | null };
    const area = chart.chartArea;
    // Only the height is checked: on a line chart the first and last layers sit on the plot's edges.
    if (e.x === null || e.y === null || e.y < area.top || e.y > area.bottom) return;
    const i = Math.round(chart.scales.x.getValueForPixel(e.x) ?? -1);
    const layer = i >= 0 && i < (chart.data.labels?.length ?? 0) ? toLayer(i) : undefined;
    if (layer !== undefined) select(layer);
  };
}

declare module 'chart.js' {
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  interface PluginOptionsByType<TType extends ChartType> {
    layerBands?: LayerBandsOptions;
    connectors?: ConnectorOptions;
  }
}

export function bandColors(t: Theme): LayerBandsOptions['colors'] {
  const strong = t.kind === 'high-contrast' ? 2 : 1;
  return {
    candidate: alpha(t.fg, 0.05 * strong),
    pruned: alpha(t.red, t.kind === 'light' ? 0.1 : 0.16),
    partner: alpha(t.green, t.kind === 'light' ? 0.09 : 0.12),
    label: t.muted,
    selected: t.fg,
  };
}

/** Every layer labelled on a layer axis (Chart.js would skip some), so ticks match the Layers view's rows. */
export const layerTicks = { autoSkip: false, maxRotation: 0 };

/**
 * Log-axis bounds with room around the data: whole decades below the lowest value and above
 * the highest, so the lowest point and its marker are never drawn on (and cut by) the edge.
 */
export function logBounds(values: (number | null | undefined)[]): { min?: number; max?: number } {
  const v = values.filter((x): x is number => typeof x === 'number' && Number.isFinite(x) && x > 0);
  if (!v.length) return {};
  const lo = Math.log10(Math.min(...v));
  const hi = Math.log10(Math.max(...v));
  return { min: 10 ** Math.floor(lo - 0.15), max: 10 ** Math.ceil(hi + 0.05) };
}

export function axisTitle(text: string) {
  return { display: true, text, font: { weight: 'bold' as const } };
}

export { Chart };
